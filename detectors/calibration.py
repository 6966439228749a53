"""A false-alarm rate that is a setting: alpha calibrated from the detector's own null.

An operator thinks in alarms per 1,000 key-days, not in tail probabilities. The rate a
given alpha yields depends on everything between the tail and the alarm: counts are
discrete, the minimum count and ratio cut most windows off, several window lengths are
tried, a window slides over a burst for several closes, and most keys are too sparse to
fire at all. So the mapping is measured, not guessed.

The calibrator cannot measure it on the live stream: real surges there outnumber the false
alarms an operator tolerates by far, so the stream's own extreme scores are mostly the
events it should find, and a quantile of them would set alpha near zero. Instead, once a
day, it draws null days from the detector's fitted model (each key's expected counts over
the last day, the learned clustering of reports, each window length's dispersion and each
key's spread about it, `KeySpread`),
scores them with the same windows and rule as the live detector, and counts the alarm
episodes (runs of firing closes) each alpha would give. Those counts fade over `memory`
days, so the calibration follows the model as it learns; alpha is where their rate meets
the target (`NullCalibrator.alpha`). The null is the model's: surges the detector does not
flag are learned as noise and widen it, so on a stream with surges the rate outside them
comes out below the rate on the same stream without (`bench.bench_calibration` measures both).

>>> import numpy as np
>>> from forewarn.detectors.scoring import NegativeBinomialScorer, SpikeRule
>>> scorers = {4: NegativeBinomialScorer(size=30.0, learn_dispersion=False)}
>>> keys = [NullKey(np.full(96, mu), scorers) for mu in (0.5, 2.0, 5.0, 20.0)]
>>> calibrator = NullCalibrator(target=1.0, draws=200)
>>> calibrator.observe(keys, SpikeRule(), main=4, min_expected=0.05, rng=np.random.default_rng(1))
>>> 1e-7 < calibrator.alpha() < 1e-2
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import optimize

from forewarn.detectors.base import TailScorer
from forewarn.detectors.scales import excess_is_recent, recent_panes
from forewarn.detectors.scoring import REGIONAL_MIN_EXPECTED, SpikeRule

GRID = np.logspace(-10, -1, 91)
"""The alphas whose episode counts are kept (ten per decade)."""


FIT_SPAN = 4.0
"""`NullCalibrator.alpha` fits the rate over the grid alphas whose rate is within this factor of the target."""

FIRST_DAYS = 7
"""A first calibration draws a week's worth of days: the detector has no earlier ones to lean on."""

CHUNK_ROWS = 20_000
"""Null days drawn at once (rows of panes): bounds the memory a calibration takes, whatever the keys."""

NEGLIGIBLE = 1e-6
"""A key whose longest window reaches the minimum count with less than this chance a day is not drawn."""


@dataclass(frozen=True)
class NullKey:
    """One key's null model: its expected count per pane over a day (oldest first), its scorer per window
    length (in panes), which give the variance to draw with and the tails to score with, and how much more its
    windows vary beyond their counts' own noise than the scorers' pooled dispersion says: `spread` times as much
    (`KeySpread`)."""

    expected: np.ndarray
    scorers: Mapping[int, TailScorer]
    spread: float = 1.0


