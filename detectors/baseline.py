"""Seasonal baselines for counts, learned online with river."""

from __future__ import annotations

from datetime import datetime

from river import stats

from detectors.base import CountBaseline


class _Slot:
    """One seasonal slot: a plain mean while young, an exponentially weighted mean after.

    A lone EW mean starts at its first value and keeps most of that weight for a
    long time, which makes a baseline with a few days of history follow whichever
    day came first; the plain mean of the first values has no such bias.
    """

    __slots__ = ("ew", "mean")

    def __init__(self, fading: float):
        self.mean = stats.Mean()
        self.ew = stats.EWMean(fading)

    def __getstate__(self) -> tuple[stats.Mean, stats.EWMean]:
        return self.mean, self.ew

    def __setstate__(self, state: tuple[stats.Mean, stats.EWMean]) -> None:
        self.mean, self.ew = state

    def update(self, x: float) -> None:
        self.mean.update(x)
        self.ew.update(x)

    @property
    def n(self) -> float:
        return float(self.mean.n)

    def get(self, young: float) -> float:
        return float(self.mean.get() if self.n < young else self.ew.get())


class SeasonalBaseline(CountBaseline):
    """Expected count per pane by hour of day (or hour of week), from river statistics.

    Each seasonal slot keeps its own mean (river `Mean`, then `EWMean` once it has
    `1 / slot_fading` observations). A slot with few observations is shrunk toward
    the overall mean by `prior_weight` pseudo-observations, so one odd day cannot
    set an hour's expectation on its own.

    >>> from datetime import datetime, timedelta, timezone
    >>> base = SeasonalBaseline(slot_fading=0.5, prior_weight=0.0)
    >>> t0 = datetime(2026, 11, 16, tzinfo=timezone.utc)
    >>> for day in range(3):
    ...     base.learn_one(t0 + timedelta(days=day, hours=3), 1.0)
    ...     base.learn_one(t0 + timedelta(days=day, hours=15), 9.0)
    >>> base.predict_one(t0 + timedelta(days=5, hours=15)), base.predict_one(t0 + timedelta(hours=3))
    (9.0, 1.0)
    >>> base.predict_one(t0 + timedelta(hours=7))   # unseen slot: the overall mean
    5.0
    """

    def __init__(self, slot_fading: float = 0.15, overall_fading: float = 0.01, weekly: bool = False,
                 prior_weight: float = 2.0):
        self.slot_fading = slot_fading
        self.overall_fading = overall_fading
        self.weekly = weekly
        self.prior_weight = prior_weight
        self._slots: dict[int, _Slot] = {}
        self._overall = _Slot(overall_fading)

    def _slot(self, t: datetime) -> int:
        return t.weekday() * 24 + t.hour if self.weekly else t.hour

    def learn_one(self, t: datetime, count: float) -> None:
        key = self._slot(t)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(self.slot_fading)
        slot.update(count)
        self._overall.update(count)

    def predict_one(self, t: datetime) -> float:
        if not self._overall.n:
            return 0.0
        overall = self._overall.get(1.0 / self.overall_fading)
        slot = self._slots.get(self._slot(t))
        if slot is None:
            return overall
        n = min(slot.n, 1.0 / self.slot_fading)
        return (n * slot.get(1.0 / self.slot_fading) + self.prior_weight * overall) / (n + self.prior_weight)

    @property
    def n_learned(self) -> int:
        return int(self._overall.n)


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
