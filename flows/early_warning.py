"""The early-warning dataflow: wiring only; the logic lives in detectors/ and outreach/.

read → parse (bad → dead letters) → time bounds per input partition (out of bounds →
dead letters) → topics → per topic: a case id counted once within a horizon (copies → dead
letters), at most so many regions (the rest count under an overflow bucket, each with a
dead letter) → count per topic in tumbling panes (late → dead letters) → detect →
incidents → outreach (isolate, target, deliver through the ledger) → incident reports.
`forewarn detect` stops after detect and writes spikes. Every stateful step is guarded:
an item it fails on is a dead letter naming step, key and exception; the flow goes on.

For `python -m bytewax.run`, point it at `forewarn.flows.live:get_flow('CONFIG.yaml')`.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, cast

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.outputs import Sink

from forewarn.connectors.cap import is_alert_document, parse_alerts
from forewarn.detectors.fleet import device_groups, fleet_folder, merge_fleet_panes, new_fleet_pane
from forewarn.detectors.panes import Event, add_to_pane, merge_panes, new_pane, to_event
from forewarn.detectors.topic import PANE_EPOCH
from forewarn.detectors.topic_assignment import AssignTopics
from forewarn.flows.steps import (
    CapRegions,
    CheckTimes,
    CountOnce,
    DetectorFactory,
    Guarded,
    TrackHazards,
    TrackIncidents,
    case_topic,
    detect_step,
    fleet_step,
    item_origin,
    late_letter,
    pane_origin,
    partition_key,
    telemetry_late_letter,
    verdicts_origin,
)
from forewarn.hazards import HazardAlert
from forewarn.interfaces import CustomerIndex
from forewarn.outreach.hazards import HazardOutreach
from forewarn.outreach.planner import Outreach, OutreachReport
from forewarn.parsing import parse_record
from forewarn.records import Case, Customer, DeadLetter, Incident, Origin, Spike, Telemetry
from forewarn.settings import Settings
from forewarn.sources import SourceKinds

log = logging.getLogger(__name__)

RawRecord = tuple[Origin, bytes]
T = TypeVar("T")
_REPLAY_NOW = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class FlowIO:
    """The edges a flow runs against: where records come from and where results go.

    `to_raw` turns a source item into (origin, bytes) or a dead letter; `types`
    maps an origin's source (a Kafka topic, a file, the NWS poller's URL) to the record
    kinds it may carry: a record from a source not listed is a dead letter. `replay` makes
    windows close on event time alone.
    """

    source: Source[Any]
    dead_letters: Sink[Any]
    to_raw: Callable[[Any], RawRecord | DeadLetter] = lambda item: item
    encode_dead_letter: Callable[[DeadLetter], Any] = lambda letter: letter.to_json()
    types: dict[str, SourceKinds] = field(default_factory=dict)
    replay: bool = True
    spikes: Sink[Any] | None = None
    encode_spike: Callable[[Spike], Any] = lambda spike: spike
    reports: Sink[Any] | None = None
    encode_report: Callable[[Any], Any] = lambda report: report
    """Encodes incident reports and hazard reports alike (both have to_dict())."""
    outreach: Callable[[], Outreach] | None = None
    region_weights: dict[str, float] | None = None
    extra_sources: list[Source[Any]] = field(default_factory=list)
    """Sources of (origin, bytes) records beside the main one, e.g. the NWS poller."""
    hazards: Callable[[], HazardOutreach] | None = None
    """Outreach for forecast incidents from hazard alerts; None ignores alerts."""
    windows: Sink[Any] | None = None
    """Every scored window (national and per region), for a backtest report."""
    customer_index: Callable[[], CustomerIndex] | None = None
    """Where customer records (the customers topic, or JSONL lines of type customer) are upserted;
    None ignores them."""
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    """The wall clock the time bounds check records against (injected in tests)."""


class _Once(Generic[T]):
    """Builds the outreach parts once per process, on first use inside a worker."""

    def __init__(self, build: Callable[[], T]):
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value


def build_flow(settings: Settings, io: FlowIO, flow_id: str = "forewarn") -> Dataflow:
    """Wire the dataflow; with `io.outreach` None it stops after detection."""
    flow = Dataflow(flow_id)
    raw = op.map("to_raw", op.input("read", flow, io.source), io.to_raw)
    for n, source in enumerate(io.extra_sources):
        raw = op.merge(f"with_source_{n}", raw, op.input(f"read_{n}", flow, source))
    parsed = op.flat_map("parse", raw, lambda item: _parse(item, io.types, settings.max_record_bytes))
    valid = op.branch("valid", parsed, lambda r: not isinstance(r, DeadLetter))
    factory = DetectorFactory(settings.detection, io.region_weights, score_regions=io.windows is not None)
    timed, out_of_bounds = _bound_times(settings, valid.trues, io)
    cases = op.filter("cases", timed, lambda item: isinstance(item[1], Case))
    telemetry = op.filter("telemetry", timed, lambda item: isinstance(item[1], Telemetry))
    assigned, unassigned = _assign_topics(cases)
    once, duplicates = _count_once(settings, assigned)
    capped, region_capped = _cap_regions(settings, once)
    case_verdicts, late = _detect(settings, capped, io.replay, factory)
    fleet_verdicts, fleet_late = _detect_fleet(settings, telemetry, io.replay)
    verdicts = op.merge("verdicts", case_verdicts, fleet_verdicts)
    letters = [valid.falses, out_of_bounds, unassigned, region_capped, late, fleet_late]
    if duplicates is not None:
        letters.append(duplicates)
    if io.windows is not None:
        windows = op.flat_map("windows", verdicts, lambda vs: [w for v in vs for w in v.window_records()])
        op.output("write_windows", op.map("encode_windows", windows, orjson.dumps), io.windows)
    if io.spikes is not None:
        spikes = op.flat_map("spikes", verdicts, lambda vs: [s for v in vs for s in v.spikes])
        op.output("write_spikes", op.map("encode_spikes", spikes, io.encode_spike), io.spikes)
    if io.customer_index is not None:
        _upsert_customers(op.filter("customers", valid.trues, lambda item: isinstance(item[1], Customer)),
                          io.customer_index)
    reports: list[Stream[Any]] = []
    if io.hazards is not None:
        alerts = op.filter("alerts", valid.trues, lambda item: isinstance(item[1], HazardAlert))
        hazard_reports, hazard_failed = _hazard_branch(alerts, io.hazards)
        reports.append(hazard_reports)
        letters.append(hazard_failed)
    if io.outreach is not None:
        tracked = op.stateful_map("incidents", op.key_on("by_topic", verdicts, lambda vs: vs[0].topic),
                                  Guarded("incidents", TrackIncidents(settings.incidents.resolve_after_quiet_panes),
                                          lambda vs: vs[0].topic, verdicts_origin))
        incidents, incidents_failed = _split("incidents", tracked)
        letters.append(incidents_failed)
        outreach = _Once(io.outreach)
        events = op.flat_map("incident_events", incidents, lambda kv: kv[1])
        reports.append(op.map("outreach", events, lambda incident: _handle(outreach, incident)))
    if reports and io.reports is not None:
        merged = op.merge("reports", *reports)
        op.output("write_reports", op.map("encode_reports", merged, io.encode_report), io.reports)
    op.output("write_dead_letters", op.map("encode_dead_letters", op.merge("dead_letters", *letters),
                                           io.encode_dead_letter), io.dead_letters)
    return flow


def _split(step: str, mapped: Stream[tuple[str, Any]]) -> tuple[Stream[tuple[str, Any]], Stream[DeadLetter]]:
    """A guarded stateful step's output: (key, result) items, and the dead letters of items that failed."""
    branch = op.branch(f"{step}_ok", mapped, lambda kv: not isinstance(kv[1], DeadLetter))
    return branch.trues, op.map(f"{step}_failed", branch.falses, lambda kv: kv[1])