class KeySpread:
    """Each key's dispersion relative to its pool, learned from its windows that did not fire.

    Keys sharing a scorer share its dispersion, but not their true one, and the tail is convex in it: at the
    alphas that matter, a dense key that varies half as much again as its pool fires several times as often, one
    that varies half as much hardly ever, so a null drawn at the pooled dispersion predicts too few false alarms
    (before keys had their own spread, a target gave 1.35 to 1.57 times as many on surge-free streams;
    `bench.bench_calibration`).
    Each window reads the key's variance beyond its counts' own as r = ((x - mu)² - clustering * mu) / (mu² / size),
    a multiple of the pool's, known to a variance of about 2 / w, where w is the square of the share of the pool's
    variance that lies beyond the counts' own (about 1 for a dense window; nearly 0 for a sparse one, whose
    residual is mostly its counts' own noise). A key's estimate is its windows' w-weighted mean of r. How much keys
    truly differ (tau²) is what their estimates scatter beyond that noise (DerSimonian and Laird's moment
    estimate), and each key's spread is its estimate shrunk toward the keys' mean by it (a normal hierarchy): a
    dense key gets its own, a sparse one the keys' mean. It leaves out the windows its pool's scorer leaves out
    (`TailScorer.surprising`): surges the detector does not flag push windows up, and
    kept, one of them reads as a key that varies many times more than it does. The cut is the pool's, so a key
    much louder than its pool loses more of its upper tail than the pool does and reads low (below, 3.1 for a
    true 25 / 6 = 4.2): the spread corrects most of the pooled null's shortfall, not all of it.

    >>> from forewarn.detectors.scoring import NegativeBinomialScorer
    >>> pool = NegativeBinomialScorer(size=25.0, learn_dispersion=False)
    >>> rng = np.random.default_rng(7)
    >>> spread = KeySpread()
    >>> for _ in range(2000):
    ...     for key, size in [("loud", 6.0), ("as pooled", 25.0), ("calm", 100.0)]:
    ...         spread.learn(key, int(rng.negative_binomial(size, size / (size + 30.0))), 30.0, pool)
    >>> {key: round(value, 1) for key, value in spread.spreads(["loud", "as pooled", "calm", "unseen"]).items()}
    {'loud': 3.1, 'as pooled': 0.9, 'calm': 0.2, 'unseen': 1.4}
    """

    def __init__(self, min_expected: float = REGIONAL_MIN_EXPECTED):
        self.min_expected = min_expected
        self._sums: dict[str, tuple[float, float]] = {}  # key -> (w-weighted multiples of the pool's, w summed)

    def learn(self, key: str, observed: int, expected: float, scorer: TailScorer) -> None:
        """Learn from one of `key`'s windows that did not fire, judged by `scorer` (its pool)."""
        variance = expected * scorer.dispersion(expected)
        counts = scorer.clustering * expected  # the counts' own variance
        pooled = variance - counts  # mu² / size
        if expected < self.min_expected or pooled <= 0.0:
            return
        if scorer.surprising(observed, expected):
            return
        weight = (pooled / variance) ** 2
        total, weights = self._sums.get(key, (0.0, 0.0))
        self._sums[key] = (total + weight * ((observed - expected) ** 2 - counts) / pooled, weights + weight)

    def spreads(self, keys: Sequence[str]) -> dict[str, float]:
        """Each key's spread: its estimate shrunk toward the keys' mean (1 before any window is learned)."""
        # in key order: the draws must not depend on which region's window happened to be learned first
        seen = [(total / weights, weights / 2.0) for _, (total, weights) in sorted(self._sums.items()) if weights > 0]
        if not seen:
            return dict.fromkeys(keys, 1.0)
        estimates, precisions = np.array([e for e, _ in seen]), np.array([p for _, p in seen])
        mean = float(np.sum(precisions * estimates) / np.sum(precisions))
        scatter = float(np.sum(precisions * (estimates - mean) ** 2)) - (len(seen) - 1)
        scale = float(np.sum(precisions) - np.sum(precisions**2) / np.sum(precisions))
        between = max(0.0, scatter / scale) if scale > 0 else 0.0  # tau²
        result = {}
        for key in keys:
            total, weights = self._sums.get(key, (0.0, 0.0))
            shrunk = (total / 2.0 + mean / between) / (weights / 2.0 + 1.0 / between) if between > 0 else mean
            result[key] = max(shrunk, 0.0)
        return result


@lru_cache(maxsize=256)
def straddle(length: int, block: int) -> float:
    """How much of a block multiplier's variance a window of `length` panes keeps, over the block's alignments:
    the mean of the sum of its squared shares of each block it overlaps.

    >>> straddle(4, 4), straddle(4, 1), round(straddle(2, 4), 3)
    (0.6875, 0.25, 0.875)
    """
    kept = 0.0
    for offset in range(block):
        positions = (np.arange(length) + offset) // block
        shares = np.bincount(positions) / length
        kept += float(np.sum(shares**2))
    return kept / block


