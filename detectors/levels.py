"""Level shifts on trial: a surge that lasts is taken as the new normal, but only for as long as it lasts.

A key flagged for `adapt_after` may be a real shift (more customers, a new product) or a long transient (a
9-hour outage). Scaling the seasonal baseline at once is right for the first and ruinous for the second: its
hour-of-week slots learn a few times a week, so a 5x rescale stays for weeks and hides every later surge.
So an accepted level is held apart from the baseline, as a factor on the key's expectation, and judged by
the key's own later panes: the counts and the baseline's expectations fade with a half-life of a few hours,
and their ratio is the factor. When the counts fall back to what the baseline expects, the trial ends and
the baseline is as it was; when the level holds for `adopt_after`, it is adopted (the caller rescales the
baseline or the region's share) and the trial ends. While a key is on trial its baseline learns nothing.

>>> levels = Levels(half_life=4, adopt_after=96)
>>> levels.start("*", observed=500.0, expected=100.0)
>>> levels.factor("*")
5.0
>>> panes = 1
>>> while levels.learn("*", 100.0, 100.0)[0] == "on trial":   # the surge is over: back to the baseline
...     panes += 1
>>> panes
12
>>> levels.start("R1", observed=40.0, expected=10.0)
>>> verdicts = [levels.learn("R1", 4.0, 1.0) for _ in range(96)]   # the new level holds for a day
>>> verdicts[-2][0], verdicts[-1][0], round(verdicts[-1][1], 1)
('on trial', 'adopted', 4.0)
>>> levels.factor("*"), levels.on_trial("*")
(1.0, False)
"""

from __future__ import annotations

import math
from typing import Literal

Verdict = Literal["on trial", "ended", "adopted"]


class Levels:
    """Per key, the fading sums of its counts and of its baseline's expectations since its shift was accepted.

    Parameters
    ----------
    half_life
        Panes over which a pane's weight in the level halves: a transient's level is gone a few half-lives
        after it ends.
    adopt_after
        Panes on trial after which a level that still holds is adopted by the baseline.
    tolerance
        A level within this relative distance of 1 (or within two standard errors of a Poisson ratio, for
        sparse keys) is no shift: the trial ends.
    """

    def __init__(self, half_life: float, adopt_after: int, tolerance: float = 0.1):
        if half_life <= 0 or adopt_after < 1:
            raise ValueError("half_life must be > 0 and adopt_after at least 1 pane")
        self.decay = 0.5 ** (1.0 / half_life)
        self.adopt_after = adopt_after
        self.tolerance = tolerance
        self._trials: dict[str, list[float]] = {}  # key -> [counts, expected, panes on trial]

    def start(self, key: str, observed: float, expected: float) -> None:
        """Accept `key`'s level `observed / expected` (the window that crossed `adapt_after`), weighted as much
        as that window's own evidence."""
        self._trials[key] = [observed, max(expected, 1e-9), 0.0]

    def on_trial(self, key: str) -> bool:
        return key in self._trials

    def factor(self, key: str) -> float:
        trial = self._trials.get(key)
        return trial[0] / trial[1] if trial is not None else 1.0

    def learn(self, key: str, observed: float, expected: float) -> tuple[Verdict, float]:
        """One pane of `key` (`expected`: the baseline's, without the factor); what became of the trial, and
        the level (to adopt, when adopted)."""
        trial = self._trials[key]
        trial[0] = trial[0] * self.decay + observed
        trial[1] = trial[1] * self.decay + expected
        trial[2] += 1
        ratio = trial[0] / max(trial[1], 1e-9)
        noise = 2.0 / math.sqrt(max(trial[1], 1e-9))
        if ratio <= 1.0 + max(self.tolerance, noise):
            del self._trials[key]
            return "ended", 1.0
        if trial[2] >= self.adopt_after:
            del self._trials[key]
            return "adopted", ratio
        return "on trial", ratio

    def keys(self) -> list[str]:
        return list(self._trials)
