"""Surges in the share of devices reporting a fault, per device group.

A device group is a model and firmware, or a region. Per pane the flow collects
which devices of the group reported anything and which reported a fault metric;
the detector sums the panes of a window into distinct devices and asks how likely
that many faulty devices are under the group's usual fault share (binomial tail).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from forewarn.detectors.base import Estimator, check_windows
from forewarn.detectors.scoring import SpikeRule
from forewarn.detectors.telemetry import ValueAnomaly
from forewarn.detectors.topic import PANE_EPOCH
from forewarn.records import NATIONAL, Spike
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
        start = PANE_EPOCH + (index - self._panes + 1) * self.slide
        return Spike(
            topic=f"telemetry.{metric}", region=self.region, window_start=start,
            window_end=PANE_EPOCH + (index + 1) * self.slide, observed=len(faulty), expected=expected,
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


def value_spike(group: tuple[tuple[str, str], ...], metric: str, model: ValueAnomaly, start: datetime,
                end: datetime, mean: float, count: int, z_alarm: float) -> Spike | None:
    """Score a pane's mean of a numeric metric for a group; learn it; a spike when |z| >= z_alarm."""
    expected, sd = model.expected_one(start)
    z = model.score_one(start, mean)
    model.learn_one(start, mean)
    if z < z_alarm:
        return None
    p_value = math.erfc(z / math.sqrt(2.0))  # two-sided normal tail of the z-score
    return Spike(
        topic=f"telemetry.{metric}", region=dict(group).get("region", NATIONAL), window_start=start,
        window_end=end, observed=round(mean), expected=expected, p_value=p_value, score=score(p_value),
        baseline=f"mean {metric} of {count} readings {mean:.3g} vs expected {expected:.3g} ± {sd:.2g} (|z| {z:.1f})",
        segment=group,
    )
