"""`forewarn audience`: who a segment, an area or an incident would reach, and at what SMS cost.

A dry run: nothing is sent and nothing is recorded. The audience is decided from contact cards
(see `CustomerIndex.contacts`), so previewing 100,000 customers takes well under a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from forewarn.connectors.cap import parse_alerts
from forewarn.connectors.geo import customers_in_area
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_ledger import RedisContactLog, RedisIncidentStore, RedisLedger
from forewarn.connectors.segments import matches
from forewarn.connectors.sms import sms_segments
from forewarn.connectors.templates import JinjaRenderer
from forewarn.flows.offline import load_memory_index, redis_index
from forewarn.interfaces import CustomerIndex
from forewarn.outreach.audience import Audience, Recipient, audience_of
from forewarn.outreach.delivery import ContactCap
from forewarn.outreach.planner import message_context
from forewarn.outreach.policy import QuietHours
from forewarn.outreach.targeting import incident_segment
from forewarn.records import NATIONAL, ContactCard, Customer, Incident
from forewarn.settings import RedisSettings, Settings, SmsSettings


def parse_segment(text: str) -> dict[str, str]:
    """Parse `model=R7000,firmware=2.1.7` into a segment mapping.

    >>> parse_segment("model=R7000, firmware=2.1.7")
    {'model': 'R7000', 'firmware': '2.1.7'}
    """
    segment = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"segment part {part!r} is not attribute=value, e.g. model=R7000,firmware=2.1.7")
        segment[name.strip()] = value.strip()
    if not segment:
        raise ValueError("empty segment: give attribute=value pairs, e.g. region=TX-453")
    return segment


@dataclass
class AudiencePreview:
    """Who a segment or area would reach, who is left out and why, and what the SMS would cost."""

    segment: dict[str, str]
    area: str | None
    size: int
    by_channel: dict[str, int]
    excluded: Counter[str]
    sample: list[str] = field(default_factory=list)
    sms: list[SmsCost] = field(default_factory=list)
    price_per_segment: float = 0.0

    def print(self, console: Console) -> None:
        where = f"{self.segment or ''}{' in ' + self.area if self.area else ''}"
        table = Table(title=f"Audience for {where} (dry-run: nothing sent)")
        table.add_column("measure")
        table.add_column("value")
        table.add_row("would be contacted", str(self.size))
        for channel, n in sorted(self.by_channel.items()):
            table.add_row(f"  by {channel}", str(n))
        for reason, n in sorted(self.excluded.items()):
            table.add_row(f"excluded: {reason}", str(n))
        for cost in self.sms:
            table.add_row(f"SMS per message ({cost.language})",
                          f"{cost.segments} segment(s), {cost.encoding} · {cost.recipients} recipients")
        total = sum(c.recipients * c.segments for c in self.sms)
        terms = " + ".join(f"{c.recipients} x {c.segments}" for c in self.sms) or "0"
        table.add_row("estimated SMS cost",
                      f"{total * self.price_per_segment:.2f} ({terms} = {total} segments x {self.price_per_segment})")
        table.add_row("sample customer ids", ", ".join(self.sample) or "-")
        console.print(table)


def load_area(path: Path) -> tuple[list[list[tuple[float, float]]], list[tuple[float, float, float]]]:
    """Polygons (lat, lon rings) and circles from a GeoJSON polygon/feature or a CAP/NWS alert file."""
    raw = path.read_bytes()
    if raw.lstrip()[:1] == b"{":
        doc = orjson.loads(raw)
        geometry = doc.get("geometry", doc) if doc.get("type") == "Feature" else doc
        if geometry and geometry.get("type") in ("Polygon", "MultiPolygon"):
            rings = ([geometry["coordinates"][0]] if geometry["type"] == "Polygon"
                     else [poly[0] for poly in geometry["coordinates"]])
            return [[(lat, lon) for lon, lat in ring] for ring in rings], []
    polygons: list[list[tuple[float, float]]] = []
    circles: list[tuple[float, float, float]] = []
    for alert in parse_alerts(raw):
        for area in alert.areas:
            polygons.extend([list(ring) for ring in area.polygons])
            circles.extend((c.lat, c.lon, c.radius_km) for c in area.circles)
    if not polygons and not circles:
        raise ValueError(f"{path} holds no polygon or circle: give a GeoJSON Polygon/MultiPolygon or a CAP "
                         "alert with <polygon>/<circle> areas")
    return polygons, circles


def preview_audience(settings: Settings, segment_text: str | None, redis_url: str | None,
                     polygon: Path | None = None, customers: Path | None = None,
                     topic: str = "default") -> AudiencePreview:
    """Dry-run of an audience: a segment, an area (polygon/CAP file), or both; nothing is sent."""
    index: CustomerIndex = load_memory_index(settings, customers) if customers else redis_index(settings, redis_url)
    if segment_text and segment_text.startswith("INC-"):
        return _preview_incident(settings, segment_text, index, redis_url, topic)
    segment = parse_segment(segment_text) if segment_text else {}
    if polygon is None and not segment:
        raise ValueError("give a segment such as model=R7000,firmware=2.1.7, or --polygon FILE, or both")
    candidates: Iterator[ContactCard]
    if polygon is not None:
        polygons, circles = load_area(polygon)
        candidates = (c.card() for c in customers_in_area(index, polygons, circles)
                      if matches(c, segment, settings.targeting.extra_traits))
    else:
        candidates = index.contacts(segment)
    quiet = QuietHours(*settings.outreach.quiet_hours) if settings.outreach.quiet_hours else None
    audience = audience_of(candidates, segment, frozenset(), 10**9, quiet, datetime.now(UTC))
    if isinstance(index, RedisCustomerIndex):
        _apply_cap(settings, audience, index)
    now = datetime.now(UTC)
    sms = sms_costs(settings, Incident("PREVIEW", topic, NATIONAL, "opened", now, now, now, 0, 0.0, 0, 0),
                    audience.recipients, index)
    return AudiencePreview(segment, polygon.name if polygon else None, len(audience.recipients),
                           audience.by_channel(), audience.excluded,
                           [r.customer.id for r in audience.recipients[:5]], sms, _price(settings))


@dataclass(frozen=True)
class SmsCost:
    """The warning SMS in one language: how it is encoded, its segments, and how many get it."""

    language: str
    encoding: str
    segments: int
    recipients: int


def sms_costs(settings: Settings, incident: Incident, recipients: list[Recipient[ContactCard]],
              index: CustomerIndex) -> list[SmsCost]:
    """The warning SMS per language of the SMS recipients, rendered for the first recipient of each.

    Languages differ in length and alphabet: Spanish with an accent outside GSM-7 travels as
    UCS-2, 70 characters a segment instead of 160, so one sample would misstate the cost.
    """
    by_language: Counter[str] = Counter()
    first: dict[str, str] = {}
    for r in recipients:
        if r.channel == "sms":
            by_language[r.customer.language] += 1
            first.setdefault(r.customer.language, r.customer.id)
    customers = dict(zip(first, index.get_many(list(first.values())), strict=True))
    renderer = JinjaRenderer(settings.outreach.templates)
    costs = []
    for language, n in sorted(by_language.items(), key=lambda item: -item[1]):
        customer = customers[language] or Customer(id="PREVIEW", region="-", language=language)
        body = renderer.render(incident.topic, "warning", "sms", message_context(incident, customer)).body
        encoding, segments = sms_segments(body)
        costs.append(SmsCost(language, encoding, segments, n))
    return costs


def _price(settings: Settings) -> float:
    return settings.sms.price_per_segment if settings.sms else SmsSettings.model_fields["price_per_segment"].default


def _preview_incident(settings: Settings, incident_id: str, index: CustomerIndex, redis_url: str | None,
                      topic: str) -> AudiencePreview:
    """An incident's audience as outreach would build it now: its segment, minus reporters and
    the customers the ledger says were already contacted."""
    client = redis_index(settings, redis_url).client
    prefix = (settings.redis or RedisSettings()).prefix
    incident = RedisIncidentStore(client, prefix).load(incident_id)
    if incident is None:
        raise ValueError(f"no incident {incident_id} in Redis: check the id in the incidents topic or "
                         "incidents.jsonl (incidents are kept 30 days)")
    segment = dict(incident.known_segment) | incident_segment(incident, incident.segment)
    contacted = frozenset(RedisLedger(client, prefix).recipients(incident_id, "warning"))
    quiet = QuietHours(*settings.outreach.quiet_hours) if settings.outreach.quiet_hours else None
    audience = audience_of(index.contacts(segment) if segment else iter(()), segment,
                           incident.reporters | incident.earlier_reporters, 10**9, quiet, datetime.now(UTC),
                           contacted)
    if isinstance(index, RedisCustomerIndex):
        _apply_cap(settings, audience, index)
    sms = sms_costs(settings, incident, audience.recipients, index)
    return AudiencePreview(segment, incident_id, len(audience.recipients), audience.by_channel(),
                           audience.excluded, [r.customer.id for r in audience.recipients[:5]], sms, _price(settings))


def _apply_cap(settings: Settings, audience: Audience[ContactCard], index: RedisCustomerIndex) -> None:
    """Move the recipients already at `max_warnings_per_day` (per the Redis contact log) to "capped"."""
    most = settings.outreach.max_warnings_per_day
    if most is None:
        return
    cap = ContactCap(RedisContactLog(index.client, index.prefix), most)
    allowed = cap.allowed([r.customer.id for r in audience.recipients], datetime.now(UTC))
    kept = [r for r, ok in zip(audience.recipients, allowed, strict=True) if ok]
    if len(kept) < len(audience.recipients):
        audience.excluded["capped"] += len(audience.recipients) - len(kept)
        audience.recipients = kept
