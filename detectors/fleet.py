"""Surges in the share of devices reporting a fault, per device group.

A device group is a model and firmware, or a region (`device_groups`). Per pane the
flow folds a group's readings into a `FleetAcc`: which devices reported anything, which
reported each fault metric, and the sum and count of each numeric metric. `FleetStep`
closes the pane: the `FaultShareDetector` sums the panes of a window into distinct
devices and asks how likely that many faulty devices are under the group's usual fault
share (binomial tail); each numeric metric's pane mean is scored by a `ValueAnomaly`;
the verdicts go out under the case topics the metrics are mapped to.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from forewarn.detectors.base import Estimator, check_windows
from forewarn.detectors.rarity import RarityGate
from forewarn.detectors.scoring import SpikeRule
from forewarn.detectors.telemetry import ValueAnomaly
from forewarn.detectors.topic import pane_time
from forewarn.records import NATIONAL, TELEMETRY_PREFIX, Spike, Telemetry, WindowVerdict
from forewarn.stats import binomial_sf, score


@dataclass(frozen=True)
class FleetPane:
    """One pane of one device group: who reported, and who reported each fault metric."""

    reporting: frozenset[str]
    faulty: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class _Share:
    """Exponentially weighted fault and device counts: the group's usual fault share."""

    faults: float = 0.0
    devices: float = 0.0


class FaultShareDetector(Estimator):
    """Finds windows where a group's share of faulty devices is improbably high.

    `group` is the group's traits, e.g. (("model", "R7000"), ("firmware", "2.1.7")) or
    (("region", "TX-453"),); a spike carries them as its segment. The usual share
    starts at `prior_share`, weighted as `prior_devices` devices, and is learned from
    panes after every window holding them was scored, leaving out flagged metrics.

    >>> from datetime import datetime, timedelta
    >>> det = FaultShareDetector((("model", "R7000"),), warmup=timedelta(hours=2))
    >>> fleet = frozenset(f"D-{i}" for i in range(400))
    >>> quiet = FleetPane(fleet, {"wan_down": frozenset({"D-1"})})
    >>> [s for p in range(20) for s in det.process(p, quiet)]
    []
    >>> burst = FleetPane(fleet, {"wan_down": frozenset(f"D-{i}" for i in range(60))})
    >>> [(s.topic, s.observed, s.segment) for s in det.process(20, burst)]
    [('telemetry.wan_down', 60, (('model', 'R7000'),))]
    """

    def __init__(self, group: tuple[tuple[str, str], ...], window: timedelta = timedelta(hours=1),
                 slide: timedelta = timedelta(minutes=15), warmup: timedelta = timedelta(hours=6),
                 fading: float = 0.01, prior_share: float = 0.01, prior_devices: float = 200.0,
                 rule: SpikeRule | None = None, max_examples: int = 5):
        check_windows(slide, window)
        self.group = group
        self.window = window
        self.slide = slide
        self.warmup = warmup
        self.fading = fading
        self.prior_share = prior_share
        self.prior_devices = prior_devices
        self.rule = rule
        self.max_examples = max_examples
        self._rule = rule or SpikeRule(alpha=1e-6, min_count=5, min_ratio=2.0)
        self._panes = window // slide
        self._ring: deque[tuple[int, FleetPane, set[str]]] = deque()
        self._usual: dict[str, _Share] = {}
        self._learned = 0
        self._last: int | None = None

    @property
    def region(self) -> str:
        return dict(self.group).get("region", NATIONAL)

    def process(self, index: int, pane: FleetPane) -> list[Spike]:
        """Close pane `index` of this group; the spikes of the window it ends."""
        if self._last is not None and index <= self._last:
            return []
        self._last = index
        while self._ring and self._ring[0][0] <= index - self._panes:
            self._learn(*self._ring.popleft())
        self._ring.append((index, pane, set()))
        if self._learned * self.slide < self.warmup:
            return []
        spikes = []
        for metric in sorted({m for _, p, _ in self._ring for m in p.faulty}):
            spike = self._score(index, metric)
            if spike is not None:
                spikes.append(spike)
                for _, _, flagged in self._ring:
                    flagged.add(metric)
        return spikes

    def usual_share(self, metric: str) -> float:
        usual = self._usual.get(metric, _Share())
        return (usual.faults + self.prior_share * self.prior_devices) / (usual.devices + self.prior_devices)

    def _score(self, index: int, metric: str) -> Spike | None:
        devices = frozenset().union(*(p.reporting for _, p, _ in self._ring))
        faulty = frozenset().union(*(p.faulty.get(metric, frozenset()) for _, p, _ in self._ring))
        share = self.usual_share(metric)
        expected = len(devices) * share
        p_value = binomial_sf(len(faulty), len(devices), share)
        if not self._rule.fires(len(faulty), expected, p_value):
            return None
        start = pane_time(index - self._panes + 1, self.slide)
        return Spike(
            topic=f"telemetry.{metric}", region=self.region, window_start=start,
            window_end=pane_time(index + 1, self.slide), observed=len(faulty), expected=expected,
            p_value=p_value, score=score(p_value),
            baseline=f"usual fault share {share:.4%} of {len(devices)} reporting devices",
            example_case_ids=tuple(sorted(faulty))[: self.max_examples], segment=self.group,
        )

    def _learn(self, index: int, pane: FleetPane, flagged: set[str]) -> None:
        decay = 1.0 - self.fading
        for metric in set(self._usual) | set(pane.faulty):
            if metric in flagged:
                continue
            usual = self._usual.setdefault(metric, _Share())
            usual.faults = usual.faults * decay + len(pane.faulty.get(metric, ()))
            usual.devices = usual.devices * decay + len(pane.reporting)
        self._learned += 1