WHOLE = 0
"""The block of a multiplier held over a whole drawn day: every window keeps all of its variance."""


def _kept(length: int, block: int) -> float:
    return 1.0 if block == WHOLE else straddle(length, block)


def block_variances(scorers: Mapping[int, TailScorer], mean: float) -> dict[int, float]:
    """Relative variances of multipliers held over blocks of each window length (at random alignment) and over
    the whole day (`WHOLE`), so that a window of each length varies as its scorer says.

    A window keeps `straddle(length, block)` of a block multiplier's variance, and all of the day's. The mu²/size
    part of each length's variance (at `mean` cases per pane) is matched by non-negative least squares: one size at
    every length (the scorers' prior) is the day's multiplier alone.

    >>> from forewarn.detectors.scoring import NegativeBinomialScorer
    >>> scorers = {4: NegativeBinomialScorer(10.0, False), 16: NegativeBinomialScorer(20.0, False)}
    >>> v = block_variances(scorers, 1.0)
    >>> [round(sum(v[b] * _kept(n, b) for b in v), 3) for n in (4, 16)]   # 1/10 over an hour, 1/20 over four
    [0.1, 0.05]
    >>> same = {4: NegativeBinomialScorer(20.0, False), 16: NegativeBinomialScorer(20.0, False)}
    >>> {b: round(v, 3) for b, v in block_variances(same, 1.0).items() if v}   # the day's multiplier alone
    {0: 0.05}
    """
    lengths = sorted(scorers)
    target = []
    for length in lengths:
        scorer, mu = scorers[length], mean * length
        target.append(max(0.0, (scorer.dispersion(mu) - scorer.clustering) / mu))
    blocks = [*lengths, WHOLE]
    design = np.array([[_kept(length, block) for block in blocks] for length in lengths])
    solution, _ = optimize.nnls(design, np.array(target))
    return {block: float(v) for block, v in zip(blocks, solution, strict=True)}


