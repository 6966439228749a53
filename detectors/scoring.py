"""Tail scorers and the minimum-evidence rule that decides whether a window spikes."""

from __future__ import annotations

from dataclasses import dataclass

from detectors.base import TailScorer
from forewarn.stats import negbin_sf, poisson_sf


class PoissonScorer(TailScorer):
    """P(X >= observed) for a Poisson count with the expected mean.

    >>> round(PoissonScorer().p_value(2, 0.3), 4)
    0.0369
    """

    def __init__(self) -> None:
        pass

    def p_value(self, observed: int, expected: float) -> float:
        return poisson_sf(observed, expected)


class NegativeBinomialScorer(TailScorer):
    """P(X >= observed) allowing for overdispersion: variance = mu + mu²/size.

    Real case counts vary more than a Poisson from hour to hour (weather, news,
    holidays); a negative binomial keeps dense keys from firing on that noise while
    it stays close to the Poisson for sparse keys.

    >>> scorer = NegativeBinomialScorer(size=20.0)
    >>> scorer.p_value(80, 30.0) < 1e-4 < scorer.p_value(60, 30.0)
    True
    """

    def __init__(self, size: float = 20.0):
        if size <= 0:
            raise ValueError("size must be > 0 (larger is closer to Poisson)")
        self.size = size

    def p_value(self, observed: int, expected: float) -> float:
        return negbin_sf(observed, expected, self.size)


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

    def fires(self, observed: int, expected: float, p_value: float) -> bool:
        return (
            observed >= self.min_count
            and observed >= self.min_ratio * expected
            and p_value <= self.alpha
        )
