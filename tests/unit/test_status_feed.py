"""The public status feed (`outreach.status_feed`): which incidents appear, how they are named and staged,
the JSON's shape (checked by a strict model of the documented structure) and the Atom feed (RFC 4287)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import pytest
from pydantic import BaseModel, ConfigDict, StringConstraints

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.decisions import Decision, SeverityLevel
from forewarn.flows.demo import write_status_feed
from forewarn.flows.wiring import MemoryParts
from forewarn.outreach.status_feed import atom_feed, public_id, status_document
from forewarn.settings import Settings

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
LABELS = {"no_internet": "internet", "wifi_drops": "Wi-Fi", "slow_speed": "speed"}
FEED = "https://forewarn.example.com/status.atom"
SITE = "https://forewarn.example.com/status.json"
A = "{http://www.w3.org/2005/Atom}"

# -- the documented structure, strictly ----------------------------------------------------------------

Time = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")]
StageName = Literal["investigating", "identified", "monitoring", "resolved"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Page(_Strict):
    name: str
    updated_at: Time


class PageStatus(_Strict):
    indicator: Literal["none", "minor", "major", "critical"]
    description: str


class IncidentUpdate(_Strict):
    status: StageName
    body: str
    created_at: Time


class PublicIncident(_Strict):
    id: str
    name: str
    status: StageName
    impact: Literal["minor", "major", "critical"]
    created_at: Time
    updated_at: Time
    resolved_at: Time | None
    eta: Time | None
    regions: list[str]
    products: list[str]
    incident_updates: list[IncidentUpdate]


class StatusDocument(_Strict):
    """What `status.json` documents (the module doc of `forewarn.outreach.status_feed`)."""

    page: Page
    status: PageStatus
    incidents: list[PublicIncident]


def checked(document: dict[str, Any]) -> StatusDocument:
    """The document validated after a JSON round trip, as a client reads it."""
    return StatusDocument.model_validate_json(orjson.dumps(document))


# -- decisions -----------------------------------------------------------------------------------------


def decision(incident_id: str, topic: str = "no_internet", region: str = "NY-081", *, tier: Any = "publish",
             approval: Any = "not_needed", severity: SeverityLevel = "high", decided_at: datetime = T0,
             **more: Any) -> Decision:
    return Decision(incident_id, topic, region, severity, ("90x the expected count",), "regional",
                    ("370 customers in 1 region",), tier, approval, decided_at, audience=370, **more)


def names(decisions: list[Decision], now: datetime = NOW) -> list[str]:
    return [i["name"] for i in status_document(decisions, LABELS, now)["incidents"]]


def test_only_public_unmuted_labelled_incidents_with_a_status_tier_appear() -> None:
    shown = [
        decision("INC-publish", region="NY-081"),
        decision("INC-broadcast-approved", region="TX-453", tier="broadcast", approval="approved"),
    ]
    hidden = [
        decision("INC-notify", region="CA-001", tier="notify"),
        decision("INC-observe", region="CA-002", tier="observe"),
        decision("INC-pending", region="CA-003", tier="broadcast", approval="pending"),
        decision("INC-held", region="CA-004", tier="broadcast", approval="held"),
        decision("INC-silenced", region="CA-005", silenced_by="S-1"),
        decision("INC-inhibited", region="CA-006", topic="wifi_drops", inhibited_by="INC-publish"),
        decision("INC-unlabelled", region="CA-007", topic="new:loop+reboot+router"),
        decision("INC-old", region="CA-008", open=False, stage="resolved", updated_at=NOW - timedelta(hours=25)),
    ]
    assert sorted(names(shown + hidden)) == ["Internet problems in NY-081", "Internet problems in TX-453"]
    assert names(hidden) == []


def test_a_recently_resolved_incident_stays_for_a_day_after_its_last_change() -> None:
    closed = decision("INC-1", open=False, decided_at=T0 - timedelta(hours=30), updated_at=T0)
    assert names([closed], now=T0 + timedelta(hours=24)) == ["Internet problems in NY-081"]
    assert names([closed], now=T0 + timedelta(hours=24, seconds=1)) == []
    never_updated = decision("INC-2", open=False, stage="resolved", decided_at=T0)
    assert names([never_updated], now=T0 + timedelta(hours=23)) == ["Internet problems in NY-081"]
    assert status_document([closed], LABELS, T0 + timedelta(hours=3), recent=timedelta(hours=2))["incidents"] == []


def test_an_open_incident_stays_however_old() -> None:
    assert names([decision("INC-1", decided_at=NOW - timedelta(days=9))]) == ["Internet problems in NY-081"]


def test_names_regions_and_products_come_from_labels_never_from_raw_topics() -> None:
    region = decision("INC-20261120T1400Z-no_internet-NY-081-ab12")
    segment = decision("INC-20261120T1400Z-wifi_drops-ALL-cd34", "wifi_drops", "*",
                       labels=(("topic", "wifi_drops"), ("region", "*"), ("model", "R7000"), ("firmware", "2.1.7"),
                               ("lot", "L-2211")))
    both = decision("INC-3", "slow_speed", "TX-453", labels=(("model", "R7000"),))
    firmware_only = decision("INC-4", "slow_speed", "TX-001", labels=(("firmware", "3.0"),))
    everywhere = decision("INC-5", "slow_speed", "*")
    doc = status_document([region, segment, both, firmware_only, everywhere], LABELS, NOW)
    found = {i["name"]: (i["regions"], i["products"]) for i in doc["incidents"]}
    assert found == {
        "Internet problems in NY-081": (["NY-081"], []),
        "Wi-Fi problems for R7000 2.1.7": (["nationwide"], ["R7000 2.1.7"]),
        "Speed problems for R7000 in TX-453": (["TX-453"], ["R7000"]),
        "Speed problems for firmware 3.0 in TX-001": (["TX-001"], ["firmware 3.0"]),
        "Speed problems nationwide": (["nationwide"], []),
    }
    text = orjson.dumps(doc).decode()
    for raw in ("no_internet", "wifi_drops", "slow_speed", "INC-20261120", "L-2211", "370", "90x"):
        assert raw not in text, f"{raw!r} reached the public feed"
    ids = {i["name"]: i["id"] for i in doc["incidents"]}
    assert len(set(ids.values())) == 5 and ids["Internet problems in NY-081"] == public_id(region.incident_id)
    [later] = status_document([region], LABELS, NOW + timedelta(hours=2))["incidents"]
    assert later["id"] == ids["Internet problems in NY-081"], "the id is the same from one request to the next"


def test_stage_eta_and_the_responders_note_are_shown() -> None:
    fixing = decision("INC-1", stage="identified", eta=T0 + timedelta(hours=4), note="  A fibre cut; crews on site. ",
                      updated_at=T0 + timedelta(minutes=20))
    watching = decision("INC-2", region="TX-453", stage="monitoring", decided_at=T0 - timedelta(minutes=1))
    [first, second] = status_document([watching, fixing], LABELS, NOW)["incidents"]
    assert (first["status"], first["eta"], first["resolved_at"]) == ("identified", "2026-11-20T18:00:00Z", None)
    assert (first["created_at"], first["updated_at"]) == ("2026-11-20T14:00:00Z", "2026-11-20T14:20:00Z")
    assert first["incident_updates"] == [{"status": "identified", "body": "A fibre cut; crews on site.",
                                          "created_at": "2026-11-20T14:20:00Z"}]
    assert (second["status"], second["eta"]) == ("monitoring", None)
    [update] = second["incident_updates"]
    assert update["body"] and "fix is in place" in update["body"], "no note: the stage's stock sentence"


def test_an_incident_the_flow_closed_is_resolved_whatever_its_last_stage() -> None:
    closed = decision("INC-1", open=False, stage="identified", eta=T0 + timedelta(hours=4),
                      updated_at=T0 + timedelta(minutes=30))
    [incident] = status_document([closed], LABELS, NOW)["incidents"]
    assert (incident["status"], incident["resolved_at"], incident["eta"]) == ("resolved", "2026-11-20T14:30:00Z",
                                                                              None)
    assert incident["incident_updates"][0]["status"] == "resolved"


@pytest.mark.parametrize(("severity", "impact"), [("low", "minor"), ("moderate", "minor"), ("high", "major"),
                                                  ("critical", "critical")])
def test_impact_follows_severity(severity: SeverityLevel, impact: str) -> None:
    doc = status_document([decision("INC-1", severity=severity)], LABELS, NOW)
    assert doc["incidents"][0]["impact"] == impact
    assert doc["status"]["indicator"] == impact


def test_the_page_indicator_is_the_worst_open_impact() -> None:
    assert status_document([], LABELS, NOW)["status"] == {"indicator": "none",
                                                          "description": "All Systems Operational"}
    open_minor = decision("INC-1", severity="moderate")
    resolved_critical = decision("INC-2", region="TX-453", severity="critical", open=False, stage="resolved")
    muted_critical = decision("INC-3", region="TX-001", severity="critical", silenced_by="S-1")
    doc = status_document([open_minor, resolved_critical, muted_critical], LABELS, NOW)
    assert doc["status"]["indicator"] == "minor"
    assert [i["status"] for i in doc["incidents"]] == ["investigating", "resolved"], "open ones first"


def test_open_incidents_come_first_newest_update_first() -> None:
    older = decision("INC-older", region="A-1", updated_at=T0 + timedelta(minutes=5))
    newer = decision("INC-newer", region="A-2", updated_at=T0 + timedelta(minutes=10))
    resolved = decision("INC-done", region="A-3", open=False, updated_at=T0 + timedelta(minutes=50))
    assert names([resolved, older, newer]) == ["Internet problems in A-2", "Internet problems in A-1",
                                               "Internet problems in A-3"]


def test_an_incident_read_twice_appears_once_as_last_changed() -> None:
    opened = decision("INC-1", stage="investigating", updated_at=T0)
    resolved = decision("INC-1", open=False, stage="resolved", updated_at=T0 + timedelta(minutes=40))
    for given in ([opened, resolved], [resolved, opened]):
        [incident] = status_document(given, LABELS, NOW)["incidents"]
        assert incident["status"] == "resolved"


def test_the_document_has_exactly_the_documented_shape() -> None:
    every_kind = [
        decision("INC-1", stage="identified", eta=T0 + timedelta(hours=2), note="Crews on site."),
        decision("INC-2", "wifi_drops", "*", tier="broadcast", approval="approved", severity="critical",
                 labels=(("model", "R7000"), ("firmware", "2.1.7"))),
        decision("INC-3", region="TX-453", open=False, stage="resolved", updated_at=T0 + timedelta(minutes=30)),
    ]
    doc = checked(status_document(every_kind, LABELS, NOW, page_name="Example Co. status"))
    assert doc.page == Page(name="Example Co. status", updated_at="2026-11-20T15:00:00Z")
    assert doc.status.indicator == "critical" and len(doc.incidents) == 3
    assert checked(status_document([], LABELS, NOW)).incidents == []
    with pytest.raises(ValueError, match="extra"):
        StatusDocument.model_validate({**status_document([], LABELS, NOW), "components": []})


# -- Atom ----------------------------------------------------------------------------------------------


def parse_atom(feed: bytes) -> ET.Element:
    assert feed.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(feed)
    assert root.tag == A + "feed"
    return root


def test_the_atom_feed_has_what_rfc_4287_requires() -> None:
    doc = status_document([decision("INC-1", stage="identified", eta=T0 + timedelta(hours=2),
                                    updated_at=T0 + timedelta(minutes=10)),
                           decision("INC-2", "wifi_drops", "*", labels=(("model", "R7000"),))], LABELS, NOW)
    root = parse_atom(atom_feed(doc, FEED, SITE))
    # atom:feed: exactly one id, title, updated; an author (here on the feed, so entries need none); a self link
    for tag in ("id", "title", "updated"):
        assert len(root.findall(A + tag)) == 1, tag
    assert uuid.UUID(root.findtext(A + "id", "").removeprefix("urn:uuid:"))
    assert root.findtext(A + "title") == "Forewarn status"
    assert root.findtext(A + "updated") == "2026-11-20T15:00:00Z"
    assert root.findtext(f"{A}author/{A}name") == "Forewarn status"
    links = {link.get("rel"): link.get("href") for link in root.findall(A + "link")}
    assert links == {"self": FEED, "alternate": SITE}
    entries = root.findall(A + "entry")
    assert [e.findtext(A + "title") for e in entries] == ["Internet problems in NY-081 (Identified)",
                                                          "Wi-Fi problems for R7000 (Investigating)"]
    entry_ids = []
    for entry, incident in zip(entries, doc["incidents"], strict=True):
        for tag in ("id", "title", "updated"):
            assert len(entry.findall(A + tag)) == 1, tag
        entry_ids.append(entry.findtext(A + "id", ""))
        assert entry.findtext(A + "updated") == incident["updated_at"]
        [content] = entry.findall(A + "content")
        assert content.get("type") == "text" and incident["incident_updates"][0]["body"] in (content.text or "")
        assert entry.find(A + "link") is not None
        assert {c.get("term") for c in entry.findall(A + "category")} == {*incident["regions"], *incident["products"]}
    assert all(i.startswith("urn:uuid:") for i in entry_ids) and len(set(entry_ids)) == 2
    assert "Expected fix: 2026-11-20T16:00:00Z" in (entries[0].findtext(A + "content") or "")
    again = parse_atom(atom_feed(status_document([decision("INC-1")], LABELS, NOW + timedelta(hours=1)), FEED, SITE))
    assert again.findtext(f"{A}entry/{A}id") == entry_ids[0], "an entry's id is the same from one request to the next"
    assert again.findtext(A + "id") == root.findtext(A + "id")


def test_an_empty_atom_feed_is_still_valid() -> None:
    root = parse_atom(atom_feed(status_document([], LABELS, NOW), FEED, SITE))
    assert root.findall(A + "entry") == [] and root.findtext(A + "id") and root.findtext(f"{A}author/{A}name")


def test_hostile_text_is_escaped_in_atom_and_kept_as_text_in_json() -> None:
    hostile = "<script>alert('x')</script> & ]]> \x07\x00 \"quoted\""
    d = decision("INC-1", region="NY-081<b>", note=hostile)
    doc = status_document([d], LABELS, NOW, page_name="Status <img src=x onerror=alert(1)>")
    feed = atom_feed(doc, FEED + "?a=1&b=<2>", SITE)
    assert b"<script>" not in feed and b"<img" not in feed and b"<b>" not in feed and b"\x07" not in feed
    assert b"&lt;script&gt;" in feed
    root = parse_atom(feed)
    content = root.findtext(f"{A}entry/{A}content") or ""
    assert "<script>alert('x')</script> & ]]>" in content and '"quoted"' in content
    assert root.findtext(A + "title") == "Status <img src=x onerror=alert(1)>"
    assert root.findtext(f"{A}entry/{A}title") == "Internet problems in NY-081<b> (Investigating)"
    assert {link.get("href") for link in root.findall(A + "link")} == {FEED + "?a=1&b=<2>", SITE}
    [incident] = checked(doc).incidents
    assert incident.incident_updates[0].body.startswith("<script>alert('x')</script> & ]]>")
    assert "\x00" not in incident.incident_updates[0].body


# -- the demo's files ----------------------------------------------------------------------------------


def test_the_demo_writes_both_files_from_its_decision_store(tmp_path: Path) -> None:
    parts = MemoryParts(Settings(), InMemoryCustomerIndex(), tmp_path)
    parts.decisions.save(decision("INC-1", stage="monitoring"))
    parts.decisions.save(decision("INC-2", region="TX-453", tier="notify"))
    write_status_feed(tmp_path, parts, NOW)
    doc = StatusDocument.model_validate_json((tmp_path / "status.json").read_bytes())
    assert [(i.name, i.status) for i in doc.incidents] == [("Internet problems in NY-081", "monitoring")]
    root = parse_atom((tmp_path / "status.atom").read_bytes())
    assert [e.findtext(A + "title") for e in root.findall(A + "entry")] == ["Internet problems in NY-081 (Monitoring)"]
    links = {link.get("rel"): link.get("href") for link in root.findall(A + "link")}
    assert links == {"self": "http://127.0.0.1:8080/status.atom", "alternate": "http://127.0.0.1:8080/status.json"}