def value_alarm(model: ValueAnomaly, t: datetime, value: float, z_alarm: float, gate: RarityGate | None,
                key: str, pane: int) -> float | None:
    """Score a value against its model, then learn it; its |z| when it alarms: |z| >= z_alarm and, with a `gate`,
    the key (a metric) rarely reaches that |z| (`pane` counts its windows; detectors/rarity.py). Else None."""
    z = model.score_one(t, value)
    model.learn_one(t, value)
    fires = z >= z_alarm
    if gate is not None:
        fires = gate.admit(key, pane, z, fires)
    return z if fires else None


def value_spike(group: tuple[tuple[str, str], ...], metric: str, model: ValueAnomaly, start: datetime,
                end: datetime, mean: float, count: int, z_alarm: float, *, gate: RarityGate | None,
                pane: int) -> Spike | None:
    """Score a pane's mean of a numeric metric for a group; learn it; a spike when it alarms (`value_alarm`)."""
    expected, sd = model.expected_one(start)
    z = value_alarm(model, start, mean, z_alarm, gate, metric, pane)
    if z is None:
        return None
    p_value = math.erfc(z / math.sqrt(2.0))  # two-sided normal tail of the z-score
    return Spike(
        topic=f"telemetry.{metric}", region=dict(group).get("region", NATIONAL), window_start=start,
        window_end=end, observed=round(mean), expected=expected, p_value=p_value, score=score(p_value),
        baseline=f"mean {metric} of {count} readings {mean:.3g} vs expected {expected:.3g} ± {sd:.2g} (|z| {z:.1f})",
        segment=group,
    )


# --- device groups, their panes while they fill, and the step closing each ----------------------------


def device_groups(record: Telemetry) -> list[str]:
    """The groups a reading counts in: its model and firmware, and its region.

    >>> from datetime import UTC, datetime
    >>> device_groups(Telemetry(ts=datetime(2026, 11, 20, tzinfo=UTC), device_id="D-9", metric="wan_down",
    ...                         value=1.0, region="TX-453", model="R7000", firmware="2.1.7"))
    ['model=R7000,firmware=2.1.7', 'region=TX-453']
    """
    groups = []
    if record.model and record.firmware:
        groups.append(f"model={record.model},firmware={record.firmware}")
    if record.region:
        groups.append(f"region={record.region}")
    return groups


def group_traits(key: str) -> tuple[tuple[str, str], ...]:
    """`model=R7000,firmware=2.1.7` -> (("model", "R7000"), ("firmware", "2.1.7"))."""
    return tuple((name, value) for name, _, value in (part.partition("=") for part in key.split(",")))


@dataclass(slots=True)
class Sum:
    """The sum and count of one numeric metric's readings in a pane."""

    total: float = 0.0
    count: int = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return Sum, (self.total, self.count)


@dataclass(slots=True)
class FleetAcc:
    """One device group's filling pane: devices reporting, faulty devices per fault metric, and the
    sum and count per numeric metric."""

    reporting: set[str] = field(default_factory=set)
    faulty: dict[str, set[str]] = field(default_factory=dict)
    values: dict[str, Sum] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict[int, Any]) -> FleetAcc:
        # Strings and floats are immutable: copying the containers is a deep copy, and far cheaper.
        return FleetAcc(self.reporting.copy(), {m: d.copy() for m, d in self.faulty.items()},
                        {m: Sum(v.total, v.count) for m, v in self.values.items()})

    def __reduce__(self) -> tuple[Any, ...]:
        return FleetAcc, (self.reporting, self.faulty, self.values)

    def freeze(self) -> FleetPane:
        return FleetPane(frozenset(self.reporting), {m: frozenset(d) for m, d in self.faulty.items()})


def new_fleet_pane() -> FleetAcc:
    return FleetAcc()


