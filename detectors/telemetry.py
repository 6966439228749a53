"""Anomalous values of a numeric telemetry metric, scored online with river statistics."""

from __future__ import annotations

import math
from datetime import datetime

from river import stats

from detectors.base import Estimator


class ValueAnomaly(Estimator):
    """A two-sided robust z-score of each value against exponentially weighted statistics.

    The mean and variance are river `EWMean`/`EWVar` with the same `fading`. After
    `grace` values, a value is learned winsorised to mean ± `clip`·sd, so one wild
    reading (or the first rows of a failure) barely moves the baseline it is
    judged by, while a lasting level shift is still absorbed step by step. The sd
    is floored at `min_rel_sd` times the EW mean of |x| (and at `min_sd`), so a
    metric that sat flat for a while does not turn rounding noise into alarms. The
    score is |x − mean| / sd, 0 during grace.

    >>> from datetime import datetime, timedelta
    >>> det = ValueAnomaly(fading=0.1, grace=10)
    >>> t0 = datetime(2014, 7, 1)
    >>> for i in range(50):
    ...     det.learn_one(t0 + timedelta(minutes=5 * i), 20.0 + (i % 3))
    >>> det.score_one(t0, 21.5) < 2.0 < det.score_one(t0, 35.0)
    True
    >>> det.score_one(t0, 7.0) > 2.0  # two-sided: a drop scores too
    True
    """

    def __init__(self, fading: float = 0.01, clip: float = 3.0, grace: int = 30, min_rel_sd: float = 0.01,
                 min_sd: float = 1e-6):
        if not 0.0 < fading <= 1.0 or clip <= 0 or grace < 1 or min_rel_sd < 0 or min_sd <= 0:
            raise ValueError("need 0 < fading <= 1, clip > 0, grace >= 1, min_rel_sd >= 0 and min_sd > 0")
        self.fading = fading
        self.clip = clip
        self.grace = grace
        self.min_rel_sd = min_rel_sd
        self.min_sd = min_sd
        self._mean = stats.EWMean(fading)
        self._var = stats.EWVar(fading)
        self._scale = stats.EWMean(fading)  # of |x|: the metric's magnitude, for the sd floor
        self._n = 0

    def _sd(self) -> float:
        var = max(float(self._var.get()), 0.0)
        return max(math.sqrt(var), self.min_rel_sd * float(self._scale.get()), self.min_sd)

    def score_one(self, t: datetime, x: float) -> float:
        """|x − mean| / sd before learning x; 0 during grace."""
        if self._n < self.grace:
            return 0.0
        return abs(x - float(self._mean.get())) / self._sd()

    def learn_one(self, t: datetime, x: float) -> None:
        if self._n >= self.grace:
            mean, bound = float(self._mean.get()), self.clip * self._sd()
            x = min(max(x, mean - bound), mean + bound)
        self._mean.update(x)
        self._var.update(x)
        self._scale.update(abs(x))
        self._n += 1
