"""The `publish` tier's texts: a knowledge-base article for customers and a script for call-centre agents
(pure: a decision and its incident in, two documents out through the injected renderer).

Incidents of the tiers that get a status entry (`publish`, `broadcast`) get both; an incident whose topic
has no company label (`outreach.topic_labels`) gets none, as it gets no status entry. The templates are
`{topic}.article.md.j2` / `{topic}.script.txt.j2`, else `default.article.md.j2` / `default.script.txt.j2`
(`forewarn.connectors.templates.JinjaRenderer.render_document`, which keeps every value inert text).

What the templates may use (`document_context`): only company words and codes. The topic is shown by its
label; regions and products (the segment's `model` and `firmware`) and the segment's other traits only
when they are plain codes (letters, digits, spaces, `.`, `_`, `-`; at most 40 characters), else they are
left out and `withheld` is true; never a case's text. The responders' public note is theirs to write.
The article names the incident by its public digest (the internal id spells the topic); the script gives
agents the internal id to link cases to. Times are RFC 3339 in UTC (`eta`, `since`, `opened_at`,
`updated_at`, `resolved_at`, `generated_at`) with a friendly form beside each (`eta_friendly`, ...).

>>> from datetime import UTC, datetime, timedelta
>>> from forewarn.decisions import Decision
>>> from forewarn.records import Incident
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> incident = Incident("INC-1", "no_internet", "NY-081", "opened", at, at - timedelta(hours=1), at, 90, 3.0, 2, 90)
>>> d = Decision("INC-1", "no_internet", "NY-081", "high", (), "regional", (), "publish", "not_needed", at,
...              audience=4_200, stage="identified", eta=at + timedelta(hours=3), note="A cut fibre.",
...              labels=(("model", "R7000"), ("region", "NY-081"), ("topic", "no_internet")))
>>> class Show:  # a stand-in renderer: which document, and a few context values
...     def render_document(self, topic, document, context):
...         return f"{document}: {context['title']}, fix by {context['eta_friendly']} ({context['eta']})"
>>> docs = documents_for(d, incident, Show(), {"no_internet": "internet"}, at)
>>> docs["article"]
'article.md: Internet problems for R7000 in NY-081, fix by Fri 20 Nov 2026, 17:00 UTC (2026-11-20T17:00:00Z)'
>>> sorted(docs), documents_for(d, incident, Show(), {}, at)  # no label for the topic: no documents
(['article', 'script'], None)
>>> from dataclasses import replace
>>> documents_for(replace(d, tier="notify"), incident, Show(), {"no_internet": "internet"}, at) is None
True
>>> document_files("INC-20261120T1300Z-no_internet-NY/081")["article"]  # the file names stay in their folder
'INC-20261120T1300Z-no_internet-NY_081.article.md'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from forewarn.decisions import Decision
from forewarn.outreach.status_feed import IMPACT, NATIONWIDE, STAGE_WORDS, STATUS_TIERS, STOCK_BODY, public_id
from forewarn.records import NATIONAL, Incident, rfc3339

DOCUMENTS: dict[str, str] = {"article": "article.md", "script": "script.txt"}
"""Each document's name and the template name's middle (`default.article.md.j2`)."""

_CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]| (?=[A-Za-z0-9])){0,39}")
_UNSAFE_FILE = re.compile(r"[^A-Za-z0-9._-]")
_NOT_TRAITS = frozenset({"incident", "topic", "region", "model", "firmware"})


class DocumentRenderer(Protocol):
    """What renders a document (`JinjaRenderer.render_document`)."""

    def render_document(self, topic: str, document: str, context: Mapping[str, object]) -> str:
        ...


def documents_for(decision: Decision, incident: Incident, renderer: DocumentRenderer, labels: Mapping[str, str],
                  now: datetime) -> dict[str, str] | None:
    """`{"article": markdown, "script": text}` for an incident of a tier with a status entry whose topic has a
    label; None otherwise. `now` is when the documents are made (the script's "prepared" time; an ETA
    before it has passed)."""
    if decision.tier not in STATUS_TIERS or decision.topic not in labels:
        return None
    context = document_context(decision, incident, labels[decision.topic], now)
    return {name: renderer.render_document(decision.topic, document, context) for name, document in DOCUMENTS.items()}


def document_files(incident_id: str) -> dict[str, str]:
    """The file names the documents of `incident_id` are written to (`INC.article.md`, `INC.script.txt`); any
    character but letters, digits, `.`, `_` and `-` becomes `_`, so an id never names another folder."""
    safe = _UNSAFE_FILE.sub("_", incident_id).lstrip(".") or "incident"
    return {name: f"{safe}.{document}" for name, document in DOCUMENTS.items()}


def document_context(decision: Decision, incident: Incident, label: str, now: datetime) -> dict[str, Any]:
    """The values the document templates may use (see the module doc)."""
    traits = dict(decision.labels)
    withheld = False

    def plain(value: str | None) -> str | None:
        nonlocal withheld
        if not value:
            return None
        if _CODE.fullmatch(value):
            return value
        withheld = True
        return None

    region = None if decision.region == NATIONAL else plain(decision.region)
    regions = [NATIONWIDE] if decision.region == NATIONAL else [region] if region else []
    model, firmware = plain(traits.get("model")), plain(traits.get("firmware"))
    products = [f"{model} {firmware}" if firmware else model] if model else [f"firmware {firmware}"] if firmware \
        else []
    others = [(name, plain(value)) for name, value in sorted(traits.items())
              if name not in _NOT_TRAITS and plain(name)]
    changed = decision.updated_at or decision.decided_at
    resolved_at = incident.resolved_at or changed
    resolved = not decision.open or decision.stage == "resolved" or incident.status == "resolved"
    stage = "resolved" if resolved else decision.stage
    eta = None if resolved else decision.eta
    note = " ".join(decision.note.split())
    return {
        "topic_label": label,
        "title": _title(label, regions, products),
        "incident_id": decision.incident_id,
        "public_id": public_id(decision.incident_id),
        "tier": decision.tier,
        "stage": stage,
        "stage_words": STAGE_WORDS[stage],
        "resolved": resolved,
        "severity": decision.severity,
        "impact": IMPACT[decision.severity],
        "reach": decision.reach,
        "audience": decision.audience,
        "regions": [] if regions == [NATIONWIDE] else regions,
        "nationwide": regions == [NATIONWIDE],
        "products": products,
        "traits": [(name, value) for name, value in others if value],
        "withheld": withheld,
        "note": note,
        "status_text": note or STOCK_BODY[stage],
        "eta_passed": eta is not None and eta <= now,
        **_moment("eta", eta),
        **_moment("since", incident.first_window_start),
        **_moment("opened_at", incident.opened_at),
        **_moment("updated_at", max(changed, resolved_at) if resolved else changed),
        **_moment("resolved_at", resolved_at if resolved else None),
        **_moment("generated_at", now),
    }


def _moment(name: str, ts: datetime | None) -> dict[str, str | None]:
    """`{name: RFC 3339 in UTC, name_friendly: "Fri 20 Nov 2026, 17:00 UTC"}`, both None without a time."""
    friendly = f"{name.removesuffix('_at')}_friendly"
    if ts is None:
        return {name: None, friendly: None}
    return {name: rfc3339(ts), friendly: f"{ts.astimezone(UTC):%a %d %b %Y, %H:%M} UTC"}


def _title(label: str, regions: list[str], products: list[str]) -> str:
    """As the status feed names an incident: "Internet problems in NY-081", "Wi-Fi problems for R7000 2.1.7"."""
    title = f"{label[:1].upper()}{label[1:]} problems"
    if products:
        title += " for " + ", ".join(products)
    if regions == [NATIONWIDE]:
        return title if products else f"{title} {NATIONWIDE}"
    return f"{title} in {', '.join(regions)}" if regions else title
