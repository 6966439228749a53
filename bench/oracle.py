"""The oracle reference of the synthetic benchmark: a Page CUSUM that knows every key's true null mean.

Any real detector has to learn what "normal" is; this one is handed it. For each key of
`bench/synthetic.py`'s streams (every (topic, region) and each topic's national "*") it
knows, per pane, the mean count without surges (`rates[key] * season(topic, pane)`; "*"
sums its regions) and the negative-binomial size (`dispersion[key]`; "*", a sum of
independent NBs, gets the moment-matched size: mean sum mu_r, variance
sum (mu_r + mu_r^2 / size_r)). What it does not know is where the surges are.

It runs Page's CUSUM on the NB log-likelihood ratio of each pane's count, "mean k x mu"
against "mean mu", for the three surge sizes the suite injects (k = 2, 3, 5: one CUSUM
each, all sharing one threshold h; the smallest k is the most sensitive to small surges,
the largest the fastest on big ones). With exact LLRs every one of them has an in-control
average run length of at least e^h panes whatever k is (Lorden), so one h treats them alike.
A pane alarms when any of the three reaches h, and all three restart from 0 after an
alarm, as the project's `PoissonCusum` does: a statistic left high would keep alarming
long after a surge has ended (it drains at the null drift, slower than it rose) and each
of those late alarms would count as a false alarm past the benchmark's grace.
Restarting does not remove every late alarm: evidence of a weak surge that has not reached
h by the surge's end can still cross it a few panes after the one-window grace. The
benchmark excuses alarms in the `TAIL_PANES` (6 hours) after that grace for every
detector alike (`bench_synthetic.excused`): the surge's late echo, neither a false alarm
nor a detection. Without it those echoes would be nearly all of the oracle's false
alarms at a low rate, forcing its threshold up.
An alarm on pane p stands for "the window whose last pane is p alarms", the `Alarms`
format of `bench.bench_synthetic`, so a one-pane surge of evidence gives one alarm and a
run of alarms one episode, as for the other detectors. Scoring starts at `eval_start`
(the statistic is 0 there): the oracle needs no training week.

The threshold is not a design choice but matched: `Oracle.match` finds the smallest h at
which the oracle's false-alarm episodes, counted as `bench_synthetic.evaluate` counts
them on the same streams, are at or below a target (another detector's). Because of the
restart the statistic's path depends on h, so what is computed once (`Oracle.build`) is
the per-pane LLR of every key and alternative plus the mask of panes a surge excuses;
each h then reruns only the recursion, vectorised over keys with numpy (tens of ms for
the default 410 keys x 2,688 test panes). Above very small h the episode count falls as h
grows (at h near 0 nearly every pane alarms, which merges alarms into few long episodes:
`match` searches above the peak of that curve).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bench.bench_synthetic import TAIL_PANES, excused
from bench.synthetic import Key, SyntheticData
from forewarn.records import NATIONAL

ALTERNATIVES = (2.0, 3.0, 5.0)
"""The surge sizes the CUSUMs test for: the sizes `bench.synthetic` injects."""

Alarms = dict[Key, list[int]]
"""Per key, the sorted last-pane indices of its alarming windows (as in `bench.bench_synthetic`)."""

_GRID = (0.125, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)
"""Thresholds tried first, to bracket the target before bisecting."""


def nb_llr(x: float, mu: float, size: float, k: float) -> float:
    """log P(x | NB(k mu, size)) - log P(x | NB(mu, size)): the evidence of one count for a k-fold rise.

    With the size fixed the binomial coefficients cancel, leaving a line in x; its
    slope is why large counts on a sparse key weigh so much.

    >>> round(nb_llr(0, 1.0, 20.0, 3.0), 3), round(nb_llr(3, 1.0, 20.0, 3.0), 3)
    (-1.819, 1.203)
    >>> abs(nb_llr(5, 2.0, 1e9, 2.0) - (5 * math.log(2) - 2.0)) < 1e-6   # Poisson as size grows
    True
    """
    mu1 = k * mu
    return x * math.log(mu1 * (size + mu) / (mu * (size + mu1))) + size * math.log((size + mu) / (size + mu1))


def national_size(means: Sequence[float], sizes: Sequence[float]) -> float:
    """The NB size whose variance matches a sum of independent NBs (moment matching).

    Var = sum(mu_r + mu_r^2 / size_r) = M + M^2 / size with M = sum mu_r.

    >>> national_size([1.0, 1.0], [10.0, 10.0])   # two equal keys: twice the size
    20.0
    """
    total = math.fsum(means)
    return total * total / math.fsum(m * m / s for m, s in zip(means, sizes, strict=True))


def page_cusum(counts: Sequence[float], means: Sequence[float], size: float | Sequence[float], h: float,
               alternatives: Sequence[float] = ALTERNATIVES) -> list[int]:
    """The indices at which the multi-alternative Page CUSUM alarms: the plain reference of `Oracle`.

    One statistic per alternative k, S = max(0, S + LLR_k); an index alarms when any S
    reaches h, then all restart from 0.

    >>> quiet, surge = [1] * 20, [4] * 4
    >>> page_cusum(quiet + surge, [1.0] * 24, 20.0, h=4.0)   # alarms, restarts, alarms again
    [21, 23]
    >>> page_cusum(quiet, [1.0] * 20, 20.0, h=4.0)
    []
    """
    sizes = [size] * len(counts) if isinstance(size, float | int) else list(size)
    stats = [0.0] * len(alternatives)
    out = []
    for i, (x, mu, r) in enumerate(zip(counts, means, sizes, strict=True)):
        stats = [max(0.0, s + nb_llr(x, mu, r, k)) for s, k in zip(stats, alternatives, strict=True)]
        if max(stats) >= h:
            out.append(i)
            stats = [0.0] * len(alternatives)
    return out


def null_means(data: SyntheticData) -> tuple[list[Key], NDArray[np.float64], NDArray[np.float64]]:
    """Every key (regions, then each topic's "*"), its true no-surge mean and NB size per test pane.

    Returns (keys, means, sizes), the arrays shaped (keys, test panes).
    """
    panes = range(data.eval_start, data.end_pane)
    season = {t: np.array([data.season(t, p) for p in panes]) for t in data.topics}
    keys = list(data.keys)
    means = [data.rates[key] * season[key[0]] for key in keys]
    sizes = [np.full(len(panes), data.dispersion[key]) for key in keys]
    for topic in data.topics:
        parts = [(data.rates[(topic, r)] * season[topic], data.dispersion[(topic, r)]) for r in data.regions]
        total = np.sum([m for m, _ in parts], axis=0)
        excess = np.sum([m * m / s for m, s in parts], axis=0)
        keys.append((topic, NATIONAL))
        means.append(total)
        sizes.append(total * total / excess)
    return keys, np.array(means), np.array(sizes)


def excused_panes(data: SyntheticData, keys: Sequence[Key], window: int, tail: int = TAIL_PANES
                  ) -> NDArray[np.bool_]:
    """(keys, test panes): where an alarm is not false, as `bench_synthetic.false_alarm_episodes` excuses.

    A surge excuses, on every key it raises, the windows ending in (start, end + window]
    and the `tail` panes after: last panes start .. end + window - 1 + tail (`excused`).
    """
    out = np.zeros((len(keys), data.end_pane - data.eval_start), dtype=bool)
    for i, key in enumerate(keys):
        for s in data.surges:
            if s.affects(key):
                first, last = excused(s, window, tail)
                a = max(first, data.eval_start) - data.eval_start
                b = min(last, data.end_pane - 1) - data.eval_start
                if a <= b:
                    out[i, a:b + 1] = True
    return out


def episodes(alarming: NDArray[np.bool_], excused: NDArray[np.bool_]) -> int:
    """Runs of consecutive unexcused alarms, counted over (panes, keys) arrays.

    An excused pane breaks a run, as skipping it does in `false_alarm_episodes`.

    >>> a = np.array([[1], [1], [0], [1], [1], [1]], dtype=bool)
    >>> e = np.array([[0], [0], [0], [0], [1], [0]], dtype=bool)
    >>> episodes(a, e)   # panes 0-1, 3, 5
    3
    """
    fa = alarming & ~excused
    return int(fa[0].sum() + (fa[1:] & ~fa[:-1]).sum())


@dataclass
class Oracle:
    """The known-mean CUSUMs over every key of one `SyntheticData`, ready to be thresholded."""

    keys: list[Key]
    first: int
    """The absolute pane index of the first test pane (row 0)."""
    llr: NDArray[np.float64]
    """(test panes, alternatives, keys): each pane's LLR per alternative and key."""
    excused: NDArray[np.bool_]
    """(test panes, keys): alarms here are within a surge raising the key, its grace or its tail."""
    key_days: float
    alternatives: tuple[float, ...] = ALTERNATIVES
    _episodes: dict[float, int] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, data: SyntheticData, window: int, alternatives: Sequence[float] = ALTERNATIVES,
              tail: int = TAIL_PANES) -> Oracle:
        """Every key's per-pane LLRs from the true null means; `window` and `tail` (panes) only set the grace.

        Its false alarms are `bench_synthetic.evaluate`'s with the same `tail` (both default to `TAIL_PANES`).
        """
        keys, mu, size = null_means(data)
        lo = data.eval_start - data.first_pane
        x = np.array([data.series(key)[lo:] for key in keys], dtype=np.float64)
        per_k = []
        for k in alternatives:
            slope = np.log(k * (size + mu) / (size + k * mu))
            per_k.append(x * slope + size * np.log((size + mu) / (size + k * mu)))
        llr = np.ascontiguousarray(np.stack(per_k).transpose(2, 0, 1))
        key_days = len(keys) * (data.end_pane - data.eval_start) / data.panes_per_day
        return cls(keys, data.eval_start, llr, excused_panes(data, keys, window, tail).T.copy(), key_days,
                   tuple(alternatives))

    @property
    def tried(self) -> int:
        """How many thresholds have been run so far."""
        return len(self._episodes)

    @property
    def key_panes(self) -> int:
        return self.llr.shape[0] * self.llr.shape[2]

    def alarming(self, h: float) -> NDArray[np.bool_]:
        """(test panes, keys): where the CUSUMs with threshold `h` alarm (restarting after each alarm)."""
        n, n_alt, n_keys = self.llr.shape
        stats = np.zeros((n_alt, n_keys))
        out = np.empty((n, n_keys), dtype=bool)
        for t in range(n):
            stats += self.llr[t]
            np.maximum(stats, 0.0, out=stats)
            hit = stats.max(axis=0) >= h
            out[t] = hit
            if hit.any():
                stats[:, hit] = 0.0
        return out

    def false_alarms(self, h: float) -> int:
        """False-alarm episodes at threshold `h` (cached: bisection and several targets revisit h)."""
        if h not in self._episodes:
            self._episodes[h] = episodes(self.alarming(h), self.excused)
        return self._episodes[h]

    def fa_per_1k(self, h: float) -> float:
        return 1000.0 * self.false_alarms(h) / self.key_days

    def alarms(self, h: float) -> Alarms:
        """The alarms at threshold `h` in the benchmark's format (keys without alarms left out)."""
        hits = self.alarming(h)
        out: Alarms = {}
        for j, key in enumerate(self.keys):
            panes = np.flatnonzero(hits[:, j])
            if panes.size:
                out[key] = [self.first + int(p) for p in panes]
        return out

    def match(self, max_episodes: int, rel_tol: float = 1e-3) -> float:
        """The smallest h (to `rel_tol`) with at most `max_episodes` false-alarm episodes.

        Brackets the target on `_GRID` above the grid's peak episode count, then
        bisects, keeping an upper end that meets the target: the result always has at
        most `max_episodes` (0 gives the smallest h without a false alarm). If the
        target is above what the oracle can produce at all, the peak is returned.
        """
        counts = [self.false_alarms(h) for h in _GRID]
        peak = max(range(len(_GRID)), key=lambda i: counts[i])
        above = [i for i in range(peak, len(_GRID)) if counts[i] > max_episodes]
        if not above:
            return _GRID[peak]
        last = above[-1]  # the grid's last h with too many: the next one meets the target
        lo = _GRID[last]
        hi = _GRID[last + 1] if last + 1 < len(_GRID) else 2 * lo
        while self.false_alarms(hi) > max_episodes:  # only past the grid's end
            lo, hi = hi, 2 * hi
        while hi - lo > rel_tol * hi:
            mid = (lo + hi) / 2
            if self.false_alarms(mid) <= max_episodes:
                hi = mid
            else:
                lo = mid
        return hi

    def match_rate(self, fa_per_1k: float) -> float:
        """`match` for a rate: at or below `fa_per_1k` false-alarm episodes per 1,000 key-days."""
        return self.match(self.max_episodes(fa_per_1k))

    def max_episodes(self, fa_per_1k: float) -> int:
        """The most episodes that stay at or below `fa_per_1k` per 1,000 key-days here."""
        return math.floor(fa_per_1k * self.key_days / 1000.0 + 1e-9)