def _bound_times(settings: Settings, records: Stream[Any], io: FlowIO
                 ) -> tuple[Stream[Any], Stream[DeadLetter]]:
    """Cases and telemetry whose time is inside the bounds (per input partition), and dead letters of the rest.

    Before any windowing: one record's time must not move a topic's event clock."""
    timed = op.filter("timed", records, lambda item: isinstance(item[1], Case | Telemetry))
    check = CheckTimes.from_settings(settings.detection.time_bounds, io.now, live=not io.replay)
    by_partition = op.key_on("by_partition", timed, partition_key)
    inside, failed = _split("time_bounds", op.stateful("time_bounds", by_partition, check))
    return op.map("drop_partition_key", inside, lambda kv: kv[1]), failed


def _count_once(settings: Settings, cases: Stream[Any]) -> tuple[Stream[Any], Stream[DeadLetter] | None]:
    """Cases whose id was counted within detection.dedup_horizon become dead letters; the others go on.

    Keyed by topic, as the panes are, so each topic's cases keep their order (a copy of a case has its
    topic); cases without an id pass through the same step for the same reason. No step when it is off."""
    s = settings.detection
    if s.dedup_horizon is None:
        return cases, None
    keyed = op.key_on("by_topic_once", cases, case_topic)
    counted, duplicates = _split("dedup", op.stateful_map(
        "dedup", keyed, Guarded("dedup", CountOnce(s.dedup_horizon, s.dedup_max_ids), case_topic, item_origin)))
    return op.map("drop_topic_once", counted, lambda kv: kv[1]), duplicates


