"""The public status feed: open incidents by region and product, their stage and ETA, for a website banner
and a phone queue's announcement (pure: decisions in, a JSON document or Atom bytes out).

What appears: incidents whose tier gets a status entry (`publish`, `broadcast`), approved or not needing
approval, neither silenced nor inhibited, whose topic has a company label (`outreach.topic_labels`); open
ones, and those resolved within `recent` (24 h) of `now`. The public never sees a raw topic string or the
internal incident id (which spells the topic): an incident is named from its label, region and product
("Internet problems in NY-081", "Wi-Fi problems for R7000 2.1.7"), and its `id` is a digest of the
incident id, stable across requests. Nothing about customers is in it (not even the audience's size).

The JSON document is a subset of Statuspage's `/api/v2/summary.json`, plus `eta`, `regions` and
`products` on each incident; times are RFC 3339 in UTC, absent ones null::

    {"page": {"name": str, "updated_at": time},          # updated_at: when the document was made (`now`)
     "status": {"indicator": "none" | "minor" | "major" | "critical", "description": str},
     "incidents": [{"id": str, "name": str,
                    "status": "investigating" | "identified" | "monitoring" | "resolved",
                    "impact": "minor" | "major" | "critical",
                    "created_at": time, "updated_at": time, "resolved_at": time | null, "eta": time | null,
                    "regions": [str], "products": [str],
                    "incident_updates": [{"status": str, "body": str, "created_at": time}]}]}

`impact` follows severity: low and moderate are `minor`, high is `major`, critical is `critical`. The page's
`indicator` is the worst impact among the open incidents (`none` when none is open). Open incidents come
first, then resolved ones, each newest update first; a resolved incident's `eta` is null.
`incident_updates` holds the latest update only (the responders' public note, or a stock sentence for the
stage when they wrote none). An incident the flow closed (quiet again) counts as resolved, whatever stage
responders last set.

>>> from datetime import UTC, datetime, timedelta
>>> from forewarn.decisions import Decision
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> d = Decision("INC-1", "no_internet", "NY-081", "high", (), "regional", (), "publish", "not_needed", at,
...              stage="identified", eta=at + timedelta(hours=3), note="A cut fibre; crews are on site.")
>>> doc = status_document([d], {"no_internet": "internet"}, at + timedelta(minutes=5))
>>> doc["status"]
{'indicator': 'major', 'description': 'Partial System Outage'}
>>> [(i["name"], i["status"], i["impact"], i["eta"]) for i in doc["incidents"]]
[('Internet problems in NY-081', 'identified', 'major', '2026-11-20T17:00:00Z')]
>>> status_document([d], {}, at)["incidents"]  # no label for the topic: not published
[]
>>> feed = atom_feed(doc, "https://status.example.com/status.atom", "https://status.example.com/")
>>> feed.startswith(b"<?xml") and b">Internet problems in NY-081 (Identified)</title>" in feed
True
"""

from __future__ import annotations

import hashlib
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from forewarn.decisions import Decision, SeverityLevel, Stage, Tier
from forewarn.records import NATIONAL, rfc3339

Impact = Literal["none", "minor", "major", "critical"]

STATUS_TIERS: frozenset[Tier] = frozenset({"publish", "broadcast"})
"""Tiers that get a status entry."""
PUBLIC_APPROVALS = frozenset({"not_needed", "approved"})

IMPACT: dict[SeverityLevel, Impact] = {"low": "minor", "moderate": "minor", "high": "major", "critical": "critical"}
_IMPACTS: tuple[Impact, ...] = ("none", "minor", "major", "critical")
DESCRIPTION: dict[Impact, str] = {"none": "All Systems Operational", "minor": "Minor Service Outage",
                                  "major": "Partial System Outage", "critical": "Major Service Outage"}
"""The page's words for its indicator (Statuspage's)."""

STAGE_WORDS: dict[Stage, str] = {"investigating": "Investigating", "identified": "Identified",
                                 "monitoring": "Monitoring", "resolved": "Resolved"}
STOCK_BODY: dict[Stage, str] = {
    "investigating": "We are looking into reports of this problem.",
    "identified": "We have found the cause and are working on a fix.",
    "monitoring": "A fix is in place and we are watching the results.",
    "resolved": "This problem is resolved.",
}
"""An update's body when responders left no public note."""

NATIONWIDE = "nationwide"
ATOM_NS = "http://www.w3.org/2005/Atom"

# Characters XML 1.0 cannot carry at all (escaping does not help): dropped from every text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def public_id(incident_id: str) -> str:
    """The incident's id for the public: a digest (the internal id spells the raw topic), stable across requests.

    >>> public_id("INC-20261120T1400Z-no_internet-NY-081-ab12")
    'INC-c098c8dd7ded'
    """
    return "INC-" + hashlib.sha1(incident_id.encode()).hexdigest()[:12]


def _resolved(decision: Decision) -> bool:
    return not decision.open or decision.stage == "resolved"


def _changed_at(decision: Decision) -> datetime:
    return decision.updated_at or decision.decided_at


def published(decision: Decision, labels: Mapping[str, str], now: datetime,
              recent: timedelta = timedelta(hours=24)) -> bool:
    """Whether `decision` belongs in the public feed at `now` (the rules in the module doc)."""
    if decision.tier not in STATUS_TIERS or decision.approval not in PUBLIC_APPROVALS:
        return False
    if decision.silenced_by is not None or decision.inhibited_by is not None:
        return False
    if decision.topic not in labels:
        return False
    return not _resolved(decision) or now - _changed_at(decision) <= recent


