"""The `publish` tier's texts (`outreach.documents` through the bundled templates): which incidents get them,
what they say, and that no value can turn into markup or template code."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.templates import JinjaRenderer
from forewarn.decisions import Decision, Tier
from forewarn.flows.demo import write_documents
from forewarn.flows.wiring import MemoryParts
from forewarn.outreach.documents import document_files, documents_for
from forewarn.outreach.status_feed import public_id
from forewarn.records import NATIONAL, Incident
from forewarn.settings import BUNDLED_CONFIG, Settings

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)
NOW = T0 + timedelta(minutes=30)
LABELS = {"no_internet": "internet", "wifi_drops": "Wi-Fi"}
ID = "INC-20261120T1300Z-no_internet-NY-081-ab12"
HOSTILE_NOTE = ("Crews on site <script>alert(1)</script> {{ 7*7 }} {% raw %} [prize](javascript:alert(1)) & more"
                "\n# Heading")
RENDERER = JinjaRenderer(BUNDLED_CONFIG / "templates")


def incident(incident_id: str = ID, region: str = "NY-081", status: str = "opened") -> Incident:
    return Incident(incident_id, "no_internet", region, status, T0, T0 - timedelta(hours=1),  # type: ignore[arg-type]
                    T0, 90, 3.0, 2, 90)


def decision(tier: Tier = "publish", **changes: object) -> Decision:
    d = Decision(ID, "no_internet", "NY-081", "high", ("30x the expected count",), "regional",
                 ("4,200 customers in 1 region",), tier, "not_needed", T0, audience=4_200, stage="identified",
                 eta=T0 + timedelta(hours=3), note="A cut fibre; crews are on site.", updated_at=T0,
                 labels=(("firmware", "2.1.7"), ("incident", ID), ("lot", "L-2211"), ("model", "R7000"),
                         ("region", "NY-081"), ("topic", "no_internet")))
    return replace(d, **changes)  # type: ignore[arg-type]


def documents(d: Decision, inc: Incident | None = None, now: datetime = NOW) -> dict[str, str]:
    docs = documents_for(d, inc or incident(d.incident_id, d.region), RENDERER, LABELS, now)
    assert docs is not None
    return docs


def test_a_publish_decision_gets_an_article_and_a_script() -> None:
    docs = documents(decision())
    assert sorted(docs) == ["article", "script"]
    article, script = docs["article"], docs["script"]
    assert article.startswith("# Internet problems for R7000 2.1.7 in NY-081\n")
    for line in ("- **Status:** Identified", "- **Expected fix:** Fri 20 Nov 2026, 17:00 UTC",
                 "- **Last updated:** Fri 20 Nov 2026, 14:00 UTC (2026-11-20T14:00:00Z)",
                 f"- **Reference:** {public_id(ID)}", "- **Areas:** NY-081", "- **Equipment:** R7000 2.1.7",
                 "## What is affected", "## What is happening", "## What you can do",
                 "Since Fri 20 Nov 2026, 13:00 UTC, some of our customers have had internet problems.",
                 "A cut fibre; crews are on site."):
        assert line in article, line
    assert ID not in article and "no_internet" not in article, "the internal id spells the raw topic"
    assert script.startswith("CALL-CENTRE SCRIPT: Internet problems for R7000 2.1.7 in NY-081\n")
    for line in (f"Incident: {ID}", "- lives in: NY-081", "- uses: R7000 2.1.7", "- has lot: L-2211",
                 "about 4,200 customers", '"We expect it to be fixed by Fri 20 Nov 2026, 17:00 UTC."',
                 f"Link the caller's case to incident {ID}", "4. DO NOT PROMISE", "6. ESCALATE",
                 "Prepared: Fri 20 Nov 2026, 14:30 UTC (2026-11-20T14:30:00Z)",
                 "- a personal message when it is fixed"):
        assert line in script, line
    assert article.endswith("problem.\n") and not article.endswith("\n\n") and script.endswith(".\n")


def test_broadcast_gets_them_too_and_its_script_does_not_promise_the_caller_a_message() -> None:
    script = documents(decision("broadcast", approval="approved"))["script"]
    assert "- that this caller will get a message from us" in script
    assert "- a personal message when it is fixed" not in script


@pytest.mark.parametrize("tier", ["observe", "notify"])
def test_tiers_without_a_status_entry_get_no_documents(tier: Tier) -> None:
    assert documents_for(decision(tier), incident(), RENDERER, LABELS, NOW) is None


def test_an_unlabelled_topic_gets_no_documents() -> None:
    assert documents_for(decision(), incident(), RENDERER, {"wifi_drops": "Wi-Fi"}, NOW) is None


def test_without_an_eta_none_is_given_and_a_passed_one_is_not_repeated_as_a_promise() -> None:
    unknown = documents(decision(eta=None))
    assert "- **Expected fix:** not known yet" in unknown["article"]
    assert "No fix time has been given yet. Do not guess one" in unknown["script"]
    late = documents(decision(), now=T0 + timedelta(hours=4))
    assert "- **Expected fix:** later than the Fri 20 Nov 2026, 17:00 UTC we hoped for" in late["article"]
    assert "has passed without an update. Do not give a new time" in late["script"]
    assert "We expect it to be fixed by" not in late["script"]


def test_a_resolved_incident_says_when_it_was_fixed_and_gives_no_eta() -> None:
    docs = documents(decision(open=False, updated_at=T0 + timedelta(hours=2)),
                     replace(incident(status="resolved"), resolved_at=T0 + timedelta(hours=2)))
    assert "- **Status:** Resolved" in docs["article"] and "- **Fixed:** Fri 20 Nov 2026, 16:00 UTC" in docs["article"]
    assert "Expected fix" not in docs["article"] and "If you still have internet problems" in docs["article"]
    assert "Fixed at Fri 20 Nov 2026, 16:00 UTC." in docs["script"] and "We expect" not in docs["script"]
    flow_closed = documents(decision(open=False),
                            replace(incident(status="resolved"), resolved_at=T0 + timedelta(hours=2)))
    assert "- **Last updated:** Fri 20 Nov 2026, 16:00 UTC" in flow_closed["article"], "the flow closed it later"


def test_a_nationwide_incident_names_no_region() -> None:
    docs = documents(decision(region=NATIONAL, labels=(("topic", "no_internet"),)))
    assert docs["article"].startswith("# Internet problems nationwide\n")
    assert "- **Areas:** customers anywhere in our service area" in docs["article"]
    assert "- lives in: any region" in docs["script"] and "- uses: any equipment" in docs["script"]


def test_a_hostile_note_is_shown_as_its_characters_in_markdown_and_never_run() -> None:
    """The note reaches the reader as typed: Jinja never evaluates a value, and in the Markdown every
    character Markdown, HTML or a site generator would read is escaped (the renderer's message environment
    has autoescape off, and HTML escaping would not stop Markdown links anyway)."""
    docs = documents(decision(note=HOSTILE_NOTE))
    article, script = docs["article"], docs["script"]
    for text in (article, script):
        assert " 49 " not in text, "the note's {{ 7*7 }} was evaluated"
    assert "<script>" not in article and "{{" not in article and "](" not in article and "\n# Heading" not in article
    assert (r"Crews on site \<script\>alert\(1\)\</script\> \{\{ 7\*7 \}\} \{% raw %\} "
            r"\[prize\]\(javascript:alert\(1\)\) \& more \# Heading") in article
    # plain text: the note as typed, on one line (it cannot forge a line of the script)
    assert "Latest from the responders (you may read it out): Crews on site <script>alert(1)</script> {{ 7*7 }} " \
           "{% raw %} [prize](javascript:alert(1)) & more # Heading\n" in script


def test_the_article_renders_to_html_with_the_note_as_text() -> None:
    """Through a CommonMark renderer (HTML allowed, as a knowledge base would): no element from the note."""
    markdown_it = pytest.importorskip("markdown_it")
    article = documents(decision(note=HOSTILE_NOTE))["article"]
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).render(article)
    assert "<script" not in html and "<a " not in html and html.count("<h1>") == 1
    assert ("Crews on site &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} {% raw %} [prize](javascript:alert(1)) "
            "&amp; more # Heading") in html
    assert "<h1>Internet problems for R7000 2.1.7 in NY-081</h1>" in html
    assert html.count("<h2>") == 3 and "<li><strong>Areas:</strong> NY-081</li>" in html


def test_a_records_free_text_is_withheld_not_shown() -> None:
    """Region and traits come from cases and telemetry: only plain codes are shown; the script tells agents
    something was left out."""
    region = "TX-453 https://evil.example/pay"
    d = decision(region=region, labels=(("model", "<a href='https://evil.example/fw'>R7000</a>"),
                                        ("firmware", "{{ 7*7 }}<script>2.1.7</script>"), ("lot", "Call 555 0199!"),
                                        ("topic", "no_internet")))
    docs = documents(d, incident(region=region))
    for text in docs.values():
        for bad in ("evil", "href", "script>", "7*7", "555", "Call"):
            assert bad not in text, (bad, text)
    assert docs["article"].startswith("# Internet problems\n") and "- **Areas:** some areas" in docs["article"]
    assert "Some of this incident's details are not shown here" in docs["script"]


def test_a_topic_template_wins_over_the_default(tmp_path: Path) -> None:
    for name in ("default.article.md.j2", "default.script.txt.j2"):
        (tmp_path / name).write_text((BUNDLED_CONFIG / "templates" / name).read_text())
    (tmp_path / "no_internet.article.md.j2").write_text("# {{ title }}\n\n{{ note }}\n")
    docs = documents_for(decision(note="R&D *now*"), incident(), JinjaRenderer(tmp_path), LABELS, NOW)
    assert docs is not None and docs["article"] == "# Internet problems for R7000 2.1.7 in NY-081\n\nR\\&D \\*now\\*\n"
    assert "R&D *now*" in docs["script"]


def test_a_templates_folder_without_the_documents_says_which_file_to_add(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"add default\.article\.md\.j2 to"):
        documents_for(decision(), incident(), JinjaRenderer(tmp_path), LABELS, NOW)


def test_file_names_never_leave_the_folder() -> None:
    assert document_files("INC-1") == {"article": "INC-1.article.md", "script": "INC-1.script.txt"}
    assert document_files("../../etc/x")["article"] == "_.._etc_x.article.md"


def test_the_demo_writes_the_documents_of_its_published_incidents(tmp_path: Path) -> None:
    parts = MemoryParts(Settings(), InMemoryCustomerIndex(), tmp_path)
    for d in (decision(), decision("notify", incident_id="INC-2")):
        parts.decisions.save(d)
        parts.store.save(incident(d.incident_id))
    written = write_documents(tmp_path, parts, NOW)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        f"documents/{ID}.article.md", f"documents/{ID}.script.txt"]
    first = [p.read_text() for p in written]
    assert first == list(documents(decision()).values())
    assert [p.read_text() for p in write_documents(tmp_path, parts, NOW)] == first, "the same every run"


def test_the_demo_writes_no_folder_without_published_incidents(tmp_path: Path) -> None:
    parts = MemoryParts(Settings(), InMemoryCustomerIndex(), tmp_path)
    parts.decisions.save(decision("notify"))
    parts.store.save(incident())
    assert write_documents(tmp_path, parts, NOW) == [] and not (tmp_path / "documents").exists()
