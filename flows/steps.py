"""The callables the dataflow's operators are handed: composition and thin adapters, no decisions.

What a pane holds, how readings group, how a pane is judged and how topics are assigned
live in detectors/ (`forewarn.detectors.panes`, `.fleet`, `.topic_assignment`); the
incident and hazard trackers in outreach/. Here they are built from the settings and
adapted to Bytewax's calling conventions; dead letters for late records are written here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson
from bytewax.operators import StatefulLogic

from forewarn.detectors.baseline import SeasonalBaseline
from forewarn.detectors.dedup import SeenIds, duplicate_reason
from forewarn.detectors.fleet import FleetStep
from forewarn.detectors.panes import UNCLASSIFIED, Event, Pane, freeze_pane
from forewarn.detectors.region_cap import RegionCap, capped_reason
from forewarn.detectors.scoring import NegativeBinomialScorer, SpikeRule
from forewarn.detectors.time_bounds import StreamGate, TimeBounds
from forewarn.detectors.topic import TopicDetector, pane_time
from forewarn.hazards import HazardAlert, HazardIncident
from forewarn.logs import redact
from forewarn.outreach.hazards import HazardTracker
from forewarn.outreach.incidents import IncidentTracker
from forewarn.records import Case, DeadLetter, Origin, Telemetry, WindowVerdict
from forewarn.settings import DetectionSettings, TimeBoundsSettings

log = logging.getLogger(__name__)

S = TypeVar("S")
V = TypeVar("V")
R = TypeVar("R")


@dataclass(frozen=True)
class DetectorFactory:
    """Builds a topic's detector from the detection settings (picklable for recovery).

    Composition, so it stays with the wiring: the detector takes plain arguments and knows
    nothing of settings files.
    """

    settings: DetectionSettings
    region_weights: dict[str, float] | None = None
    """Customers per region, for the share of new regions until they have history."""
    score_regions: bool = False
    """Score every region's window, not only the firing ones (for backtest reports)."""

    def __call__(self, topic: str) -> TopicDetector:
        s = self.settings
        return TopicDetector(
            topic, window=s.window, slide=s.slide, warmup=s.warmup, baseline=SeasonalBaseline(),
            scorer=NegativeBinomialScorer(s.dispersion_size),
            rule=SpikeRule(alpha=s.alpha, min_count=s.min_count, min_ratio=s.min_ratio),
            explained_share=s.explained_share, reporter_lookback=s.reporter_lookback, adapt_after=s.adapt_after,
            region_weights=self.region_weights, score_regions=self.score_regions, scales=s.scales,
        )


def fleet_step(settings: DetectionSettings) -> FleetStep:
    """The device-group step from the detection settings."""
    s = settings
    return FleetStep(window=s.window, slide=s.slide, warmup=s.warmup, fault_metrics=s.telemetry_fault_metrics,
                     topics=dict(s.telemetry_topics), value_z=s.telemetry_value_z,
                     value_season=s.telemetry_value_season)


ClosedPane = tuple[str, int, Pane]
"""A closed pane with its topic: stateful_map hands mappers the value without its key."""


def detect_step(factory: DetectorFactory
                ) -> Callable[[TopicDetector | None, ClosedPane], tuple[TopicDetector, list[WindowVerdict]]]:
    """The stateful_map mapper closing each pane with its topic's detector."""

    def mapper(state: TopicDetector | None, closed: ClosedPane) -> tuple[TopicDetector, list[WindowVerdict]]:
        topic, pane_id, pane = closed
        detector = state if state is not None else factory(topic)
        return detector, detector.process(pane_id, freeze_pane(pane))

    return mapper


@dataclass(frozen=True)
class TrackIncidents:
    """stateful_map mapper: fold verdicts of a topic into incident events."""

    resolve_after: int

    def __call__(self, state: IncidentTracker | None, verdicts: list[WindowVerdict]
                 ) -> tuple[IncidentTracker, list[Any]]:
        tracker = state if state is not None else IncidentTracker(self.resolve_after)
        return tracker, [event for verdict in verdicts for event in tracker.observe(verdict)]


@dataclass(frozen=True)
class TrackHazards:
    """stateful_map mapper: fold hazard alerts into forecast incidents, expiring old ones as time moves."""

    def __call__(self, state: HazardTracker | None, item: tuple[Origin, HazardAlert]
                 ) -> tuple[HazardTracker, list[HazardIncident]]:
        tracker = state or HazardTracker()
        alert = item[1]
        return tracker, [*tracker.expire(alert.sent), *tracker.observe(alert)]


