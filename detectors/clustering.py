"""How clustered a topic's reports are, learned from every sparse window and robust to rare surges.

Some streams report in batches: a city worker logs a street's lights one after another, an app
user files a dozen reports in a walk, an app syncs a backlog. Each batch is one event, but a
sparse key's Poisson-like tail reads it as a surge of a dozen independent reports, and the key
alarms week after week. The scorers' own clustering estimate (`NegativeBinomialScorer
.learn_clustering`) cannot see this: it learns from windows that did not fire and were not too
surprising, and a batch is both. Learning from every window instead would let one real outage
blind a topic for weeks. The way out is how often it happens: batches recur every week, real
surges do not. So `BlockClustering` sums each week's sparse windows into one ratio (squared
excess over expected cases, pooled) and takes the median of the last weeks' ratios: a week with
an outage is one outlying block, a stream that batches every week moves the median.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable

from forewarn.detectors.base import Estimator


class BlockClustering(Estimator):
    """Variance over mean of a sparse window, as the median of recent blocks' pooled ratios.

    Each key's window (x cases where `expected` were due, `expected` at most `max_mean`) adds
    (x - expected)² less what the rate's own overdispersion explains (expected² / size) to the
    current block's excess, and `expected` to its cases; a block of `block` window ends closes into
    the ratio excess / cases (1 when it held fewer than `min_cases` expected cases: too few to
    tell). The estimate is the median of the last `blocks` ratios, the blocks not yet seen counted
    as 1 (no clustering): it moves only once most of the remembered weeks agree.

    Parameters
    ----------
    block
        Window ends per block (a week of hourly windows: 168).
    blocks
        How many closed blocks the median is taken over.
    max_mean
        Only windows expecting at most this many cases: where clustering matters, and where a dense
        window's surge cannot swamp it.
    min_cases
        A block with fewer expected cases counts as unclustered.
    size
        The rate's negative-binomial size when the caller gives none.

    >>> quiet, batched = BlockClustering(block=100), BlockClustering(block=100)
    >>> for week in range(6):
    ...     for window in range(100):
    ...         quiet.learn_window([(1 if window % 10 == 0 else 0, 0.1)])
    ...         batched.learn_window([(10 if window == 50 else 0, 0.1)])   # the same cases, in one batch a week
    >>> round(quiet.estimate, 2), round(batched.estimate, 1)
    (1.0, 9.9)
    >>> outage = BlockClustering(block=100)
    >>> for week in range(6):
    ...     for window in range(100):
    ...         outage.learn_window([(40 if (week, window) == (2, 7) else 1 if window % 10 == 0 else 0, 0.1)])
    >>> round(outage.estimate, 2)   # one week with a real surge is one block among many
    1.0
    """

    def __init__(self, block: int = 168, blocks: int = 8, max_mean: float = 2.0,
                 min_cases: float = 5.0, size: float = 20.0):
        if block < 1 or blocks < 1 or max_mean <= 0 or min_cases <= 0 or size <= 0:
            raise ValueError("block and blocks must be >= 1; max_mean, min_cases and size > 0")
        self.block = block
        self.blocks = blocks
        self.max_mean = max_mean
        self.min_cases = min_cases
        self.size = size
        self._ratios: deque[float] = deque(maxlen=blocks)
        self._excess = 0.0
        self._cases = 0.0
        self._windows = 0
        self.estimate = 1.0

    def learn_window(self, windows: Iterable[tuple[int, float]], size: float | None = None) -> None:
        """The windows of every key ending at one time, as (observed, expected); `size` is the rate's
        negative-binomial size where it was learned (else `size`)."""
        for observed, expected in windows:
            if 0.0 < expected <= self.max_mean:
                self._excess += (observed - expected) ** 2 - expected**2 / (size or self.size)
                self._cases += expected
        self._windows += 1
        if self._windows >= self.block:
            self._close_block()

    def _close_block(self) -> None:
        # a block with too few expected cases to tell counts as unclustered: a topic quiet but for its storms
        # (snow complaints) must not learn its storms as its texture
        ratio = max(self._excess / self._cases, 1.0) if self._cases >= self.min_cases else 1.0
        self._ratios.append(ratio)
        self.estimate = statistics.median([*self._ratios, *[1.0] * (self.blocks - len(self._ratios))])
        self._excess = self._cases = 0.0
        self._windows = 0