def _cap_regions(settings: Settings, cases: Stream[Any]) -> tuple[Stream[Any], Stream[DeadLetter]]:
    """Cases of a topic's regions beyond detection.max_regions_per_topic count under the overflow bucket,
    each with a dead letter naming its region."""
    keyed = op.key_on("by_case_topic", cases, case_topic)
    capped = op.stateful_map("cap_regions", keyed, Guarded(
        "cap_regions", CapRegions(settings.detection.max_regions_per_topic), case_topic, item_origin))
    items = op.flat_map("capped", capped, lambda kv: kv[1] if isinstance(kv[1], list) else [kv[1]])
    split = op.branch("capped_ok", items, lambda item: not isinstance(item, DeadLetter))
    return split.trues, op.map("capped_letters", split.falses, lambda item: cast(DeadLetter, item))


def _parse(item: RawRecord | DeadLetter, types: dict[str, SourceKinds], max_bytes: int) -> list[Any]:
    """Dead letters, or (origin, record) pairs: the origin travels on so late records can name it.

    The source decides what a record may be, never the record: hazard alerts (CAP XML, NWS
    GeoJSON) are parsed by the CAP connector on an alert source (the alerts topic, the NWS
    poller), and on a mixed source (a replay file) when shaped like one; a FeatureCollection
    yields several. Telemetry that counts in no device group is refused here, not lost later.
    """
    if isinstance(item, DeadLetter):
        return [item]
    origin, raw = item
    kinds = types.get(origin.source)
    if kinds is None:
        return [DeadLetter("parse", f"source {origin.source} is not configured to carry any record type",
                           origin, raw[:1024])]
    if kinds.alerts_only or (kinds.sniffs_alerts and is_alert_document(raw)):
        try:
            return [(origin, alert) for alert in parse_alerts(raw)]
        except ValueError as exc:
            return [DeadLetter("parse", f"hazard alert: {exc}", origin, raw[:max_bytes])]
    parsed = parse_record(raw, origin, kinds, max_bytes)
    if isinstance(parsed, DeadLetter):
        return [parsed]
    if isinstance(parsed, Telemetry) and not device_groups(parsed):
        return [DeadLetter("parse", "telemetry counts in no device group: it needs a region, or a model "
                           "and a firmware", origin, raw)]
    return [(origin, parsed)]


def _detect(settings: Settings, records: Stream[Any], replay: bool, factory: DetectorFactory
            ) -> tuple[Stream[Any], Stream[DeadLetter]]:
    s = settings.detection
    events = op.filter_map("to_events", records, lambda item: to_event(item[1], item[0]))
    keyed = op.key_on("by_event_topic", events, lambda e: e.topic)
    clock: EventClock[Event] = _clock(lambda e: e.ts, settings, replay)
    panes = fold_window("count_panes", keyed, clock, TumblingWindower(s.slide, PANE_EPOCH),
                        new_pane, add_to_pane, merge_panes)
    closed = op.map("with_topic", panes.down, lambda kv: (kv[0], (kv[0], kv[1][0], kv[1][1])))
    verdicts, failed = _split("detect", op.stateful_map(
        "detect", closed, Guarded("detect", detect_step(factory), lambda c: c[0], pane_origin(s.slide))))
    nonempty = op.filter("has_verdicts", op.map("values", verdicts, lambda kv: kv[1]), bool)
    late = op.map("late", panes.late, lambda item: late_letter(item, s.slide, s.allowed_lateness))
    return nonempty, op.merge("detect_letters", late, failed)


