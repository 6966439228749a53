"""The small contracts every detector follows, in the manner of river's estimators.

Constructor arguments are the configuration; `clone()` returns a fresh, unfitted copy
with the same arguments; instances are plain data that pickle and deep-copy cheaply,
because Bytewax snapshots per-key state.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Hashable
from datetime import datetime, timedelta
from typing import Any, Self

import numpy as np


def check_windows(slide: timedelta, *lengths: timedelta) -> None:
    """Windows are built from panes one slide long, so each length must be a whole number of slides."""
    for length in lengths:
        if slide <= timedelta(0) or length < slide or length % slide:
            raise ValueError(f"window {length} must be a whole multiple of slide {slide}")


class Estimator:
    """Base of every detector unit: parameters in, `clone()` out."""

    def _get_params(self) -> dict[str, Any]:
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def clone(self) -> Self:
        """A new instance with the same parameters and no learned state."""
        return type(self)(**self._get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"


class CountBaseline(Estimator):
    """Learns counts per pane and predicts the count expected in a pane."""

    @abstractmethod
    def learn_one(self, t: datetime, count: float) -> None:
        """Learn the count observed in the pane starting at `t`."""

    @abstractmethod
    def predict_one(self, t: datetime) -> float:
        """The count expected in the pane starting at `t`."""

    def slot(self, t: datetime) -> Hashable:
        """Panes whose starts share a slot are predicted alike: a detector asks once per slot (by default
        every pane is its own slot)."""
        return t

    def rescale(self, factor: float) -> None:
        """Scale the expectation by `factor`: a level shift accepted as the new normal."""
        raise NotImplementedError(f"{type(self).__name__} cannot accept a level shift")

    @property
    @abstractmethod
    def n_learned(self) -> int:
        """How many panes this baseline has learned from."""


class TailScorer(Estimator):
    """Turns an observed count and its expectation into a tail probability."""

    clustering: float = 1.0
    """How clustered reports are: a sparse window's variance over its mean (1: independent reports)."""

    learned_clustering: float = 1.0
    """The clustering this scorer learned from its own windows (1 for a scorer with a fixed shape)."""

    outlier_p: float = 1e-3
    """A window above its expectation with a tail below this is already surprising: no noise to learn from."""

    @abstractmethod
    def p_value(self, observed: int, expected: float) -> float:
        """P(X >= observed) under the scorer's count distribution."""

    def learn_one(self, observed: int, expected: float) -> None:
        """Learn from a window that did not fire; scorers with fixed shape ignore it."""

    def surprising(self, observed: int, expected: float) -> bool:
        """Whether a window is above its expectation with a tail below `outlier_p`: what learning leaves out.

        At or below its mean a count is never that surprising (P(X >= x) stays above ~0.18 for a negative
        binomial of size >= 1), so the tail is computed only above it."""
        return observed > expected and self.p_value(observed, expected) < self.outlier_p

    def dispersion(self, expected: float) -> float:
        """Variance over mean of a window's count expecting `expected` (1: a Poisson)."""
        return 1.0

    def p_values(self, observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """`p_value` of many windows at once (scorers with a closed form override this with array code)."""
        return np.array([self.p_value(int(o), float(e)) for o, e in zip(observed, expected, strict=True)])

    def learn_clustering(self, observed: int, expected: float) -> None:
        """Learn from a sparse key's window that did not fire how clustered its reports are; scorers with
        fixed shape ignore it."""

    def take_clustering(self, learned: float, floor: float) -> None:
        """Use the clustering its topic `learned`, at least `floor` (what the topic's batches showed,
        `detectors/clustering.py`) where the scorer learns its shape; a fixed shape takes `learned` only."""
        self.clustering = learned
