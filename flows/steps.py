"""The plain functions the dataflow's operators call: no Bytewax, no I/O.

Kept apart from the wiring so each can be read and unit-tested on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from forewarn.detectors.baseline import SeasonalBaseline
from forewarn.detectors.fleet import FaultShareDetector, FleetPane, value_spike
from forewarn.detectors.scoring import NegativeBinomialScorer, SpikeRule
from forewarn.detectors.telemetry import ValueAnomaly
from forewarn.detectors.text_topics import EmergingTopics
from forewarn.detectors.topic import PANE_EPOCH, TopicDetector
from forewarn.hazards import HazardAlert, HazardIncident
from forewarn.outreach.hazards import HazardTracker
from forewarn.outreach.incidents import IncidentTracker
from forewarn.records import Case, DeadLetter, Origin, PaneCases, Spike, Telemetry, WindowVerdict
from forewarn.settings import DetectionSettings


class Event(NamedTuple):
    """The slim form of a record that detection counts."""

    ts: datetime
    topic: str
    region: str
    case_id: str | None
    customer_id: str | None
    origin: Origin | None = None


UNCLASSIFIED = "unclassified"
log = logging.getLogger(__name__)


def to_event(record: Case | Telemetry, origin: Origin | None = None) -> Event | None:
    """A case counts under its topic; cases without one count as "unclassified" until
    topic discovery assigns one. Telemetry goes to fleet detection instead."""
    if isinstance(record, Case):
        return Event(record.ts, record.topic or UNCLASSIFIED, record.region, record.id, record.customer_id, origin)
    return None


# --- telemetry: fault shares per device group ------------------------------------------------------

FleetAcc = dict[str, Any]
"""Fold state of one group's pane: "r" -> devices reporting, "f" -> metric -> faulty devices."""


def device_groups(record: Telemetry) -> list[tuple[str, Telemetry]]:
    """The groups a reading counts in: its model and firmware, and its region."""
    groups = []
    if record.model and record.firmware:
        groups.append((f"model={record.model},firmware={record.firmware}", record))
    if record.region:
        groups.append((f"region={record.region}", record))
    return groups


def group_traits(key: str) -> tuple[tuple[str, str], ...]:
    """`model=R7000,firmware=2.1.7` -> (("model", "R7000"), ("firmware", "2.1.7"))."""
    return tuple((name, value) for name, _, value in (part.partition("=") for part in key.split(",")))


def new_fleet_pane() -> FleetAcc:
    return {"r": set(), "f": {}}


def fleet_folder(fault_metrics: tuple[str, ...]) -> Callable[[FleetAcc, Telemetry], FleetAcc]:
    """Devices reporting, faulty devices per fault metric, and [sum, count] per numeric metric."""

    def add(acc: FleetAcc, record: Telemetry) -> FleetAcc:
        acc["r"].add(record.device_id)
        if record.metric in fault_metrics:
            if record.value > 0:
                acc["f"].setdefault(record.metric, set()).add(record.device_id)
            return acc
        total = acc.setdefault("v", {}).setdefault(record.metric, [0.0, 0])
        total[0] += record.value
        total[1] += 1
        return acc

    return add


def merge_fleet_panes(a: FleetAcc, b: FleetAcc) -> FleetAcc:
    a["r"] |= b["r"]
    for metric, devices in b["f"].items():
        a["f"].setdefault(metric, set()).update(devices)
    for metric, (total, count) in b.get("v", {}).items():
        mine = a.setdefault("v", {}).setdefault(metric, [0.0, 0])
        mine[0] += total
        mine[1] += count
    return a


@dataclass
class FleetState:
    """A device group's detectors: fault shares, and one value model per numeric metric."""

    faults: FaultShareDetector
    values: dict[str, ValueAnomaly] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetStep:
    """stateful_map mapper: a group's fault-share detector, verdicts routed to case topics.

    Every fault metric yields a verdict per pane, spiking or not, under the case topic it
    is mapped to (`telemetry_topics`), so its incidents tick, merge and resolve with the
    cases' own.
    """

    settings: DetectionSettings

    def topic(self, metric: str) -> str:
        return self.settings.telemetry_topics.get(metric, f"telemetry.{metric}")

    def __call__(self, state: FleetState | None, closed: tuple[str, int, FleetAcc]
                 ) -> tuple[FleetState, list[WindowVerdict]]:
        key, pane_id, acc = closed
        s = self.settings
        group = group_traits(key)
        state = state or FleetState(FaultShareDetector(group, s.window, s.slide, s.warmup))
        pane = FleetPane(frozenset(acc["r"]), {m: frozenset(d) for m, d in acc["f"].items()})
        spikes = state.faults.process(pane_id, pane)
        start, end = PANE_EPOCH + pane_id * s.slide, PANE_EPOCH + (pane_id + 1) * s.slide
        for metric, (total, count) in sorted(acc.get("v", {}).items()):
            model = state.values.setdefault(metric, ValueAnomaly(season="day"))
            spike = value_spike(group, metric, model, start, end, total / count, count, s.telemetry_value_z)
            if spike is not None:
                spikes.append(spike)
        by_topic: dict[str, list[Spike]] = {self.topic(m): [] for m in s.telemetry_fault_metrics}
        for spike in spikes:
            by_topic.setdefault(self.topic(spike.topic.removeprefix("telemetry.")), []).append(spike)
        return state, [WindowVerdict(topic, start, end, tuple(found)) for topic, found in by_topic.items()]


