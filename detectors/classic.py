"""Two classic count-surveillance baselines, as streaming detectors for comparison.

Both score a new value before learning it (`score_one` then `learn_one`), keep only
a short list of recent values and a few floats as state, and are deterministic.
"""

from __future__ import annotations

import math
from datetime import datetime

from forewarn.detectors.base import Estimator


class EarsC2(Estimator):
    """CDC EARS C2: a z-score against the 7 values before a 2-step guard band.

    The baseline is the mean and sample standard deviation of the `baseline` values
    that end `lag` steps before the current one (for the classic daily C2: days
    t−9 … t−3), so the first steps of a surge do not raise their own baseline. The
    score is (x − mean) / max(sd, `min_sd`); 0 until the history is full. EARS
    alarms at a score of 3.

    >>> from datetime import datetime, timedelta
    >>> det = EarsC2()
    >>> t0 = datetime(2015, 3, 1)
    >>> for i, x in enumerate([10, 12, 9, 11, 10, 13, 8, 50, 50]):  # the last 2 are in the guard band
    ...     det.learn_one(t0 + timedelta(minutes=5 * i), x)
    >>> round(det.score_one(t0 + timedelta(minutes=45), 16.0), 2)
    3.24
    >>> det.score_one(t0 + timedelta(minutes=45), 10.0) < 0
    True
    """

    def __init__(self, baseline: int = 7, lag: int = 2, min_sd: float = 1.0):
        if baseline < 2 or lag < 0 or min_sd <= 0:
            raise ValueError("need baseline >= 2, lag >= 0 and min_sd > 0")
        self.baseline = baseline
        self.lag = lag
        self.min_sd = min_sd
        self._history: list[float] = []  # the last baseline + lag values, oldest first

    def score_one(self, t: datetime, x: float) -> float:
        """(x − baseline mean) / max(baseline sd, min_sd), before learning x."""
        if len(self._history) < self.baseline + self.lag:
            return 0.0
        base = self._history[: self.baseline]
        mean = math.fsum(base) / self.baseline
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in base) / (self.baseline - 1))
        return (x - mean) / max(sd, self.min_sd)

    def learn_one(self, t: datetime, x: float) -> None:
        self._history.append(float(x))
        if len(self._history) > self.baseline + self.lag:
            del self._history[0]


class PoissonCusum(Estimator):
    """One-sided Poisson CUSUM for a rise of the rate from λ0 to `shift`·λ0.

    λ0 is the mean of the trailing `baseline` values that end `guard` steps before
    the current one (floored at `min_rate`). Each value adds its log-likelihood
    ratio x·ln(k) − λ0·(k − 1) to the statistic, which stays at or above 0; when it
    exceeds `reset` an alarm is raised and the statistic restarts from 0. The score
    is the statistic after adding the new value; 0 until the baseline is full.

    >>> from datetime import datetime, timedelta
    >>> det = PoissonCusum(shift=2.0, baseline=20, guard=2, reset=5.0)
    >>> t0 = datetime(2015, 3, 1)
    >>> scores = []
    >>> for i, x in enumerate([4, 5, 3, 4, 4, 6, 4, 3, 5, 4] * 3 + [12, 12, 12, 4]):
    ...     t = t0 + timedelta(minutes=5 * i)
    ...     scores.append(round(det.score_one(t, x), 2))
    ...     det.learn_one(t, x)
    >>> scores[-6:]     # quiet, then the surge builds up, alarms at > 5, resets and restarts
    [0.0, 0.0, 4.12, 8.24, 4.12, 2.29]
    """

    def __init__(self, shift: float = 2.0, baseline: int = 288, guard: int = 12, reset: float = 5.0,
                 min_rate: float = 0.5):
        if shift <= 1.0 or baseline < 1 or guard < 0 or reset <= 0 or min_rate <= 0:
            raise ValueError("need shift > 1, baseline >= 1, guard >= 0, reset > 0 and min_rate > 0")
        self.shift = shift
        self.baseline = baseline
        self.guard = guard
        self.reset = reset
        self.min_rate = min_rate
        self._recent: list[float] = []  # the last baseline + guard values, oldest first
        self._statistic = 0.0

    def _rate(self) -> float:
        base = self._recent[: self.baseline]
        return max(math.fsum(base) / self.baseline, self.min_rate)

    def _next(self, x: float) -> float:
        if len(self._recent) < self.baseline + self.guard:
            return 0.0
        step = x * math.log(self.shift) - self._rate() * (self.shift - 1.0)
        return max(0.0, self._statistic + step)

    def score_one(self, t: datetime, x: float) -> float:
        """The CUSUM statistic with x added, before learning x."""
        return self._next(x)

    def learn_one(self, t: datetime, x: float) -> None:
        statistic = self._next(x)
        self._statistic = 0.0 if statistic > self.reset else statistic
        self._recent.append(float(x))
        if len(self._recent) > self.baseline + self.guard:
            del self._recent[0]
