"""Several window lengths at once: the newest pane for a sudden step, hours for a slow rise.

A one-hour window needs three or four slides to show a step (each new pane adds a
quarter of the surge), and a sparse key never gathers enough cases in an hour. So a
key is judged over several window lengths ending now; the most surprising one
decides, its tail probability multiplied by the number of lengths tried (Bonferroni)
so that looking more than once does not raise the false-alarm rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from forewarn.detectors.base import TailScorer


@dataclass(frozen=True)
class ScaleChoice:
    """The window length that decided, with its count, expectation and adjusted tail."""

    panes: int
    observed: int
    expected: float
    p_value: float


def best_scale(counts: Sequence[int], expected: Sequence[float], scorers: Mapping[int, TailScorer],
               min_expected: float, eligible: Callable[[int, float], bool] | None = None) -> ScaleChoice:
    """The most surprising window among the lengths of `scorers` (in panes), newest pane first.

    Each length has its own scorer: counts over a quarter hour vary more, relative to
    their mean, than counts over four hours, so each learns its own overdispersion.
    With `eligible(observed, expected)`, only windows it accepts are weighed (a window
    too small to fire whatever its tail costs no tail); when none is, the shortest
    window is returned with a tail of 1.

    >>> from forewarn.detectors.scoring import PoissonScorer
    >>> choice = best_scale([12, 1, 1, 1], [1.0] * 4, {1: PoissonScorer(), 4: PoissonScorer()}, 0.05)
    >>> choice.panes, choice.observed, round(choice.expected, 1), choice.p_value < 1e-6
    (1, 12, 1.0, True)
    """
    best: ScaleChoice | None = None
    for length, observed, window_mean in _windows(counts, expected, scorers, min_expected):
        if eligible is not None and not eligible(observed, window_mean):
            continue
        p_value = scorers[length].p_value(observed, window_mean)
        if best is None or p_value < best.p_value:
            best = ScaleChoice(length, observed, window_mean, p_value)
    return _adjusted(best, counts, expected, scorers, min_expected)


def best_scale_and_tail(counts: Sequence[int], expected: Sequence[float], scorers: Mapping[int, TailScorer],
                        min_expected: float, eligible: Callable[[int, float], bool]) -> tuple[ScaleChoice, float]:
    """`best_scale` with `eligible`, and the adjusted tail `best_scale` gives without it, each length's tail
    computed once (a report shows how unusual a key looked, whether or not it could fire).

    >>> from forewarn.detectors.scoring import PoissonScorer
    >>> choice, tail = best_scale_and_tail([12, 1, 1, 1], [1.0] * 4, {1: PoissonScorer(), 4: PoissonScorer()},
    ...                                    0.05, lambda observed, mean: observed >= 15)
    >>> choice.panes, round(choice.p_value, 6) == round(min(1.0, 2 * PoissonScorer().p_value(15, 4.0)), 6), tail < 1e-6
    (4, True, True)
    """
    best: ScaleChoice | None = None
    least = 1.0
    for length, observed, window_mean in _windows(counts, expected, scorers, min_expected):
        p_value = scorers[length].p_value(observed, window_mean)
        least = min(least, p_value)
        if eligible(observed, window_mean) and (best is None or p_value < best.p_value):
            best = ScaleChoice(length, observed, window_mean, p_value)
    return _adjusted(best, counts, expected, scorers, min_expected), min(1.0, least * len(scorers))


def _windows(counts: Sequence[int], expected: Sequence[float], scorers: Mapping[int, TailScorer],
             min_expected: float) -> Iterator[tuple[int, int, float]]:
    """(length, observed, expected floored at `min_expected`) of each window, shortest first."""
    observed = 0
    mean = 0.0
    done = 0
    for length in sorted(scorers):
        observed += sum(counts[done:length])
        mean += sum(expected[done:length])
        done = length
        yield length, observed, max(mean, min_expected)


def _adjusted(best: ScaleChoice | None, counts: Sequence[int], expected: Sequence[float],
              scorers: Mapping[int, TailScorer], min_expected: float) -> ScaleChoice:
    """The chosen window with its tail times the lengths tried; with none, the shortest at a tail of 1."""
    if best is None:
        shortest = min(scorers)
        return ScaleChoice(shortest, sum(counts[:shortest]), max(sum(expected[:shortest]), min_expected), 1.0)
    return ScaleChoice(best.panes, best.observed, best.expected, min(1.0, best.p_value * len(scorers)))


def window_sums(counts: Sequence[int], expected: Sequence[float], lengths: Sequence[int]
                ) -> dict[int, tuple[int, float]]:
    """Observed and expected over each window length, newest pane first."""
    return {length: (sum(counts[:length]), sum(expected[:length])) for length in lengths}