def late_letter(item: tuple[str, tuple[int, Event]], slide: timedelta, lateness: timedelta) -> DeadLetter:
    """A record that arrived after its pane had closed, kept as a dead letter, not dropped.

    The record's bytes are not kept through windowing; its origin (topic, partition,
    offset or file line) says where to re-read it, and `raw` summarises what counted
    (JSON: ts, topic, region, id).
    """
    topic, (_, event) = item
    reason = (f"late: {event.ts.isoformat()} arrived after its {slide} pane of topic {topic!r} closed "
              f"(allowed lateness {lateness}); raise detection.allowed_lateness to count such records")
    raw = orjson.dumps({"ts": event.ts.isoformat(), "topic": topic, "region": event.region,
                        "id": event.case_id or ""})
    return DeadLetter("count_panes", reason, event.origin or Origin("window"), raw)


def telemetry_late_letter(item: tuple[str, tuple[int, tuple[Origin, Telemetry]]], slide: timedelta,
                          lateness: timedelta) -> DeadLetter:
    """A reading that arrived after its group's pane closed, kept as a dead letter."""
    group, (_, (origin, record)) = item
    reason = (f"late: {record.ts.isoformat()} arrived after its {slide} pane of device group {group!r} closed "
              f"(allowed lateness {lateness}); raise detection.allowed_lateness to count such readings")
    return DeadLetter("fleet_panes", reason, origin, record.model_dump_json().encode())


MAX_ERROR_TEXT = 300
"""An exception's message is cut to this many characters in logs and dead letters."""
MAX_KEY_TEXT = 80
"""A key (a topic a record may have named) is cut to this many characters in logs and dead letters."""


@dataclass(frozen=True)
class Guarded(Generic[S, V, R]):
    """A `stateful_map` mapper that never raises: a failure becomes a dead letter, the flow keeps running.

    An exception inside a stateful step would stop the flow (Bytewax reports only a Rust
    panic naming the operator) and stop it again at every restart, since recovery replays
    the same record. Here the operator sees one log line naming the step, the key, the
    Python exception and the record's origin, and the item goes to the dead letters. The
    key keeps its state, even if the step changed it part-way: its history is worth more
    than a clean slate.
    """

    step: str
    mapper: Callable[[S | None, V], tuple[S | None, R]]
    key_of: Callable[[V], str]
    origin_of: Callable[[V], Origin]

    def __call__(self, state: S | None, value: V) -> tuple[S | None, R | DeadLetter]:
        try:
            return self.mapper(state, value)
        except Exception as exc:  # any failure of one item must not stop the flow
            return state, self._letter(value, exc)

    def _letter(self, value: V, exc: Exception) -> DeadLetter:
        return failure_letter(self.step, _safe(self.key_of, value, "?"),
                              _safe(self.origin_of, value, Origin(self.step)), exc)


def failure_letter(step: str, key: object, origin: Origin, exc: Exception) -> DeadLetter:
    """The dead letter of an item a step failed on, logged as one line."""
    # A key may be a topic some record named: cut it, like the message, so a log line stays one line.
    key = str(key)[:MAX_KEY_TEXT]
    error = f"{type(exc).__name__}: {redact(str(exc))[:MAX_ERROR_TEXT]}"
    # Step, key, error and position only: never the record itself (it may hold contact details).
    log.error("step %s failed for key %r at %s: %s; the item is a dead letter and the flow goes on",
              step, key, origin.describe(), error)
    raw = orjson.dumps({"step": step, "key": key, "error": error})
    return DeadLetter(step, f"{step} failed for key {key!r}: {error}", origin, raw)


def _safe(read: Callable[[Any], Any], value: Any, default: Any) -> Any:
    try:
        return read(value)
    except Exception:  # describing a bad item must not raise in turn
        return default


def item_origin(item: tuple[Origin, Any]) -> Origin:
    """The origin of an (origin, record) item."""
    return item[0]


def pane_origin(slide: timedelta) -> Callable[[tuple[str, int, Any]], Origin]:
    """Where a closed pane comes from: its key and start (its records are many; it is named by its time)."""

    def origin(closed: tuple[str, int, Any]) -> Origin:
        key, pane_id, _ = closed
        return Origin(f"pane {key} at {pane_time(pane_id, slide).isoformat()}")

    return origin


def verdicts_origin(verdicts: list[WindowVerdict]) -> Origin:
    """Where a pane's verdicts come from: the topic and the pane that closed."""
    first = verdicts[0]
    return Origin(f"pane {first.topic} at {first.pane_start.isoformat()}")


def partition_key(item: tuple[Origin, Any]) -> str:
    """The input partition (Kafka topic and partition, or file) an item was read from."""
    origin = item[0]
    return origin.source if origin.partition is None else f"{origin.source}#{origin.partition}"