@dataclass(frozen=True, slots=True)
class FleetFolder:
    """Folds a reading into its group's pane: a fault metric counts its device when the value is
    above 0; any other metric is numeric and adds to its sum."""

    fault_metrics: frozenset[str]

    def __call__(self, acc: FleetAcc, record: Telemetry) -> FleetAcc:
        acc.reporting.add(record.device_id)
        metric = record.metric
        if metric in self.fault_metrics:
            if record.value > 0:
                devices = acc.faulty.get(metric)
                if devices is None:
                    devices = acc.faulty[metric] = set()
                devices.add(record.device_id)
            return acc
        total = acc.values.get(metric)
        if total is None:
            total = acc.values[metric] = Sum()
        total.total += record.value
        total.count += 1
        return acc


def fleet_folder(fault_metrics: tuple[str, ...] | frozenset[str]) -> Callable[[FleetAcc, Telemetry], FleetAcc]:
    return FleetFolder(frozenset(fault_metrics))


def merge_fleet_panes(a: FleetAcc, b: FleetAcc) -> FleetAcc:
    """`b`'s readings after `a`'s: the same pane as folding them one by one."""
    a.reporting |= b.reporting
    for metric, devices in b.faulty.items():
        mine = a.faulty.get(metric)
        if mine is None:
            a.faulty[metric] = set(devices)
        else:
            mine |= devices
    for metric, theirs in b.values.items():
        total = a.values.get(metric)
        if total is None:
            total = a.values[metric] = Sum()
        total.total += theirs.total
        total.count += theirs.count
    return a


@dataclass(slots=True)
class FleetState:
    """A device group's detectors: fault shares, and one value model per numeric metric."""

    faults: FaultShareDetector
    values: dict[str, ValueAnomaly] = field(default_factory=dict)
    gate: RarityGate | None = None
    """How often each numeric metric alarmed lately (None: no noise control, or state from before it)."""




@dataclass(frozen=True)
class FleetStep:
    """A `stateful_map` mapper over (group key, pane id, pane): a group's detectors, verdicts routed to
    case topics.

    Every fault metric yields a verdict per pane, spiking or not, under the case topic it
    is mapped to in `topics` (else `telemetry.<metric>`), so its incidents tick, merge and
    resolve with the cases' own. A numeric metric's pane mean alarms at `value_z` noise
    scales from its `ValueAnomaly` expectation, seasonal per `value_season` ("day",
    "weekpart", "week", or None), when fewer than `value_rarity` of the metric's panes over
    `rarity_memory` alarmed as far out (`RarityGate`; None: no such check): a metric whose noise
    is wilder than its noise scale says stops alarming on it.
    """

    window: timedelta = timedelta(hours=1)
    slide: timedelta = timedelta(minutes=15)
    warmup: timedelta = timedelta(hours=6)
    fault_metrics: tuple[str, ...] = ("wan_down", "wifi_drop")
    topics: Mapping[str, str] = field(default_factory=dict)
    value_z: float = 6.0
    value_season: str | None = "day"
    value_rarity: float | None = 0.01
    rarity_memory: timedelta = timedelta(days=28)

    def __post_init__(self) -> None:
        check_windows(self.slide, self.window)
        ValueAnomaly(season=self.value_season)  # an unknown season fails here, not at the first reading
        if self.value_rarity is not None:  # ... and so does a memory too short for the rarity
            RarityGate.spanning(self.value_rarity, self.rarity_memory, self.slide)

    def topic(self, metric: str) -> str:
        return self.topics.get(metric, TELEMETRY_PREFIX + metric)

    def _value_gate(self, state: FleetState) -> RarityGate | None:
        """The group's gate: none when `value_rarity` is None (a state restored with one keeps it, unused); made
        at the first pane, or at the first after a restore from before gates (its slot then unset)."""
        if self.value_rarity is None:
            return None
        if getattr(state, "gate", None) is None:
            state.gate = RarityGate.spanning(self.value_rarity, self.rarity_memory, self.slide)
        return state.gate

    def __call__(self, state: FleetState | None, closed: tuple[str, int, FleetAcc]
                 ) -> tuple[FleetState, list[WindowVerdict]]:
        key, pane_id, acc = closed
        group = group_traits(key)
        if state is None:
            state = FleetState(FaultShareDetector(group, self.window, self.slide, self.warmup))
        gate = self._value_gate(state)
        spikes = state.faults.process(pane_id, acc.freeze())
        start, end = pane_time(pane_id, self.slide), pane_time(pane_id + 1, self.slide)
        for metric, total in sorted(acc.values.items()):
            model = state.values.get(metric)
            if model is None:
                model = state.values[metric] = ValueAnomaly(season=self.value_season)
            spike = value_spike(group, metric, model, start, end, total.total / total.count, total.count,
                                self.value_z, gate=gate, pane=pane_id)
            if spike is not None:
                spikes.append(spike)
        by_topic: dict[str, list[Spike]] = {self.topic(m): [] for m in self.fault_metrics}
        for spike in spikes:
            by_topic.setdefault(self.topic(spike.topic.removeprefix(TELEMETRY_PREFIX)), []).append(spike)
        return state, [WindowVerdict(topic, start, end, tuple(found)) for topic, found in by_topic.items()]
