"""The callables the dataflow's operators are handed: composition and thin adapters, no decisions.

What a pane holds, how readings group, how a pane is judged and how topics are assigned
live in detectors/ (`forewarn.detectors.panes`, `.fleet`, `.topic_assignment`); the
incident and hazard trackers in outreach/. Here they are built from the settings and
adapted to Bytewax's calling conventions; dead letters for late records are written here.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson
from bytewax.operators import StatefulLogic

from forewarn.detectors.baseline import SeasonalBaseline
from forewarn.detectors.fleet import FleetStep
from forewarn.detectors.rarity import RarityGate
from forewarn.detectors.scoring import REGIONAL_MIN_EXPECTED, NegativeBinomialScorer, SpikeRule
from forewarn.detectors.shard import DetectionShard, ShardBatch, ShardRules
from forewarn.detectors.topic import TopicDetector, pane_time
from forewarn.hazards import HazardAlert, HazardIncident
from forewarn.logs import redact
from forewarn.outreach.hazards import HazardTracker
from forewarn.outreach.incidents import IncidentTracker
from forewarn.records import DeadLetter, Origin, Telemetry, WindowVerdict
from forewarn.settings import DetectionSettings

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
            regional_scorer=NegativeBinomialScorer(s.dispersion_size, min_expected=REGIONAL_MIN_EXPECTED),
            rule=SpikeRule(alpha=s.alpha, min_count=s.min_count, min_ratio=s.min_ratio),
            explained_share=s.explained_share, reporter_lookback=s.reporter_lookback, adapt_after=s.adapt_after,
            region_weights=self.region_weights, score_regions=self.score_regions, scales=s.scales,
            false_alarm_target=s.false_alarm_target, rarity=rarity_gate(s),
        )


def rarity_gate(settings: DetectionSettings) -> RarityGate | None:
    """The noise control of every topic key's alarms: runs counted over `rarity_memory` in slides, a run going on
    across a main window of quiet ones as the detector's does (None when `rarity_runs` is null)."""
    if settings.rarity_runs is None:
        return None
    return RarityGate.at_most(settings.rarity_runs, settings.rarity_memory, settings.slide,
                              gap=settings.window // settings.slide)


def fleet_step(settings: DetectionSettings) -> FleetStep:
    """The device-group step from the detection settings."""
    s = settings
    return FleetStep(window=s.window, slide=s.slide, warmup=s.warmup, fault_metrics=s.telemetry_fault_metrics,
                     topics=dict(s.telemetry_topics), value_z=s.telemetry_value_z,
                     value_season=s.telemetry_value_season, value_rarity=s.telemetry_value_rarity,
                     rarity_memory=s.rarity_memory)


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


@dataclass(frozen=True)
class DetectShard:
    """Builds a detection shard's `op.stateful` logic: cases counted, judged early and at close (see
    `forewarn.detectors.shard`), on the clocks of the input partitions that carry cases."""

    factory: DetectorFactory
    rules: ShardRules
    partitions: tuple[str, ...]
    now: Callable[[], datetime]
    observe: Callable[[datetime | None, str], None] | None = None
    """Told each shard's oldest open pane after every step (the pane-lag gauge)."""

    def __call__(self, resume: DetectionShard | None) -> ShardLogic:
        shard = resume or DetectionShard(self.factory, self.rules, self.partitions)
        return ShardLogic(shard, self.now, self.observe)


ShardOut = tuple[str, Any]
"""("verdicts", a topic's verdict list), ("letter", DeadLetter) or ("repeats", cases per topic not counted)."""


class ShardLogic(StatefulLogic[ShardBatch, ShardOut, DetectionShard]):
    """Adapts a `DetectionShard` to Bytewax: batches in; live, a wake-up when the oldest pane is due."""

    def __init__(self, shard: DetectionShard, now: Callable[[], datetime],
                 observe: Callable[[datetime | None, str], None] | None = None):
        self.shard = shard
        self.now = now
        self.observe = observe
        self.name = f"shard@{id(self):x}"

    def on_item(self, value: ShardBatch) -> tuple[list[ShardOut], bool]:
        try:
            judged = self.shard.offer(value, self.now())
        except Exception as exc:  # a failing batch must not stop the flow
            origin = Origin(f"cases of {value.partition.key} up to {value.watermark}")
            return [("letter", failure_letter("detect", value.partition.key, origin, exc))], StatefulLogic.RETAIN
        repeats = [("repeats", judged.repeats)] if judged.repeats else []
        return [*self._out(judged.verdicts), *(("letter", d) for d in judged.letters), *repeats], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[ShardOut], bool]:
        return self._out(self.shard.advance(self.now())), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[list[ShardOut], bool]:
        # The end of this run's input, not of the stream: a run resumed from the snapshot (on a file appended
        # to, say) must find the last panes still filling, so the snapshot keeps the state from before.
        self._before_eof = pickle.dumps(self.shard)
        return self._out(self.shard.end()), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self.shard.next_close(self.now())

    def snapshot(self) -> DetectionShard:
        before = getattr(self, "_before_eof", None)
        return self.shard if before is None else pickle.loads(before)

    def _out(self, verdicts: list[list[WindowVerdict]]) -> list[ShardOut]:
        """Verdict lists, then a dead letter for each pane a detector failed on."""
        if self.observe is not None:
            self.observe(self.shard.oldest_filling(), self.name)
        failures, self.shard.failures = self.shard.failures, []
        return [*(("verdicts", v) for v in verdicts),
                *(("letter", failure_letter("detect", f.topic, Origin(f"pane {f.topic} at {f.pane_start.isoformat()}"),
                                            f.error)) for f in failures)]