TimedItem = tuple[Origin, Case | Telemetry]
GateState = tuple[datetime | None, tuple[tuple[datetime, TimedItem], ...]]
"""A partition gate's snapshot: its watermark and the items it holds (at most jump_after - 1)."""


@dataclass(frozen=True)
class CheckTimes:
    """Builds, per input partition, the `op.stateful` logic that lets only records inside the time bounds on.

    The decisions are `TimeBounds.check` (the wall clock, injected as `now`) and, in a replay,
    the partition's `StreamGate`; this adapts them to (origin, record) items and dead letters.
    A stateful logic rather than a mapper: the gate may hold a few records, and must decide
    on whatever it still holds when the input ends.
    """

    bounds: TimeBounds
    now: Callable[[], datetime]
    live: bool

    @classmethod
    def from_settings(cls, settings: TimeBoundsSettings, now: Callable[[], datetime], live: bool) -> CheckTimes:
        s = settings
        return cls(TimeBounds(s.max_ahead, s.max_age, s.max_stream_ahead, s.jump_after, s.not_before), now, live)

    def __call__(self, resume: GateState | None) -> TimeGate:
        gate: StreamGate[TimedItem] = self.bounds.gate()
        if resume is not None:
            gate.watermark, gate.held = resume[0], list(resume[1])
        return TimeGate(self, gate)


class TimeGate(StatefulLogic[TimedItem, "TimedItem | DeadLetter", GateState]):
    """One partition's time check: records inside the bounds pass, the others become dead letters."""

    def __init__(self, check: CheckTimes, gate: StreamGate[TimedItem]):
        self.check = check
        self.gate = gate

    def on_item(self, value: TimedItem) -> tuple[list[TimedItem | DeadLetter], bool]:
        try:
            return self._judge(value), StatefulLogic.RETAIN
        except Exception as exc:  # a failing check must not stop the flow either
            return [failure_letter("time_bounds", partition_key(value), value[0], exc)], StatefulLogic.RETAIN

    def _judge(self, value: TimedItem) -> list[TimedItem | DeadLetter]:
        record = value[1]
        reason = self.check.bounds.check(record.ts, self.check.now(), self.check.live)
        if reason is not None:
            return [time_letter(value, reason)]
        if self.check.live:
            return [value]
        accepted, refused = self.gate.offer(record.ts, value)
        return [*(time_letter(item, why) for item, why in refused), *accepted]

    def on_eof(self) -> tuple[list[TimedItem | DeadLetter], bool]:
        accepted, refused = self.gate.end()
        return [*(time_letter(item, why) for item, why in refused), *accepted], StatefulLogic.RETAIN

    def snapshot(self) -> GateState:
        return self.gate.watermark, tuple(self.gate.held)


def time_letter(item: TimedItem, reason: str) -> DeadLetter:
    """A record outside the time bounds, kept with the reason and its origin."""
    origin, record = item
    return DeadLetter("time_bounds", reason, origin, record.model_dump_json().encode())


CaseItem = tuple[Origin, Case]


@dataclass(frozen=True)
class CountOnce:
    """stateful_map mapper (keyed by topic): a case whose id was counted within the horizon becomes a dead
    letter (the decision is `SeenIds.first_count`)."""

    horizon: timedelta
    max_ids: int

    def __call__(self, state: SeenIds | None, item: CaseItem) -> tuple[SeenIds, CaseItem | DeadLetter]:
        seen = state if state is not None else SeenIds(self.horizon, self.max_ids)
        origin, case = item
        if not case.id:
            return seen, item  # nothing tells a copy from a new case: it counts, as it always did
        counted = seen.first_count(case.id, case.ts)
        if counted is None:
            return seen, item
        return seen, DeadLetter("dedup", duplicate_reason(counted, self.horizon), origin,
                                case.model_dump_json().encode())


def case_topic(item: CaseItem) -> str:
    """The topic a case counts under (the key of its topic's panes)."""
    return item[1].topic or UNCLASSIFIED


@dataclass(frozen=True)
class CapRegions:
    """stateful_map mapper (keyed by topic): a case from a region beyond the topic's cap counts under the
    overflow bucket, and a dead letter says so (the decision is `RegionCap.region_for`)."""

    max_regions: int

    def __call__(self, state: RegionCap | None, item: CaseItem) -> tuple[RegionCap, list[CaseItem | DeadLetter]]:
        cap = state if state is not None else RegionCap(self.max_regions)
        origin, case = item
        region = cap.region_for(case.region)
        if region == case.region:
            return cap, [item]
        letter = DeadLetter("cap_regions", capped_reason(case_topic(item), case.region, self.max_regions), origin,
                            case.model_dump_json().encode())
        return cap, [(origin, case.model_copy(update={"region": region})), letter]