def _hazard_branch(alerts: Stream[Any], build: Callable[[], HazardOutreach]
                   ) -> tuple[Stream[Any], Stream[DeadLetter]]:
    """Alerts → forecast incidents (one tracker: updates and cancels must meet their alert) → outreach."""
    keyed = op.key_on("all_hazards", alerts, lambda _: "hazards")
    tracked, failed = _split("track_hazards", op.stateful_map(
        "track_hazards", keyed, Guarded("track_hazards", TrackHazards(), lambda _: "hazards", item_origin)))
    incidents = op.flat_map("hazard_incidents", tracked, lambda kv: kv[1])
    outreach = _Once(build)
    return op.map("hazard_outreach", incidents, lambda incident: outreach().handle(incident)), failed


CUSTOMER_BUCKETS = 64
"""Customer upserts are spread over this many keys; one id always lands in the same one, so each
customer has one writer at a time (what the index's read-then-write upsert assumes)."""


def _upsert_customers(customers: Stream[Any], build: Callable[[], CustomerIndex]) -> None:
    """Customer records into the index, up to 1,000 per pipelined upsert or whatever a second brings."""
    keyed = op.key_on("by_customer_bucket", customers,
                      lambda item: str(zlib.crc32(item[1].id.encode()) % CUSTOMER_BUCKETS))
    batches = op.collect("customer_batches", keyed, timedelta(seconds=1), 1_000)
    index = _Once(build)
    upserted = op.map("upsert_customers", batches, lambda kv: index().upsert(c for _, c in kv[1]))
    op.inspect("log_upserts", upserted, lambda _step, n: log.debug("upserted %d customers", n))


def _assign_topics(cases: Stream[Any]) -> tuple[Stream[Any], Stream[DeadLetter]]:
    """Topic discovery: one model for all cases (it learns the vocabulary of every topic)."""
    keyed = op.key_on("one_topic_model", cases, lambda _: "topics")
    assigned, failed = _split("assign_topics", op.stateful_map(
        "assign_topics", keyed, Guarded("assign_topics", AssignTopics(), lambda _: "topics", item_origin)))
    return op.map("drop_topic_key", assigned, lambda kv: kv[1]), failed


def _clock(ts: Callable[[Any], datetime], settings: Settings, replay: bool) -> EventClock[Any]:
    """Event time with a bounded wait; a replay closes windows on event time alone."""
    wait = settings.detection.allowed_lateness
    if replay:
        return EventClock(ts, wait_for_system_duration=wait, now_getter=lambda: _REPLAY_NOW,
                          to_system_utc=lambda _: None)
    return EventClock(ts, wait_for_system_duration=wait)


def _detect_fleet(settings: Settings, records: Stream[Any], replay: bool
                  ) -> tuple[Stream[Any], Stream[DeadLetter]]:
    """Telemetry: fault shares per device group, as verdicts of the case topics they map to."""
    s = settings.detection
    grouped = op.flat_map("device_groups", records,
                          lambda item: [(key, item) for key in device_groups(item[1])])
    fold = fleet_folder(s.telemetry_fault_metrics)
    panes = fold_window("fleet_panes", grouped, _clock(lambda item: item[1].ts, settings, replay),
                        TumblingWindower(s.slide, PANE_EPOCH), new_fleet_pane,
                        lambda acc, item: fold(acc, item[1]), merge_fleet_panes)
    closed = op.map("with_group", panes.down, lambda kv: (kv[0], (kv[0], kv[1][0], kv[1][1])))
    verdicts, failed = _split("fleet_detect", op.stateful_map(
        "fleet_detect", closed, Guarded("fleet_detect", fleet_step(s), lambda c: c[0], pane_origin(s.slide))))
    per_topic = op.flat_map("fleet_verdicts", verdicts, lambda kv: [[v] for v in kv[1]])
    # A reading counts in up to two groups; its first group alone reports it late, so it is dead-lettered once.
    first_group = op.filter("fleet_late_once", panes.late,
                            lambda kv: kv[0] == device_groups(kv[1][1][1])[0])
    late = op.map("fleet_late", first_group, lambda kv: telemetry_late_letter(kv, s.slide, s.allowed_lateness))
    return per_topic, op.merge("fleet_letters", late, failed)


def _handle(outreach: Callable[[], Outreach], incident: Incident) -> OutreachReport:
    return outreach().handle(incident)
