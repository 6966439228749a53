"""The early-warning dataflow: wiring only; the logic lives in detectors/ and outreach/.

read (one item per batch of a partition) → per input partition: decode (cases on a fast path; bad →
dead letters; the company's own, by channel, not counted), time bounds, topic discovery for cases
that need it → per detection shard (topics spread over `detection.shards` keys): each case counted
once, regions capped, counted into panes, judged as the newest pane fills (early firing) and when
every partition has passed the pane (late → dead letters) → incidents → outreach (isolate, target,
deliver through the ledger) → incident reports. Telemetry, customers and alerts leave the partition
step as records for their own branches. `forewarn detect` stops after detect and writes spikes.
Every stateful step turns an item it fails on into a dead letter naming step, key and exception; the
flow goes on.

For `python -m bytewax.run`, point it at `forewarn.flows.live:get_flow('CONFIG.yaml')`.
"""

from __future__ import annotations

import gc
import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, Source
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.outputs import Sink

from forewarn.batches import RawBatch, as_batch
from forewarn.detectors.fleet import device_groups, fleet_folder, merge_fleet_panes, new_fleet_pane
from forewarn.detectors.shard import ShardRules
from forewarn.detectors.time_bounds import TimeBounds
from forewarn.detectors.topic import PANE_EPOCH
from forewarn.flows.partitions import PartitionRules, ReadingSource
from forewarn.flows.steps import (
    DetectorFactory,
    DetectShard,
    Guarded,
    TrackHazards,
    TrackIncidents,
    fleet_step,
    item_origin,
    pane_origin,
    telemetry_late_letter,
    verdicts_origin,
)
from forewarn.hazards import HazardAlert
from forewarn.interfaces import CustomerIndex
from forewarn.metrics import EngineMetrics
from forewarn.outreach.hazards import HazardOutreach
from forewarn.outreach.planner import Outreach, OutreachReport
from forewarn.records import Customer, DeadLetter, Incident, Spike, Telemetry
from forewarn.settings import Settings
from forewarn.sources import SourceKinds

log = logging.getLogger(__name__)

T = TypeVar("T")
_REPLAY_NOW = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class FlowIO:
    """The edges a flow runs against: where records come from and where results go.

    Sources emit `RawBatch`es (a per-record source's (origin, bytes) items are wrapped); `types`
    maps an origin's source (a Kafka topic, a file, the NWS poller's URL) to the record
    kinds it may carry: a record from a source not listed is a dead letter. `replay` makes
    windows close on event time alone.
    """

    source: Source[Any]
    dead_letters: Sink[Any]
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
    """The wall clock the time bounds check records against, and live panes close by (injected in tests)."""
    partitions: list[str] | None = None
    """The input partitions that carry cases (`topic#index`, or a file): a pane closes when each has passed
    it. None: the partitions are learned as they speak (a replay may then call some records late)."""
    early_spikes: bool = False
    """Write spikes fired early to `spikes` too (each with its `decided_at`), not only closed windows'."""
    drain: Callable[[], bool] | None = None
    """After the flow ends, waits for an in-process outbox's messages to be delivered (demo, replay)."""
    metrics: EngineMetrics | None = None
    """Where the engine counts spikes with their event-to-decision latency and each shard's oldest open pane
    (`flows.observability.instrument` sets it, with the rest of the counters)."""


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


GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic collector's thresholds while a flow runs. At Python's default (700 allocations) it walks the
flow's long-lived state (baselines, ids, panes) over and over: a fifth of the detection path's time, measured
(bench.bench_engine detection); the flow's data makes no cycles worth collecting that often."""


def _tune_gc() -> None:
    """Raise the collector's thresholds, unless whoever embeds Forewarn set their own."""
    if gc.get_threshold()[0] == 700:
        gc.set_threshold(*GC_THRESHOLDS)


def build_flow(settings: Settings, io: FlowIO, flow_id: str = "forewarn") -> Dataflow:
    """Wire the dataflow; with `io.outreach` None it stops after detection."""
    _tune_gc()
    flow = Dataflow(flow_id)
    kinds = _read(flow, io, _partition_rules(settings, io))
    read_letters = op.map("read_letters", op.filter("letters", kinds, lambda r: r[0] == "letter"), lambda r: r[1])
    records = op.map("records", op.filter("is_record", kinds, lambda r: r[0] == "record"), lambda r: r[1])
    for_shards = op.map("for_shards", op.filter("is_shard", kinds, lambda r: r[0] == "shard"), lambda r: r[1])
    factory = DetectorFactory(settings.detection, io.region_weights, score_regions=io.windows is not None)
    case_verdicts, shard_letters = _detect(settings, for_shards, io, factory)
    telemetry = op.filter("telemetry", records, lambda item: isinstance(item[1], Telemetry))
    fleet_verdicts, fleet_late = _detect_fleet(settings, telemetry, io.replay)
    verdicts = op.merge("verdicts", case_verdicts, fleet_verdicts)
    if io.metrics is not None:
        op.inspect("observe_spikes", verdicts, _spike_observer(io.metrics, io.now))
        metrics = io.metrics
        op.inspect("count_internal", op.filter("internal", kinds, lambda r: r[0] == "internal"),
                   lambda _step, r: metrics.internal_cases(*r[1]))
    letters = [read_letters, shard_letters, fleet_late]
    closed = op.filter("closed_verdicts", verdicts, lambda vs: not vs[0].early)
    if io.windows is not None:
        windows = op.flat_map("windows", closed, lambda vs: [w for v in vs for w in v.window_records()])
        op.output("write_windows", op.map("encode_windows", windows, orjson.dumps), io.windows)
    if io.spikes is not None:
        judged = verdicts if io.early_spikes else closed
        spikes = op.flat_map("spikes", judged, lambda vs: [s for v in vs for s in v.spikes])
        op.output("write_spikes", op.map("encode_spikes", spikes, io.encode_spike), io.spikes)
    if io.customer_index is not None:
        _upsert_customers(op.filter("customers", records, lambda item: isinstance(item[1], Customer)),
                          io.customer_index)
    reports: list[Stream[Any]] = []
    if io.hazards is not None:
        alerts = op.filter("alerts", records, lambda item: isinstance(item[1], HazardAlert))
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


