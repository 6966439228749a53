"""Seasonal baselines for counts, learned online."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache

from forewarn.detectors.base import CountBaseline


class _Slot:
    """A bias-corrected exponentially weighted mean in two floats.

    river's `EWMean` starts at its first value and keeps much of that weight for a
    long time, so a baseline with a few days of history would follow whichever day
    came first. Here the weight grows 1, 2, 3, ... towards `1 / fading`: the plain
    mean while young, the EW mean once mature. Two floats per slot keep the state
    that Bytewax snapshots small (a topic holds up to 240 slots).
    """

    __slots__ = ("mean", "weight")

    def __init__(self) -> None:
        self.weight = 0.0
        self.mean = 0.0

    def __getstate__(self) -> tuple[float, float]:
        return self.weight, self.mean

    def __setstate__(self, state: tuple[float, float]) -> None:
        self.weight, self.mean = state

    def update(self, x: float, fading: float) -> None:
        self.weight = (1.0 - fading) * self.weight + 1.0
        self.mean += (x - self.mean) / self.weight


_LEVELS = {
    "day": lambda t: t.hour,
    "weekpart": lambda t: (t.weekday() >= 5) * 24 + t.hour,
    "week": lambda t: t.weekday() * 24 + t.hour,
}


PRIOR_CASES: Mapping[str, float] = {"day": 1.0, "weekpart": 40.0, "week": 40.0}
"""Expected cases' worth of the parent each level's slot is shrunk toward (`SeasonalBaseline`): an hour of the
day differs from the day's mean by a factor of several, so a few cases show it; a weekday's or an hour of the
week's difference from its hour of day is a few per cent, which only many cases tell from noise
(bench.bench_synthetic: a flat 2 panes left Monday mornings under their level, 0.5 panes believed a quiet
hour's unlucky week)."""


@lru_cache(maxsize=4096)
def _slot_keys(t: datetime, levels: tuple[str, ...]) -> tuple[int, ...]:
    """The slot of `t` at each seasonal level: asked for every pane of a window at every close."""
    return tuple(_LEVELS[level](t) for level in levels)


class SeasonalBaseline(CountBaseline):
    """Expected count per pane by hour of day, weekday/weekend hour and hour of week.

    The levels form a hierarchy: the overall mean (a bias-corrected fading mean), then each
    seasonal level in `levels`, each slot shrunk toward the level above by
    `prior_weight` pseudo-observations plus `prior_cases[level]` expected cases'
    worth of them (that many cases over the parent's expectation per pane). A young
    slot leans on its parent; how far a mature one departs from it depends on how
    many cases back it, since a slot's weight levels off at `1 / slot_fading` panes:
    a few panes of 50 cases tell a Monday morning from a Tuesday one, a few panes of 4
    do not. So a new key gets a daily cycle within a day, a weekday/weekend
    difference within a week, and a busy topic's Monday mornings after a week or two,
    while a quiet topic's weekly slots stay for good near their hour of day (at 4
    cases a pane a weekly slot keeps 60% of its parent).

    Parameters
    ----------
    levels
        The seasonal levels below the overall mean, coarse to fine: "day", "weekpart", "week".
    slot_fading
        Each slot's fading per pane it learns: its weight levels off at `1 / slot_fading` panes.
    overall_fading
        The overall mean's fading per pane.
    prior_weight
        Pseudo-panes of the parent in every slot.
    prior_cases
        Per level, expected cases' worth of the parent in each slot (None: `PRIOR_CASES`; a level not named has
        none).

    >>> from datetime import datetime, timedelta, timezone
    >>> base = SeasonalBaseline(levels=("day",), slot_fading=0.5, prior_cases={})
    >>> t0 = datetime(2026, 11, 16, tzinfo=timezone.utc)
    >>> for day in range(3):
    ...     base.learn_one(t0 + timedelta(days=day, hours=3), 1.0)
    ...     base.learn_one(t0 + timedelta(days=day, hours=15), 9.0)
    >>> base.predict_one(t0 + timedelta(days=5, hours=15)), base.predict_one(t0 + timedelta(hours=3))
    (9.0, 1.0)
    >>> round(base.predict_one(t0 + timedelta(hours=7)), 2)   # unseen slot: the overall EW mean
    5.02
    """

    def __init__(self, levels: tuple[str, ...] = ("day", "weekpart", "week"), slot_fading: float = 0.15,
                 overall_fading: float = 0.01, prior_weight: float = 0.0,
                 prior_cases: Mapping[str, float] | None = None):
        cases = PRIOR_CASES if prior_cases is None else prior_cases
        unknown = (set(levels) | set(cases)) - set(_LEVELS)
        if unknown:
            raise ValueError(f"unknown seasonal level(s) {sorted(unknown)}: choose from {sorted(_LEVELS)}")
        if prior_weight < 0 or any(v < 0 for v in cases.values()):
            raise ValueError("prior_weight and prior_cases must be >= 0 (0: a slot speaks for itself)")
        self.levels = tuple(levels)
        self.slot_fading = slot_fading
        self.overall_fading = overall_fading
        self.prior_weight = prior_weight
        self.prior_cases = prior_cases
        self._level_prior_cases = tuple(cases.get(level, 0.0) for level in self.levels)
        self._case_scale = 1.0
        self._tables: list[dict[int, _Slot]] = [{} for _ in self.levels]
        self._overall = _Slot()
        self._n = 0

    def __setstate__(self, state: dict[str, object]) -> None:
        """A baseline snapshotted before `prior_cases` restores with the shrinkage it learned with."""
        self.__dict__.update(state)
        if "_level_prior_cases" not in state:
            self.prior_cases = {level: 0.0 for level in self.levels}
            self._level_prior_cases = (0.0,) * len(self.levels)
            self._case_scale = 1.0

    def learn_one(self, t: datetime, count: float) -> None:
        self._overall.update(count, self.overall_fading)
        for level, table in zip(self.levels, self._tables, strict=True):
            key = _LEVELS[level](t)
            slot = table.get(key)
            if slot is None:
                slot = table[key] = _Slot()
            slot.update(count, self.slot_fading)
        self._n += 1

    def predict_one(self, t: datetime) -> float:
        estimate = self._overall.mean
        cap = 1.0 / self.slot_fading
        for key, table, cases in zip(_slot_keys(t, self.levels), self._tables, self._level_prior_cases, strict=True):
            slot = table.get(key)
            if slot is not None:
                weight = min(slot.weight, cap)
                prior = self.prior_weight + cases * self._case_scale / max(estimate, 1e-9)
                estimate = (weight * slot.mean + prior * estimate) / (weight + prior)
        return estimate

    def slot(self, t: datetime) -> tuple[int, ...]:
        """The seasonal slots `t` falls in: panes within one hour are predicted alike."""
        return _slot_keys(t, self.levels)

    def rescale(self, factor: float) -> None:
        """Scale every level by `factor`: a level shift accepted as the new normal.

        The prior cases scale with it, so that each slot keeps its weight against its parent and every expectation
        is exactly `factor` times what it was (a slot's shrinkage in cases would otherwise loosen as the level rose).
        """
        self._case_scale *= factor
        self._overall.mean *= factor
        for table in self._tables:
            for slot in table.values():
                slot.mean *= factor

    @property
    def n_learned(self) -> int:
        return self._n


class RegionShares:
    """Each region's share of a topic's cases, as exponentially weighted sums.

    Regional expectations are the national seasonal baseline times this share: the
    dense national series carries the daily cycle, so sparse regions borrow it
    instead of learning 24 noisy slots of their own. Until a region has history its
    share comes from `prior_shares` (its share of the customer base, say), weighted
    as `prior_weight` cases; without them, from an even share.

    >>> shares = RegionShares(fading=0.0, prior_weight=0.0)
    >>> shares.learn(0, {"A": 3, "B": 1})
    >>> shares.share("A"), shares.share("B"), shares.share("C")
    (0.75, 0.25, 0.0)
    >>> cold = RegionShares(prior_weight=20.0, prior_shares={"A": 900, "B": 100})
    >>> round(cold.share("A"), 2), round(cold.share("B"), 2)
    (0.9, 0.1)
    """

    def __init__(self, fading: float = 0.003, prior_weight: float = 20.0,
                 prior_shares: dict[str, float] | None = None):
        self.fading = fading
        self.prior_weight = prior_weight
        self.prior_shares = prior_shares
        total_weight = sum(prior_shares.values()) if prior_shares else 0.0
        self._prior = {r: w / total_weight for r, w in (prior_shares or {}).items()} if total_weight > 0 else {}
        self._total = 0.0
        self._pane = 0
        self._regions: dict[str, list[float]] = {}  # region -> [decayed sum, pane of last update]

    def _decay(self, panes: float) -> float:
        # Never a negative gap: a first pane before PANE_EPOCH (year 1, say) would raise the base
        # to a huge negative power and overflow; time going "back" simply does not decay.
        return (1.0 - self.fading) ** max(panes, 0.0)

    def learn(self, pane: int, counts: Mapping[str, float]) -> None:
        """Add one pane's counts per region (the caller leaves out anomalous regions)."""
        self._total = self._total * self._decay(pane - self._pane) + sum(counts.values())
        self._pane = pane
        for region, count in counts.items():
            entry = self._regions.setdefault(region, [0.0, float(pane)])
            entry[0] = entry[0] * self._decay(pane - entry[1]) + count
            entry[1] = float(pane)

    def _prior_share(self, region: str) -> float:
        if self._prior:
            return self._prior.get(region, min(self._prior.values()))
        return 1.0 / max(1, len(self._regions))

    def set_share(self, region: str, share: float) -> None:
        """Make `region`'s share `share` from now on: its level shift is the new normal."""
        mass = share * (self._total + self.prior_weight) - self.prior_weight * self._prior_share(region)
        self._regions[region] = [max(mass, 0.0), float(self._pane)]

    def regions(self) -> list[str]:
        """The regions with history, in the order they were first seen."""
        return list(self._regions)

    def share(self, region: str) -> float:
        entry = self._regions.get(region)
        mass = entry[0] * self._decay(self._pane - entry[1]) if entry else 0.0
        denominator = self._total + self.prior_weight
        prior = self.prior_weight * self._prior_share(region)
        return (mass + prior) / denominator if denominator > 0 else 0.0
