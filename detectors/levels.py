"""Level shifts on trial: a surge that lasts is taken as the new normal, but only for as long as it lasts.

A key flagged for `adapt_after` may be a real shift (more customers, a new product) or a long transient (a
9-hour outage). Scaling the seasonal baseline at once is right for the first and ruinous for the second: its
hour-of-week slots learn a few times a week, so a 5x rescale stays for weeks and hides every later surge.
So an accepted level is held apart from the baseline, as a factor on the key's expectation, and judged by
the key's own later panes: the counts and the baseline's expectations fade with a half-life of a few hours,
and their ratio is the factor. When the counts are back to what the baseline expects, the trial ends and
the baseline is as it was; when the level holds for `adopt_after`, it is adopted (the caller rescales the
baseline or the region's share) and the trial ends. While a key is on trial its baseline learns nothing.

"Back" is decided by evidence, not by a fading ratio that a sparse key's quiet night hours would sink: the
trial ends when the level since it started (once the panes since have expected `SETTLED` cases) is within
noise of 1, or when a Page CUSUM of the quasi-Poisson log-likelihood ratio of the baseline against that level
(shrunk toward the accepted one) passes `evidence` nats. A dense key shows it in a pane; a sparse one, whose
quiet hours say little either way, keeps its level until they do.

>>> levels = Levels(half_life=4, adopt_after=96)
>>> levels.start("*", observed=500.0, expected=100.0)
>>> levels.factor("*")
5.0
>>> levels.learn("*", 100.0, 100.0)[0]   # the surge is over: back to the baseline at once
'ended'
>>> levels.start("R2", observed=9.0, expected=3.0)
>>> [levels.learn("R2", 0.0, 0.3)[0] for _ in range(3)]   # three quiet night panes: too little to tell
['on trial', 'on trial', 'on trial']
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

SETTLED = 16.0
"""Expected cases on trial after which the level since the start may say the counts are back."""
PRIOR_CASES = 4.0
"""How many expected cases the accepted level weighs against the panes since it was accepted."""


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
        A level within this relative distance of 1 is no shift (the caller starts no trial for it); the
        evidence is weighed against at least this level.
    evidence
        Nats of evidence (log-likelihood ratio, baseline against the accepted level) that end a trial.
    """

    def __init__(self, half_life: float, adopt_after: int, tolerance: float = 0.1, evidence: float = 9.2):
        if half_life <= 0 or adopt_after < 1:
            raise ValueError("half_life must be > 0 and adopt_after at least 1 pane")
        self.decay = 0.5 ** (1.0 / half_life)
        self.adopt_after = adopt_after
        self.tolerance = tolerance
        self.evidence = evidence
        # key -> [fading counts, fading expected, panes on trial, counts and expected since it started, evidence
        # that it is over, the level accepted at the start]
        self._trials: dict[str, list[float]] = {}

    def start(self, key: str, observed: float, expected: float) -> None:
        """Accept `key`'s level `observed / expected` (the window that crossed `adapt_after`), weighted as much
        as that window's own evidence."""
        expected = max(expected, 1e-9)
        # the level since the start counts later panes only: the window that started it is the surge itself
        self._trials[key] = [observed, expected, 0.0, 0.0, 0.0, 0.0, observed / expected]

    def on_trial(self, key: str) -> bool:
        return key in self._trials

    def factor(self, key: str) -> float:
        trial = self._trials.get(key)
        return trial[0] / trial[1] if trial is not None else 1.0

    def __setstate__(self, state: dict[str, object]) -> None:
        """Levels snapshotted before evidence was weighed restore with the default."""
        self.__dict__.update(state)
        self.__dict__.setdefault("evidence", 9.2)
        for trial in self._trials.values():
            if len(trial) == 3:  # a trial snapshotted before evidence was kept
                trial.extend([0.0, 0.0, 0.0, trial[0] / max(trial[1], 1e-9)])

    def learn(self, key: str, observed: float, expected: float, spread: float = 1.0) -> tuple[Verdict, float]:
        """One pane of `key` (`expected`: the baseline's, without the factor; `spread`: its count's variance
        over its mean, 1 for a Poisson: each pane's evidence is divided by it, since counts that swing
        together say less); what became of the trial, and the level (to adopt, when adopted)."""
        trial = self._trials[key]
        trial[0] = trial[0] * self.decay + observed
        trial[1] = trial[1] * self.decay + expected
        trial[2] += 1
        trial[3] += observed
        trial[4] += expected
        ratio = trial[0] / max(trial[1], 1e-9)
        # the level since the trial started: a real shift's settles, a transient's sinks back as the key calms
        since = trial[3] / trial[4] if trial[4] > 0 else 1.0
        # the level the trial stands for: the accepted one, worth PRIOR_CASES expected cases, pulled toward what
        # the panes since say (a real shift often lands below the surge that started it)
        level = max((trial[3] + PRIOR_CASES * trial[6]) / (trial[4] + PRIOR_CASES), 1.0 + self.tolerance)
        # log P(observed | baseline) - log P(observed | that level x baseline), quasi-Poisson: positive when it
        # looks usual
        llr = (level - 1.0) * expected - observed * math.log(level)
        trial[5] = max(0.0, trial[5] + llr / max(spread, 1.0))
        back = trial[4] >= SETTLED and since <= 1.0 + max(self.tolerance, 2.0 / math.sqrt(trial[4]))
        if back or trial[5] > self.evidence:
            del self._trials[key]
            return "ended", 1.0
        if trial[2] >= self.adopt_after:
            del self._trials[key]
            if since <= 1.0 + self.tolerance:  # it held, at the usual level: nothing to adopt
                return "ended", 1.0
            return "adopted", since  # the level since it started: steadier than the fading one
        return "on trial", ratio

    def keys(self) -> list[str]:
        return list(self._trials)
