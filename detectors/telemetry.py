"""Anomalous values of a numeric telemetry metric, scored online with river statistics."""

from __future__ import annotations

import math
from datetime import datetime

from river import stats

from forewarn.detectors.base import Estimator

_SEASONS = {
    "day": lambda t: t.hour,
    "weekpart": lambda t: (t.weekday() >= 5) * 24 + t.hour,
    "week": lambda t: t.weekday() * 24 + t.hour,
}


class ValueAnomaly(Estimator):
    """A two-sided robust z-score of each value against a level, a seasonal profile and a noise scale.

    The value is modelled as level + seasonal effect + noise. The level and the noise
    variance are river `EWMean`/`EWVar` (same `fading`) of the deseasonalised value;
    the seasonal effect of each slot (hour of day, weekday/weekend hour or hour of
    week, per `season`; None for no seasonality) is an exponentially weighted mean of
    the value minus the level, used once the slot has `min_slot` observations.

    Two scores, the larger is returned: the point z-score |residual| / sd, and a
    shift z-score, the EW mean of recent residuals (`fast`; 0 to disable) divided by
    its own standard error, which catches a sustained shift that no single value
    makes improbable. After `grace` values, a value is learned winsorised to within
    `clip`·sd of its expectation, so a wild reading or the start of a failure barely
    moves the baseline it is judged by, while a lasting level shift is still absorbed
    step by step. The sd is floored at `min_rel_sd` times the EW mean of |x| (and at
    `min_sd`), so a metric that sat flat does not turn rounding noise into alarms.
    Scores are 0 during grace.

    >>> from datetime import datetime, timedelta
    >>> det = ValueAnomaly(fading=0.1, grace=10)
    >>> t0 = datetime(2014, 7, 1)
    >>> for i in range(50):
    ...     det.learn_one(t0 + timedelta(minutes=5 * i), 20.0 + (i % 3))
    >>> det.score_one(t0, 21.5) < 2.0 < det.score_one(t0, 35.0)
    True
    >>> det.score_one(t0, 7.0) > 2.0  # two-sided: a drop scores too
    True

    With a daily season, a value that is normal at 3 pm is anomalous at 3 am:

    >>> det = ValueAnomaly(season="day", fast=0.0)
    >>> for i in range(24 * 14):
    ...     t = t0 + timedelta(hours=i)
    ...     det.learn_one(t, 100.0 + (50.0 if t.hour == 15 else 0.0) + (i % 2))
    >>> day20 = t0 + timedelta(days=20)
    >>> det.score_one(day20 + timedelta(hours=15), 150.5) < 2.0 < det.score_one(day20 + timedelta(hours=3), 150.5)
    True
    """

    def __init__(self, fading: float = 0.01, clip: float = 3.0, grace: int = 30, season: str | None = None,
                 season_fading: float = 0.1, min_slot: int = 3, fast: float = 0.1, min_rel_sd: float = 0.01,
                 min_sd: float = 1e-6):
        if not 0.0 < fading <= 1.0 or not 0.0 < season_fading <= 1.0 or not 0.0 <= fast <= 1.0:
            raise ValueError("fadings must be in (0, 1] and fast in [0, 1]")
        if clip <= 0 or grace < 1 or min_slot < 1 or min_rel_sd < 0 or min_sd <= 0:
            raise ValueError("need clip > 0, grace >= 1, min_slot >= 1, min_rel_sd >= 0 and min_sd > 0")
        if season is not None and season not in _SEASONS:
            raise ValueError(f"season must be None or one of {sorted(_SEASONS)}")
        self.fading = fading
        self.clip = clip
        self.grace = grace
        self.season = season
        self.season_fading = season_fading
        self.min_slot = min_slot
        self.fast = fast
        self.min_rel_sd = min_rel_sd
        self.min_sd = min_sd
        self._level = stats.EWMean(fading)
        self._var = stats.EWVar(fading)
        self._scale = stats.EWMean(fading)  # of |x|: the metric's magnitude, for the sd floor
        self._slots: dict[int, list[float]] = {}  # slot -> [observations, weight, effect]
        self._recent = 0.0  # EW mean of recent residuals, for the shift score
        self._n = 0

    def _effect(self, t: datetime) -> float:
        if self.season is None:
            return 0.0
        slot = self._slots.get(_SEASONS[self.season](t))
        return slot[2] if slot is not None and slot[0] >= self.min_slot else 0.0

    def _sd(self) -> float:
        var = max(float(self._var.get()), 0.0)
        return max(math.sqrt(var), self.min_rel_sd * float(self._scale.get()), self.min_sd)

    def _residual(self, t: datetime, x: float) -> float:
        return x - self._effect(t) - float(self._level.get())

    def expected_one(self, t: datetime) -> tuple[float, float]:
        """The value expected at `t` and the noise scale it is judged with."""
        return float(self._level.get()) + self._effect(t), self._sd()

    def score_one(self, t: datetime, x: float) -> float:
        """The larger of the point and shift z-scores with x, before learning x; 0 during grace."""
        if self._n < self.grace:
            return 0.0
        residual, sd = self._residual(t, x), self._sd()
        point = abs(residual) / sd
        if not self.fast:
            return point
        recent = (1.0 - self.fast) * self._recent + self.fast * residual
        return max(point, abs(recent) / (sd * math.sqrt(self.fast / (2.0 - self.fast))))

    def learn_one(self, t: datetime, x: float) -> None:
        effect, residual = self._effect(t), self._residual(t, x)
        raw = residual
        if self._n >= self.grace:
            bound = self.clip * self._sd()
            self._recent = (1.0 - self.fast) * self._recent + self.fast * residual
            residual = min(max(residual, -bound), bound)
        level = float(self._level.get()) + residual  # the deseasonalised value, winsorised
        self._level.update(level)
        self._var.update(level)
        self._scale.update(abs(x))
        self._n += 1
        # The first value sets the level (there was none to subtract), so it says nothing of its season.
        if self.season is not None and self._n > 1:
            slot = self._slots.setdefault(_SEASONS[self.season](t), [0.0, 0.0, 0.0])
            slot[0] += 1.0
            # A bias-corrected EW mean of the (winsorised) value minus the level: the plain mean while young.
            slot[1] = (1.0 - self.season_fading) * slot[1] + 1.0
            # A young slot learns its effect unclipped: winsorising against a level that does not
            # know the season yet would keep a real daily peak from ever being learned.
            seasonal = raw if slot[0] <= 3 * self.min_slot else residual
            slot[2] += (effect + seasonal - slot[2]) / slot[1]