def draw(expected: np.ndarray, scorers: Mapping[int, TailScorer], rng: np.random.Generator,
         spread: np.ndarray | None = None) -> np.ndarray:
    """Null counts per pane for each row of `expected` (expected counts per pane): multipliers held over blocks of
    each window length, each row at its own alignment (`block_variances`, their variances times the row's
    `spread`, 1 by default), times compound counts whose variance is `clustering` times their mean (a negative
    binomial of fixed odds, so any window's sum is one too).

    The multipliers are normal (cut at 0), not gamma: what varies a window beyond its counts' own noise is mostly
    the expectation's error, a bias of a few percent that lasts, whose tail is light. Gamma multipliers of the same
    variance have a long right tail: at a fixed alpha they gave 1.2 to 1.7 times the false alarms measured on
    surge-free synthetic streams, where normal ones gave 0.6 to 1.1 times (`bench.bench_calibration` measures the
    rate a target gives)."""
    rows, panes = expected.shape
    level = np.ones((rows, panes))
    scale = np.ones((rows, 1)) if spread is None else np.sqrt(np.maximum(spread, 0.0)).reshape(rows, 1)
    for block, variance in block_variances(scorers, float(np.mean(expected)) or 1e-9).items():
        if variance <= 1e-9:
            continue
        if block == WHOLE:
            level *= np.maximum(rng.normal(1.0, math.sqrt(variance) * scale, size=(rows, 1)), 0.0)
            continue
        factors = np.maximum(rng.normal(1.0, math.sqrt(variance) * scale, size=(rows, panes // block + 2)), 0.0)
        offsets = rng.integers(block, size=(rows, 1))
        level *= np.take_along_axis(factors, (np.arange(panes) + offsets) // block, axis=1)
    means = level * expected
    clustering = max(scorer.clustering for scorer in scorers.values())
    if clustering <= 1.0 + 1e-9:
        return rng.poisson(means)
    size = np.maximum(means / (clustering - 1.0), 1e-12)
    return rng.negative_binomial(size, 1.0 / clustering)


def _may_fire(key: NullKey, min_count: int, min_expected: float) -> bool:
    """Whether the key's longest window could reach the rule's minimum count in a day (a sparse key almost never
    can: it adds its key-days, and no draws)."""
    longest = max(key.scorers)
    window = np.convolve(key.expected, np.ones(longest), mode="full")
    peak = max(float(window.max(initial=0.0)), min_expected)
    return key.scorers[longest].p_value(min_count, peak) * len(key.expected) > NEGLIGIBLE


def adjusted_tails(counts: np.ndarray, expected: np.ndarray, scorers: Mapping[int, TailScorer], rule: SpikeRule,
                   main: int, min_expected: float) -> np.ndarray:
    """The tail each close would be judged by, as the detector judges it (`best_scale` under the rule's
    cheap conditions, the main window holding the ratio and a long window's excess recent), 1 where nothing
    could fire; one column per close once the longest window is full. `expected` holds a row per row of
    `counts`, or one row for all."""
    lengths = sorted(scorers)
    longest = lengths[-1]
    expected = np.broadcast_to(expected, counts.shape)
    cum = np.concatenate([np.zeros((counts.shape[0], 1)), np.cumsum(counts, axis=1)], axis=1)
    cum_mu = np.concatenate([np.zeros((counts.shape[0], 1)), np.cumsum(expected, axis=1)], axis=1)
    ends = counts.shape[1] + 1  # windows end (exclusive) at longest, ..., the last pane + 1
    best = np.ones((counts.shape[0], ends - longest))

    def window(length: int, floor: float = min_expected) -> tuple[np.ndarray, np.ndarray]:
        observed = cum[:, longest:ends] - cum[:, longest - length:ends - length]
        return observed, np.maximum(cum_mu[:, longest:ends] - cum_mu[:, longest - length:ends - length], floor)

    main_observed, main_mean = window(main)
    current = main_observed >= rule.min_ratio * main_mean
    for length in lengths:
        observed, mean = window(length)
        eligible = current & (observed >= rule.min_count) & (observed >= rule.min_ratio * mean)
        recent = recent_panes(length, main)
        if recent > main:
            # the newest quarter's expectation unfloored, as `firing_windows` sums it
            eligible &= excess_is_recent(observed, mean, *window(recent, floor=0.0), length, recent)
        if eligible.any():
            tails = scorers[length].p_values(observed[eligible].astype(np.int64), mean[eligible])
            best[eligible] = np.minimum(best[eligible], tails)
    return np.minimum(1.0, best * len(lengths))


def episodes_by_alpha(tails: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """Alarm episodes (runs of closes with a tail at or below alpha) at each alpha of `grid`.

    A close starts an episode at every alpha in [its tail, the previous close's tail).

    >>> episodes_by_alpha(np.array([[1.0, 1e-5, 1e-3, 1.0, 1e-4]]), np.array([1e-6, 1e-4, 1e-2]))
    array([0., 2., 2.])
    """
    previous = np.concatenate([np.ones((tails.shape[0], 1)), tails[:, :-1]], axis=1)
    starts = tails < previous
    low, high = np.sort(tails[starts]), np.sort(previous[starts])
    return (np.searchsorted(low, grid, side="right") - np.searchsorted(high, grid, side="right")).astype(float)


@dataclass
class NullCalibrator:
    """Sets alpha so that the detector's own null gives `target` alarm episodes per 1,000 key-days.

    Parameters
    ----------
    target
        Alarm episodes per 1,000 key-days (a key: a topic nationally, or in one region).
    draws
        Null key-days drawn at each calibration, spread evenly over the keys (at least one day each; a first
        calibration draws `FIRST_DAYS` times as many). A fixed number, not a number per key: a topic of 2,000
        regions would otherwise spend seconds a day on far more days than the rate needs.
    memory
        Days over which earlier calibrations fade (they weigh 1 - 1/memory less each day).
    bounds
        The least and the largest alpha it may set.
    """

    target: float
    draws: int = 1000
    memory: float = 28.0
    bounds: tuple[float, float] = (1e-9, 1e-2)
    episodes: np.ndarray = field(default_factory=lambda: np.zeros(len(GRID)))
    key_days: float = 0.0

    def __post_init__(self) -> None:
        if self.target <= 0:
            raise ValueError("target must be > 0 alarm episodes per 1,000 key-days")

    def observe(self, keys: Sequence[NullKey], rule: SpikeRule, main: int, min_expected: float,
                rng: np.random.Generator) -> None:
        """Draw null days for `keys` and add their episodes at each alpha (earlier draws fade by a day)."""
        replicates = math.ceil(self.draws / max(len(keys), 1)) * (FIRST_DAYS if self.key_days == 0.0 else 1)
        episodes = np.zeros(len(GRID))
        groups: dict[int, list[NullKey]] = {}  # keys sharing scorers are drawn together
        for key in keys:
            if _may_fire(key, rule.min_count, min_expected):
                groups.setdefault(id(key.scorers), []).append(key)
        for group in groups.values():
            scorers = group[0].scorers
            longest = max(scorers)
            # the window fills over the end of the day before (its panes are alike), then a day is judged
            profiles = np.array([np.concatenate([key.expected[-longest:], key.expected]) for key in group])
            spreads = np.array([key.spread for key in group])
            per_chunk = max(1, CHUNK_ROWS // replicates)
            for at in range(0, len(profiles), per_chunk):
                expected = np.repeat(profiles[at:at + per_chunk], replicates, axis=0)
                counts = draw(expected, scorers, rng, np.repeat(spreads[at:at + per_chunk], replicates))
                tails = adjusted_tails(counts, expected, scorers, rule, main, min_expected)
                episodes += episodes_by_alpha(tails[:, 1:])
        fade = 1.0 - 1.0 / self.memory
        self.episodes = self.episodes * fade + episodes
        self.key_days = self.key_days * fade + replicates * len(keys)  # each key's expected counts span a day

    def rate(self) -> np.ndarray:
        """Alarm episodes per 1,000 key-days at each alpha of `GRID`."""
        return 1000.0 * self.episodes / self.key_days if self.key_days else np.zeros(len(GRID))

    def alpha(self) -> float:
        """The alpha whose rate is the target.

        Near the target the rate rises about linearly in log-log, so a line fitted to the grid points within a
        factor of `FIT_SPAN` of it (weighted by their episodes) reads the alpha off many more episodes than the one
        grid step around the target holds; with fewer than three such points, the largest grid alpha whose rate
        (and every smaller one's) stays at the target, log-interpolated to the next. Runs merge as alpha grows, so
        the rate can dip: it is taken as its running maximum.
        """
        rate = np.maximum.accumulate(self.rate())
        low, high = self.bounds
        fitted = self._fitted(rate)
        value = fitted if fitted is not None else self._stepped(rate)
        return min(max(value, low), high)

    def _fitted(self, rate: np.ndarray) -> float | None:
        near = (rate >= self.target / FIT_SPAN) & (rate <= self.target * FIT_SPAN) & (self.episodes > 0)
        if near.sum() < 3:
            return None
        slope, intercept = np.polyfit(np.log(GRID[near]), np.log(rate[near]), 1, w=np.sqrt(self.episodes[near]))
        if slope <= 0:
            return None
        return math.exp((math.log(self.target) - intercept) / slope)

    def _stepped(self, rate: np.ndarray) -> float:
        low, high = self.bounds
        below = np.nonzero(rate <= self.target)[0]
        if not len(below):
            return low
        i = int(below[-1])
        if i + 1 >= len(GRID):
            return high
        # the rate steps up between GRID[i] and GRID[i + 1]: interpolate log rate against log alpha
        r0, r1 = max(rate[i], self.target / 10.0), rate[i + 1]
        share = (math.log(self.target) - math.log(r0)) / (math.log(r1) - math.log(r0)) if r1 > r0 else 0.0
        return math.exp(math.log(GRID[i]) + min(max(share, 0.0), 1.0) * (math.log(GRID[i + 1]) - math.log(GRID[i])))
