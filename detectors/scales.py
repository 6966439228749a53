"""Several window lengths at once: the newest pane for a sudden step, hours for a slow rise.

A one-hour window needs three or four slides to show a step (each new pane adds a
quarter of the surge), and a sparse key never gathers enough cases in an hour. So a
key is judged over several window lengths ending now; the most surprising one
decides, its tail probability multiplied by the number of lengths tried (Bonferroni)
so that looking more than once does not raise the false-alarm rate.

A window longer than four main windows fires only while its excess is current: its newest
quarter (`recent_panes`) must hold at least its even share of the window's excess, against
that quarter's own expectation, unfloored (`excess_is_recent`). A day-long window otherwise
keeps a surge for a day after it ended, and fires again whenever noise lifts the newest hour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from forewarn.detectors.base import TailScorer


@dataclass(frozen=True)
class ScaleChoice:
    """The window length that decided, with its count, expectation and adjusted tail."""

    panes: int
    observed: int
    expected: float
    p_value: float


def recent_panes(length: int, main: int) -> int:
    """How many of a window's newest panes must hold its excess: its newest quarter (rounded up), at least the
    main window; more than the main window exactly when the window is longer than four of them.

    >>> recent_panes(96, 4), recent_panes(17, 4), recent_panes(16, 4), recent_panes(8, 4)
    (24, 5, 4, 4)
    """
    return max(main, -(-length // 4))


def excess_is_recent(observed: Any, mean: Any, recent_observed: Any, recent_mean: Any, length: int, recent: int
                     ) -> Any:
    """Whether a window's newest `recent` panes (of `length`) hold at least their even share of its excess:
    a rise spread over the window puts `recent / length` of it there, a surge that has ended none. Numbers or
    numpy arrays.

    >>> excess_is_recent(55, 22.8, 3, 2.0, 96, 24)   # a surge ended 15 hours ago: 1 of the excess's 32.2
    False
    >>> excess_is_recent(6, 0.6, 2, 0.15, 96, 24)    # six cases over eight hours, two in the newest six
    True
    >>> excess_is_recent(20, 4.0, 5, 1.0, 96, 24), excess_is_recent(20, 4.0, 5, 1.01, 96, 24)  # a share of 4
    (True, False)
    """
    return (recent_observed - recent_mean) * length >= (observed - mean) * recent


def firing_windows(large_enough: Callable[[int, float], bool], counts: Sequence[int], expected: Sequence[float],
                   main: int) -> Callable[[int, int, float], bool]:
    """Which of a key's windows (counts and expectations newest pane first) may fire: those `large_enough`, a
    window longer than four `main` ones only with its excess recent (`excess_is_recent`; the main window's own
    excess is the caller's check). The `eligible` of `best_scale`.

    >>> may_fire = firing_windows(lambda observed, mean: observed >= 8, [0] * 24 + [2] * 72, [0.5] * 96, 4)
    >>> may_fire(4, 0, 2.0), may_fire(96, 144, 48.0)   # too few; a day window's excess all older than 6 hours
    (False, False)
    >>> firing_windows(lambda observed, mean: True, [2] * 96, [0.5] * 96, 4)(96, 192, 48.0)  # a day-long rise
    True
    """
    def eligible(length: int, observed: int, mean: float) -> bool:
        if not large_enough(observed, mean):
            return False
        recent = recent_panes(length, main)
        return recent == main or bool(excess_is_recent(observed, mean, sum(counts[:recent]), sum(expected[:recent]),
                                                       length, recent))
    return eligible


def best_scale(counts: Sequence[int], expected: Sequence[float], scorers: Mapping[int, TailScorer],
               min_expected: float, eligible: Callable[[int, int, float], bool] | None = None) -> ScaleChoice:
    """The most surprising window among the lengths of `scorers` (in panes), newest pane first.

    Each length has its own scorer: counts over a quarter hour vary more, relative to
    their mean, than counts over four hours, so each learns its own overdispersion.
    With `eligible(length, observed, expected)`, only windows it accepts are weighed (a window
    too small to fire whatever its tail costs no tail); when none is, the shortest
    window is returned with a tail of 1.

    >>> from forewarn.detectors.scoring import PoissonScorer
    >>> choice = best_scale([12, 1, 1, 1], [1.0] * 4, {1: PoissonScorer(), 4: PoissonScorer()}, 0.05)
    >>> choice.panes, choice.observed, round(choice.expected, 1), choice.p_value < 1e-6
    (1, 12, 1.0, True)
    """
    best: ScaleChoice | None = None
    for length, observed, window_mean in _windows(counts, expected, scorers, min_expected):
        if eligible is not None and not eligible(length, observed, window_mean):
            continue
        p_value = scorers[length].p_value(observed, window_mean)
        if best is None or p_value < best.p_value:
            best = ScaleChoice(length, observed, window_mean, p_value)
    return _adjusted(best, counts, expected, scorers, min_expected)


def best_scale_and_tail(counts: Sequence[int], expected: Sequence[float], scorers: Mapping[int, TailScorer],
                        min_expected: float, eligible: Callable[[int, int, float], bool]) -> tuple[ScaleChoice, float]:
    """`best_scale` with `eligible`, and the adjusted tail `best_scale` gives without it, each length's tail
    computed once (a report shows how unusual a key looked, whether or not it could fire).

    >>> from forewarn.detectors.scoring import PoissonScorer
    >>> choice, tail = best_scale_and_tail([12, 1, 1, 1], [1.0] * 4, {1: PoissonScorer(), 4: PoissonScorer()},
    ...                                    0.05, lambda length, observed, mean: observed >= 15)
    >>> choice.panes, round(choice.p_value, 6) == round(min(1.0, 2 * PoissonScorer().p_value(15, 4.0)), 6), tail < 1e-6
    (4, True, True)
    """
    best: ScaleChoice | None = None
    least = 1.0
    for length, observed, window_mean in _windows(counts, expected, scorers, min_expected):
        p_value = scorers[length].p_value(observed, window_mean)
        least = min(least, p_value)
        if eligible(length, observed, window_mean) and (best is None or p_value < best.p_value):
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