Pane = dict[str, list[Any]]
"""Fold state of one pane: region -> [count, example case ids, reporter ids]."""


def new_pane() -> Pane:
    return {}


def add_to_pane(pane: Pane, event: Event, max_examples: int = 5) -> Pane:
    entry = pane.get(event.region)
    if entry is None:
        entry = pane[event.region] = [0, [], []]
    entry[0] += 1
    if event.case_id and len(entry[1]) < max_examples:
        entry[1].append(event.case_id)
    if event.customer_id:
        entry[2].append(event.customer_id)
    return pane


def merge_panes(a: Pane, b: Pane) -> Pane:
    for region, (count, ids, reporters) in b.items():
        entry = a.setdefault(region, [0, [], []])
        entry[0] += count
        entry[1].extend(ids)
        entry[2].extend(reporters)
    return a


def freeze_pane(pane: Pane) -> dict[str, PaneCases]:
    return {region: PaneCases(count, tuple(ids), tuple(dict.fromkeys(reporters)))
            for region, (count, ids, reporters) in pane.items()}


@dataclass(frozen=True)
class DetectorFactory:
    """Builds a topic's detector from the detection settings (picklable for recovery)."""

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


def late_letter(item: tuple[str, tuple[int, Event]], slide: timedelta, lateness: timedelta) -> DeadLetter:
    """A record that arrived after its pane had closed, kept as a dead letter, not dropped.

    The record's bytes are not kept through windowing; its origin (topic, partition,
    offset or file line) says where to re-read it, and `raw` summarises what counted.
    """
    topic, (_, event) = item
    reason = (f"late: {event.ts.isoformat()} arrived after its {slide} pane of topic {topic!r} closed "
              f"(allowed lateness {lateness}); raise detection.allowed_lateness to count such records")
    raw = (f'{{"ts":"{event.ts.isoformat()}","topic":"{topic}","region":"{event.region}",'
           f'"id":"{event.case_id or ""}"}}').encode()
    return DeadLetter("count_panes", reason, event.origin or Origin("window"), raw)


def telemetry_late_letter(item: tuple[str, tuple[int, tuple[Origin, Telemetry]]], slide: timedelta,
                          lateness: timedelta) -> DeadLetter:
    """A reading that arrived after its group's pane closed, kept as a dead letter."""
    group, (_, (origin, record)) = item
    reason = (f"late: {record.ts.isoformat()} arrived after its {slide} pane of device group {group!r} closed "
              f"(allowed lateness {lateness}); raise detection.allowed_lateness to count such readings")
    return DeadLetter("fleet_panes", reason, origin, record.model_dump_json().encode())


@dataclass
class TopicState:
    """The topic model of the flow and how many labelled cases it has seen."""

    model: EmergingTopics
    labelled: int = 0


@dataclass(frozen=True)
class AssignTopics:
    """stateful_map mapper: cases with a topic teach the classifier; cases without get one.

    A case without a topic takes the classifier's confident guess, else the emerging topic
    its text belongs to (named from its terms, e.g. "new:loop+reboot+router"), else stays
    unclassified. An emerging topic is then counted and detected like any other.
    """

    learn_all_until: int = 20_000

    def __call__(self, state: TopicState | None, item: tuple[Origin, Case]) -> tuple[TopicState, tuple[Origin, Case]]:
        state = state or TopicState(EmergingTopics())
        topics = state.model
        origin, case = item
        if not case.text:
            return state, item
        if case.topic:
            state.labelled += 1
            # Once the model has seen plenty, every tenth case keeps it current at a tenth of the cost.
            if state.labelled <= self.learn_all_until or state.labelled % 10 == 0:
                topics.learn_one(case.ts, case.id or "", case.text, case.topic)
            return state, item
        report = topics.learn_one(case.ts, case.id or "", case.text)
        if report is not None:
            log.warning("emerging topic %s: %d similar cases since %s, none with a known topic",
                        report.name, report.size, report.first_seen.isoformat())
        topic = topics.known.predict_one(case.text)[0] or topics.assign(case.text)
        return state, (origin, case.model_copy(update={"topic": topic}) if topic else case)


@dataclass(frozen=True)
class TrackHazards:
    """stateful_map mapper: fold hazard alerts into forecast incidents, expiring old ones as time moves."""

    def __call__(self, state: HazardTracker | None, item: tuple[Origin, HazardAlert]
                 ) -> tuple[HazardTracker, list[HazardIncident]]:
        tracker = state or HazardTracker()
        alert = item[1]
        return tracker, [*tracker.expire(alert.sent), *tracker.observe(alert)]
