"""Tail scorers and the minimum-evidence rule that decides whether a window spikes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from river import stats

from forewarn.detectors.base import TailScorer
from forewarn.stats import negbin_sf, negbin_sfs, poisson_sf


class PoissonScorer(TailScorer):
    """P(X >= observed) for a Poisson count with the expected mean.

    >>> round(PoissonScorer().p_value(2, 0.3), 4)
    0.0369
    """

    def __init__(self) -> None:
        pass

    def p_value(self, observed: int, expected: float) -> float:
        return poisson_sf(observed, expected)


REGIONAL_MIN_EXPECTED = 3.0
"""A region's windows teach its dispersion (`NegativeBinomialScorer.min_expected`) from this many expected cases:
fewer say little about it."""


class NegativeBinomialScorer(TailScorer):
    """P(X >= observed) allowing for overdispersion: variance = mu + mu²/size.

    Real case counts vary more than a Poisson from hour to hour (weather, news,
    holidays); a negative binomial keeps dense keys from firing on that noise while
    it stays close to the Poisson for sparse keys. With `learn_dispersion`, the
    dispersion 1/size is estimated online by the method of moments from windows
    that did not fire — ((x - mu)² - mu) / mu² per window, averaged with river's
    `stats.Mean` — and shrunk toward 1/`size` by `prior_weight` windows.

    >>> scorer = NegativeBinomialScorer(size=20.0, learn_dispersion=False)
    >>> scorer.p_value(80, 30.0) < 1e-4 < scorer.p_value(60, 30.0)
    True
    >>> calm = NegativeBinomialScorer(size=20.0, prior_weight=10)
    >>> for _ in range(200):
    ...     calm.learn_one(30, 30.0)       # counts exactly as expected: no overdispersion
    >>> calm.learned_size > 1000
    True
    """

    def __init__(self, size: float = 20.0, learn_dispersion: bool = True, prior_weight: float = 50.0,
                 min_expected: float = 1.0, outlier_p: float = 1e-3, clustering_prior: float = 200.0,
                 clustering_means: tuple[float, float] = (0.5, 20.0)):
        if size <= 0:
            raise ValueError("size must be > 0 (larger is closer to Poisson)")
        self.size = size
        self.learn_dispersion = learn_dispersion
        self.prior_weight = prior_weight
        self.min_expected = min_expected
        self.outlier_p = outlier_p
        self.clustering_prior = clustering_prior
        self.clustering_means = clustering_means
        self.learned_size = size
        self.clustering = 1.0  # what the tails use: the larger of the two below
        self.learned_clustering = 1.0  # this scorer's own estimate
        self.clustering_floor = 1.0  # what the caller knows more (reports in batches: detectors/clustering.py)
        self._phi = stats.Mean()
        self._pearson = stats.Mean()

    def __setstate__(self, state: dict[str, object]) -> None:
        """A scorer snapshotted before clustering was learned restores as unclustered (Poisson-like)."""
        self.__dict__.update(state)
        self.__dict__.setdefault("clustering", 1.0)
        self.__dict__.setdefault("learned_clustering", self.__dict__["clustering"])
        self.__dict__.setdefault("clustering_floor", 1.0)
        self.__dict__.setdefault("clustering_prior", 200.0)
        self.__dict__.setdefault("clustering_means", (0.5, 20.0))
        self.__dict__.setdefault("_pearson", stats.Mean())

    def learn_one(self, observed: int, expected: float) -> None:
        """Learn from a window that did not fire (the caller leaves out flagged ones).

        Squared residuals are fragile: one burst that stayed under the alarm level
        would inflate the dispersion until nothing fires any more. So windows already
        surprising under the current model (p < `outlier_p`) are not learned, and each
        window's estimate is clipped to [-1, 1].
        """
        if not self.learn_dispersion or expected < self.min_expected:
            return
        if self.surprising(observed, expected):
            return
        excess = (observed - expected) ** 2 - self.clustering * expected  # what clustering leaves unexplained
        self._phi.update(min(1.0, max(-1.0, excess / expected**2)))
        n = self._phi.n
        phi = (n * self._phi.get() + self.prior_weight / self.size) / (n + self.prior_weight)
        self.learned_size = 1.0 / min(max(phi, 1e-4), 1.0)

    def learn_clustering(self, observed: int, expected: float) -> None:
        """Learn how clustered reports are from a sparse key's window that did not fire.

        One caller filing several cases, or a household's devices reporting together, adds
        variance in proportion to the mean (variance = phi * mu + mu²/size), which no
        single `size` can express: it matters most where mu is a few cases. So phi is the
        mean Pearson ratio (x - mu)² / mu, less the mu / size that `size` explains, over
        windows whose mean lies in `clustering_means`, shrunk toward 1 (no clustering) by
        `clustering_prior` windows; windows already surprising (p < `outlier_p`) are not
        learned.

        >>> scorer = NegativeBinomialScorer(size=20.0, clustering_prior=10)
        >>> for count in [0, 0, 0, 6, 0, 0, 0, 6] * 50:   # cases come six at a time, two per window on average
        ...     scorer.learn_clustering(count, 1.5)
        >>> round(scorer.clustering, 1)   # a Pearson ratio of 4.5, less what size 20 explains, shrunk a little
        4.3
        """
        low, high = self.clustering_means
        if not self.learn_dispersion or not low <= expected <= high:
            return
        ratio = (observed - expected) ** 2 / expected
        # below nine (three standard deviations of a Poisson) no count is that surprising: the tail is skipped
        if ratio > 9.0 and self.surprising(observed, expected):
            return
        self._pearson.update(min(ratio, 25.0) - expected / self.learned_size)
        n = self._pearson.n
        learned = max(1.0, (n * self._pearson.get() + self.clustering_prior) / (n + self.clustering_prior))
        self.learned_clustering = learned
        self.clustering = max(learned, self.clustering_floor)

    def take_clustering(self, learned: float, floor: float) -> None:
        if not self.learn_dispersion:
            self.clustering = learned
            return
        self.clustering_floor = floor
        self.clustering = max(learned, floor)

    def dispersion(self, expected: float) -> float:
        """Variance over mean of a window with mean `expected`: phi + mu/size."""
        return self.clustering + expected / self.learned_size

    def window_size(self, expected: float) -> float:
        """The negative-binomial size of a window with mean `expected`: its variance is phi * mu + mu²/size."""
        if self.clustering <= 1.0:
            return self.learned_size
        return expected / (self.clustering - 1.0 + expected / self.learned_size)

    def p_value(self, observed: int, expected: float) -> float:
        return negbin_sf(observed, expected, self.window_size(expected))

    def p_values(self, observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """`p_value` of many windows at once (observed >= 1 and expected > 0)."""
        if self.clustering <= 1.0:
            size = np.full(len(expected), self.learned_size)
        else:
            size = expected / (self.clustering - 1.0 + expected / self.learned_size)
        return negbin_sfs(observed, expected, size)


@dataclass(frozen=True)
class SpikeRule:
    """A window spikes only with enough evidence: improbable, and large enough to matter.

    `alpha` bounds the tail probability; `min_count` and `min_ratio` stop 2 cases
    where 0.3 were expected from paging anyone, however improbable that is.

    >>> rule = SpikeRule(alpha=1e-4, min_count=8, min_ratio=1.5)
    >>> rule.fires(observed=2, expected=0.3, p_value=0.04), rule.fires(40, 4.0, 1e-20)
    (False, True)
    """

    alpha: float = 1e-4
    min_count: int = 8
    min_ratio: float = 1.5

    def threshold(self, expected: float, scorer: TailScorer) -> int:
        """The smallest count that fires against `expected`: the top of the expected band.

        >>> SpikeRule(alpha=1e-4, min_count=8, min_ratio=1.5).threshold(0.3, PoissonScorer())
        8
        >>> SpikeRule(alpha=1e-4, min_count=8, min_ratio=1.5).threshold(30.0, PoissonScorer())
        53
        """
        low = max(self.min_count, math.ceil(self.min_ratio * expected))
        if scorer.p_value(low, expected) <= self.alpha:
            return low
        high = low * 2
        while scorer.p_value(high, expected) > self.alpha:
            low, high = high, high * 2
        while high - low > 1:  # p_value falls as the count grows: bisect for the first k that fires
            middle = (low + high) // 2
            low, high = (low, middle) if scorer.p_value(middle, expected) <= self.alpha else (middle, high)
        return high

    def large_enough(self, observed: int, expected: float) -> bool:
        """Whether the window is big enough to fire if its tail is small enough (the cheap conditions)."""
        return observed >= self.min_count and observed >= self.min_ratio * expected

    def fires(self, observed: int, expected: float, p_value: float) -> bool:
        return self.large_enough(observed, expected) and p_value <= self.alpha
