"""Seasonal baselines for counts, learned online with river."""

from __future__ import annotations

from datetime import datetime

from river import stats

from detectors.base import CountBaseline


class SeasonalBaseline(CountBaseline):
    """Expected count per pane by hour of day (or hour of week), from river `EWMean`s.

    Each seasonal slot keeps its own exponentially weighted mean; until a slot has
    been seen, the overall mean stands in for it.

    >>> from datetime import datetime, timedelta, timezone
    >>> base = SeasonalBaseline(slot_fading=0.5)
    >>> t0 = datetime(2026, 11, 16, tzinfo=timezone.utc)
    >>> for day in range(3):
    ...     base.learn_one(t0 + timedelta(days=day, hours=3), 1.0)
    ...     base.learn_one(t0 + timedelta(days=day, hours=15), 9.0)
    >>> base.predict_one(t0 + timedelta(days=5, hours=15)), base.predict_one(t0 + timedelta(hours=3))
    (9.0, 1.0)
    >>> round(base.predict_one(t0 + timedelta(hours=7)), 2)   # unseen slot: the overall EW mean
    1.24
    """

    def __init__(self, slot_fading: float = 0.15, overall_fading: float = 0.01, weekly: bool = False):
        self.slot_fading = slot_fading
        self.overall_fading = overall_fading
        self.weekly = weekly
        self._slots: dict[int, stats.EWMean] = {}
        self._overall = stats.EWMean(overall_fading)
        self._n = 0

    def _slot(self, t: datetime) -> int:
        return t.weekday() * 24 + t.hour if self.weekly else t.hour

    def learn_one(self, t: datetime, count: float) -> None:
        slot = self._slots.get(self._slot(t))
        if slot is None:
            slot = self._slots[self._slot(t)] = stats.EWMean(self.slot_fading)
        slot.update(count)
        self._overall.update(count)
        self._n += 1

    def predict_one(self, t: datetime) -> float:
        slot = self._slots.get(self._slot(t))
        if slot is not None:
            return float(slot.get())
        return float(self._overall.get()) if self._n else 0.0

    @property
    def n_learned(self) -> int:
        return self._n


class RegionShares:
    """Each region's share of a topic's cases, as exponentially weighted sums.

    Regional expectations are the national seasonal baseline times this share: the
    dense national series carries the daily cycle, so sparse regions borrow it
    instead of learning 24 noisy slots of their own. A region never seen starts from
    an even share, weighted as `prior_weight` cases.

    >>> shares = RegionShares(fading=0.0, prior_weight=0.0)
    >>> shares.learn(0, {"A": 3, "B": 1})
    >>> shares.share("A"), shares.share("B"), shares.share("C")
    (0.75, 0.25, 0.0)
    """

    def __init__(self, fading: float = 0.003, prior_weight: float = 5.0):
        self.fading = fading
        self.prior_weight = prior_weight
        self._total = 0.0
        self._pane = 0
        self._regions: dict[str, list[float]] = {}  # region -> [decayed sum, pane of last update]

    def _decay(self, panes: float) -> float:
        return (1.0 - self.fading) ** panes

    def learn(self, pane: int, counts: dict[str, int]) -> None:
        """Add one pane's counts per region (the caller leaves out anomalous regions)."""
        self._total = self._total * self._decay(pane - self._pane) + sum(counts.values())
        self._pane = pane
        for region, count in counts.items():
            entry = self._regions.setdefault(region, [0.0, float(pane)])
            entry[0] = entry[0] * self._decay(pane - entry[1]) + count
            entry[1] = float(pane)

    def share(self, region: str) -> float:
        entry = self._regions.get(region)
        mass = entry[0] * self._decay(self._pane - entry[1]) if entry else 0.0
        known = max(1, len(self._regions))
        prior = self.prior_weight / known
        denominator = self._total + self.prior_weight
        return (mass + prior) / denominator if denominator > 0 else 0.0
