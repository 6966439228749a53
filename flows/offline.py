"""The file-driven commands: detect (backtest), replay (dry-run), customers load, audience preview."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis
from bytewax.testing import run_main
from rich.console import Console
from rich.table import Table

from connectors.cap import parse_alerts
from connectors.customer_files import read_customers
from connectors.geo import customers_in_area
from connectors.memory import InMemoryCustomerIndex
from connectors.redis_index import RedisCustomerIndex
from connectors.redis_ledger import RedisContactLog, RedisIncidentStore, RedisLedger
from connectors.segments import matches
from connectors.sms import sms_segments
from connectors.templates import JinjaRenderer
from flows.backtest_report import write_backtest_report
from flows.early_warning import build_flow
from flows.summary import RunSummary
from flows.wiring import file_io, memory_io, redis_client
from forewarn.interfaces import CustomerIndex
from forewarn.records import NATIONAL, ContactCard, Customer, DeadLetter, Incident
from forewarn.settings import ConfigError, RedisSettings, Secrets, Settings, SmsSettings
from outreach.audience import Audience, Recipient, audience_of
from outreach.delivery import ContactCap
from outreach.planner import message_context
from outreach.policy import QuietHours
from outreach.targeting import incident_segment


def run_detect(settings: Settings, inputs: list[Path], output: Path, report: Path | None = None
               ) -> dict[str, object]:
    """Detection alone over JSONL files: spikes to `output`, bad records beside it, optionally a report."""
    out = output.parent
    letters = output.with_name(output.stem + ".dead_letters.jsonl")
    windows = output.with_name(output.stem + ".windows.jsonl")
    for path in (output, letters, windows):
        path.unlink(missing_ok=True)
    io = file_io(settings, inputs, out, outreach=None)
    io.spikes = _sink(output)
    io.dead_letters = _sink(letters)
    if report is not None:
        io.windows = _sink(windows)
    run_main(build_flow(settings, io, "forewarn-detect"))
    result: dict[str, object] = {"spikes": _lines(output), "dead_letters": _lines(letters),
                                 "dead_letters_path": letters}
    if report is not None:
        result["alarms"] = write_backtest_report(report, output, windows, settings.detection.slide.total_seconds())
        windows.unlink(missing_ok=True)
    return result


def _sink(path: Path):  # type: ignore[no-untyped-def]
    from connectors.jsonl import JsonlSink

    return JsonlSink(path, lambda b: b)


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def _load_memory_index(settings: Settings, path: Path) -> InMemoryCustomerIndex:
    index = InMemoryCustomerIndex(settings.targeting.extra_traits)
    index.upsert(c for c in read_customers(path) if isinstance(c, Customer))
    return index


def run_replay(settings: Settings, inputs: list[Path], out: Path, customers: Path | None) -> RunSummary:
    """The full flow over files with the ledger in memory and sends written to outbox files."""
    if customers is not None:
        index: CustomerIndex = _load_memory_index(settings, customers)
    else:
        index = _redis_index(settings, None)
    for name in ("incidents.jsonl", "dead_letters.jsonl", "spikes.jsonl", "outbox_sms.jsonl", "outbox_email.jsonl"):
        (out / name).unlink(missing_ok=True)
    io = memory_io(settings, inputs, out, index)
    run_main(build_flow(settings, io, "forewarn-replay"))
    return RunSummary.from_dir(out)


def _redis_index(settings: Settings, url: str | None) -> RedisCustomerIndex:
    secrets = Secrets()
    if url is None and settings.redis is None and secrets.forewarn_redis_url is None:
        raise ConfigError("no Redis configured: add a redis section to the config, set FOREWARN_REDIS_URL, "
                          "or pass --redis-url")
    redis_settings = settings.redis or RedisSettings()
    client = (redis.Redis.from_url(url) if url is not None
              else redis_client(settings.model_copy(update={"redis": redis_settings}), secrets))
    return RedisCustomerIndex(client, redis_settings.prefix, extra_traits=settings.targeting.extra_traits)


def load_customers(settings: Settings, path: Path, redis_url: str | None) -> tuple[int, int, float]:
    """Upsert customers from CSV/JSONL into Redis; rejected rows are written beside the file."""
    index = _redis_index(settings, redis_url)
    started = time.perf_counter()
    rejected_path = path.with_name(path.name + ".rejected.jsonl")
    rejected_path.unlink(missing_ok=True)
    good: list[Customer] = []
    loaded = rejected = 0
    with rejected_path.open("ab") as rejects:
        for item in read_customers(path):
            if isinstance(item, DeadLetter):
                rejects.write(item.to_json() + b"\n")
                rejected += 1
                continue
            good.append(item)
            if len(good) >= 5000:
                loaded += index.upsert(good)
                good.clear()
        loaded += index.upsert(good)
    if not rejected:
        rejected_path.unlink()
    return loaded, rejected, time.perf_counter() - started


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
    sms_encoding: str = ""
    sms_segments: int = 0
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
        sms = self.by_channel.get("sms", 0)
        table.add_row("SMS per message", f"{self.sms_segments} segment(s), {self.sms_encoding}")
        table.add_row("estimated SMS cost",
                      f"{sms * self.sms_segments * self.price_per_segment:.2f} "
                      f"({sms} x {self.sms_segments} x {self.price_per_segment} per segment)")
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
    index: CustomerIndex = _load_memory_index(settings, customers) if customers else _redis_index(settings, redis_url)
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
    encoding, segments = sms_segments(_sample_sms(settings, topic, audience.recipients, index))
    price = settings.sms.price_per_segment if settings.sms else SmsSettings.model_fields["price_per_segment"].default
    return AudiencePreview(segment, polygon.name if polygon else None, len(audience.recipients),
                           audience.by_channel(), audience.excluded,
                           [r.customer.id for r in audience.recipients[:5]], encoding, segments, price)


def _sample_sms(settings: Settings, topic: str, recipients: list[Recipient[ContactCard]],
                index: CustomerIndex) -> str:
    """The warning SMS the first SMS recipient would get (a stand-in customer when there is none)."""
    now = datetime.now(UTC)
    first = next((r.customer.id for r in recipients if r.channel == "sms"), None)
    customer = (index.get_many([first])[0] if first else None) or Customer(id="PREVIEW", region="-", timezone="UTC")
    incident = Incident("PREVIEW", topic, NATIONAL, "opened", now, now, now, 0, 0.0, 0, 0)
    return JinjaRenderer(settings.outreach.templates).render(topic, "warning", "sms",
                                                            message_context(incident, customer)).body


def _preview_incident(settings: Settings, incident_id: str, index: CustomerIndex, redis_url: str | None,
                      topic: str) -> AudiencePreview:
    """An incident's audience as outreach would build it now: its segment, minus reporters and
    the customers the ledger says were already contacted."""
    client = _redis_index(settings, redis_url).client
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
    encoding, segments = sms_segments(_sample_sms(settings, incident.topic, audience.recipients, index))
    price = settings.sms.price_per_segment if settings.sms else SmsSettings.model_fields["price_per_segment"].default
    return AudiencePreview(segment, incident_id, len(audience.recipients), audience.by_channel(),
                           audience.excluded, [r.customer.id for r in audience.recipients[:5]], encoding,
                           segments, price)


def _apply_cap(settings: Settings, audience: Audience[ContactCard], index: RedisCustomerIndex) -> None:
    """Move the recipients already at `max_warnings_per_day` (per the Redis contact log) to "capped"."""
    most = settings.outreach.max_warnings_per_day
    if most is None:
        return
    cap = ContactCap(RedisContactLog(index.client, index.prefix), most)
    now = datetime.now(UTC)
    kept = [r for r in audience.recipients if cap.allows(r.customer.id, now)]
    if len(kept) < len(audience.recipients):
        audience.excluded["capped"] += len(audience.recipients) - len(kept)
        audience.recipients = kept