def _read(flow: Dataflow, io: FlowIO, rules: PartitionRules) -> Stream[Any]:
    """Every source's records through the partition step: inside each partition of a fixed-partitioned
    source (no exchange), else as a step keyed by partition."""
    streams: list[Stream[Any]] = []
    keyed: list[Stream[RawBatch]] = []
    for n, source in enumerate([io.source, *io.extra_sources]):
        step = "read" if n == 0 else f"read_{n - 1}"
        if isinstance(source, FixedPartitionedSource):
            streams.append(op.input(step, flow, ReadingSource(source, rules)))
        else:
            keyed.append(op.map(f"to_batch_{n}", op.input(step, flow, source), as_batch))
    if keyed:
        batches = op.merge("per_record_sources", *keyed)
        routed = op.stateful("read_partitions", op.key_on("by_partition", batches, lambda b: b.key), rules)
        streams.append(op.map("routed", routed, lambda kv: kv[1]))
    return streams[0] if len(streams) == 1 else op.merge("read_all", *streams)


def _partition_rules(settings: Settings, io: FlowIO) -> PartitionRules:
    s = settings.detection
    b = s.time_bounds
    return PartitionRules(io.types, settings.max_record_bytes,
                          TimeBounds(b.max_ahead, b.max_age, b.max_stream_ahead, b.jump_after, b.not_before),
                          live=not io.replay, slide=s.slide, shards=s.shards, now=io.now,
                          lateness=s.allowed_lateness, internal_channels=s.internal_channels)


def _split(step: str, mapped: Stream[tuple[str, Any]]) -> tuple[Stream[tuple[str, Any]], Stream[DeadLetter]]:
    """A guarded stateful step's output: (key, result) items, and the dead letters of items that failed."""
    branch = op.branch(f"{step}_ok", mapped, lambda kv: not isinstance(kv[1], DeadLetter))
    return branch.trues, op.map(f"{step}_failed", branch.falses, lambda kv: kv[1])


def _detect(settings: Settings, batches: Stream[Any], io: FlowIO, factory: DetectorFactory
            ) -> tuple[Stream[Any], Stream[DeadLetter]]:
    """Cases per shard: counted into panes, judged early and at close; copies, late and capped cases dead-lettered."""
    s = settings.detection
    rules = ShardRules(s.slide, s.allowed_lateness, not io.replay,
                       (s.dedup_horizon, s.dedup_max_ids) if s.dedup_horizon is not None else None,
                       s.max_regions_per_topic,
                       (s.repeat_horizon, s.repeat_max_customers) if s.repeat_horizon is not None else None)
    observe = io.metrics.oldest_open_pane if io.metrics is not None else None
    judged = op.stateful("detect", batches, DetectShard(factory, rules, tuple(io.partitions or ()), io.now, observe))
    outputs = op.map("judged", judged, lambda kv: kv[1])
    verdicts = op.map("shard_verdicts", op.filter("is_verdict", outputs, lambda r: r[0] == "verdicts"),
                      lambda r: r[1])
    letters = op.map("shard_letters", op.filter("is_letter", outputs, lambda r: r[0] == "letter"), lambda r: r[1])
    if io.metrics is not None:
        metrics = io.metrics
        op.inspect("count_repeats", op.filter("is_repeats", outputs, lambda r: r[0] == "repeats"),
                   lambda _step, r: metrics.repeat_cases(r[1]))
    return verdicts, letters


def _spike_observer(metrics: EngineMetrics, now: Callable[[], datetime]) -> Callable[[str, list[Any]], None]:
    """Counts each spike as it leaves detection, with the time since the newest record it counted."""

    def observe(_step: str, verdicts: list[Any]) -> None:
        decided = now()
        for verdict in verdicts:
            for spike in verdict.spikes:
                metrics.spike(spike, decided, spike.decided_at or spike.window_end)

    return observe


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
