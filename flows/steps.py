"""The callables the dataflow's operators are handed: composition and thin adapters, no decisions.

What a pane holds, how readings group, how a pane is judged and how topics are assigned
live in detectors/ (`forewarn.detectors.panes`, `.fleet`, `.topic_assignment`); the
incident and hazard trackers in outreach/. Here they are built from the settings and
adapted to Bytewax's calling conventions; dead letters for late records are written here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from forewarn.detectors.baseline import SeasonalBaseline
from forewarn.detectors.fleet import FleetStep
from forewarn.detectors.panes import Event, Pane, freeze_pane
from forewarn.detectors.scoring import NegativeBinomialScorer, SpikeRule
from forewarn.detectors.topic import TopicDetector
from forewarn.hazards import HazardAlert, HazardIncident
from forewarn.outreach.hazards import HazardTracker
from forewarn.outreach.incidents import IncidentTracker
from forewarn.records import DeadLetter, Origin, Telemetry, WindowVerdict
from forewarn.settings import DetectionSettings


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