def _products(decision: Decision) -> list[str]:
    traits = dict(decision.labels)
    model, firmware = traits.get("model"), traits.get("firmware")
    if model:
        return [f"{model} {firmware}" if firmware else model]
    return [f"firmware {firmware}"] if firmware else []


def _name(label: str, regions: list[str], products: list[str]) -> str:
    name = f"{label[:1].upper()}{label[1:]} problems"
    if products:
        name += " for " + ", ".join(products)
    if regions != [NATIONWIDE]:
        name += " in " + ", ".join(regions)
    elif not products:
        name += " " + NATIONWIDE
    return name


def _incident(decision: Decision, label: str) -> dict[str, Any]:
    regions = [NATIONWIDE if decision.region == NATIONAL else decision.region]
    products = _products(decision)
    resolved = _resolved(decision)
    stage: Stage = "resolved" if resolved else decision.stage
    changed = rfc3339(_changed_at(decision))
    return {
        "id": public_id(decision.incident_id),
        "name": _name(label, regions, products),
        "status": stage,
        "impact": IMPACT[decision.severity],
        "created_at": rfc3339(decision.decided_at),
        "updated_at": changed,
        "resolved_at": changed if resolved else None,
        "eta": rfc3339(decision.eta) if decision.eta is not None and not resolved else None,
        "regions": regions,
        "products": products,
        "incident_updates": [{"status": stage, "body": _text(decision.note).strip() or STOCK_BODY[stage],
                              "created_at": changed}],
    }


def status_document(decisions: Iterable[Decision], labels: Mapping[str, str], now: datetime,
                    page_name: str = "Forewarn status", recent: timedelta = timedelta(hours=24)) -> dict[str, Any]:
    """The status feed's JSON document (shape in the module doc) of the `decisions` that are public at `now`.

    `decisions` may hold an incident more than once (open ones and recent ones, read apart): the one
    changed last counts.
    """
    latest: dict[str, Decision] = {}
    for decision in decisions:
        seen = latest.get(decision.incident_id)
        if seen is None or _changed_at(decision) >= _changed_at(seen):
            latest[decision.incident_id] = decision
    shown = sorted((d for d in latest.values() if published(d, labels, now, recent)),
                   key=lambda d: (not _resolved(d), _changed_at(d).timestamp(), public_id(d.incident_id)),
                   reverse=True)
    incidents = [_incident(d, labels[d.topic]) for d in shown]
    worst = max((_IMPACTS.index(i["impact"]) for i in incidents if i["status"] != "resolved"), default=0)
    indicator = _IMPACTS[worst]
    return {
        "page": {"name": page_name, "updated_at": rfc3339(now)},
        "status": {"indicator": indicator, "description": DESCRIPTION[indicator]},
        "incidents": incidents,
    }


def _text(value: object) -> str:
    return _NOT_XML.sub("", str(value))


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _text(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _text(text)
    return element


def _entry_text(incident: Mapping[str, Any]) -> str:
    lines = [f"Status: {STAGE_WORDS.get(incident['status'], incident['status'])}",
             f"Impact: {incident['impact']}",
             f"Regions: {', '.join(incident['regions'])}"]
    if incident["products"]:
        lines.append(f"Products: {', '.join(incident['products'])}")
    if incident["eta"]:
        lines.append(f"Expected fix: {incident['eta']}")
    if incident["resolved_at"]:
        lines.append(f"Resolved: {incident['resolved_at']}")
    lines += ["", *(u["body"] for u in incident["incident_updates"])]
    return "\n".join(lines)


def atom_feed(document: Mapping[str, Any], feed_url: str, site_url: str) -> bytes:
    """The `status_document` as an Atom 1.0 feed (RFC 4287), UTF-8 with an XML declaration.

    The feed's and each entry's id are `urn:uuid:` names derived from `feed_url` (and the incident's public
    id), so they stay the same from one request to the next; every text is escaped by ElementTree, and
    characters XML cannot carry at all are dropped.
    """
    page = document["page"]
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    _add(feed, "id", uuid.uuid5(uuid.NAMESPACE_URL, feed_url).urn)
    _add(feed, "title", page["name"], type="text")
    _add(feed, "subtitle", document["status"]["description"], type="text")
    _add(feed, "updated", page["updated_at"])
    _add(feed, "link", rel="self", type="application/atom+xml", href=feed_url)
    _add(feed, "link", rel="alternate", href=site_url)
    author = _add(feed, "author")
    _add(author, "name", page["name"])
    for incident in document["incidents"]:
        entry = _add(feed, "entry")
        _add(entry, "id", uuid.uuid5(uuid.NAMESPACE_URL, f"{feed_url}#{incident['id']}").urn)
        stage = STAGE_WORDS.get(incident["status"], incident["status"])
        _add(entry, "title", f"{incident['name']} ({stage})", type="text")
        _add(entry, "updated", incident["updated_at"])
        _add(entry, "published", incident["created_at"])
        _add(entry, "link", rel="alternate", href=site_url)
        for region in incident["regions"]:
            _add(entry, "category", term=region, label=f"Region {region}")
        for product in incident["products"]:
            _add(entry, "category", term=product, label=f"Product {product}")
        _add(entry, "content", _entry_text(incident), type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
