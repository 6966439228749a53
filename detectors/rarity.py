"""Noise control per key: a window that fires opens an alarm only when the key rarely fires that strongly.

A detector's tail probability is only as good as its model. A key whose noise the model
underestimates (a bursty count, a heavy-tailed metric) fires far more often than its alpha
says, and every one of those firings would page someone. The key's own history says so:
`RarityGate` remembers, per key, the windows that fired by the detector's rule over the
last `memory` windows, and lets a new one open an alarm only when fewer than `rarity` of
them fired at least as strongly (a conformal p-value of the window's score among the key's
own). A key the model fits fires in far fewer than `rarity` of its windows and is never
held back; a key that fires, say, 5% of the time needs a window stronger than all but its
top 1% to be heard.

What counts as one firing depends on the stream. A metric's noise is the share of time it
spends far out (a window is one), while a count's noise comes in bursts: with `runs`, a run
of firing windows (at most `gap` apart) counts once, at its strongest, so a key may open an
alarm when fewer than a number of its earlier runs over `memory` were as strong (`at_most`:
say 8 in four weeks), however long each lasted. A key with a real surge every week or two is then
still heard at its weaker ones; a key that bursts every day is not.

Once admitted, an alarm's further windows go on without the check (its incident is open):
with `admit`, window after window; a topic detector uses its own runs instead, which outlast
a main window of quiet ones and take in the regions flagged under an admitted national
alarm. Every window that fired by the rule is remembered (with `runs`, in its run), admitted
or held back, so a key whose noise passes the rule again and again keeps being held back; the
caller decides whose firing it was (a topic detector leaves out its regions' windows inside an
alarm of their nation: the nation's run, not theirs).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from datetime import timedelta

from forewarn.detectors.base import Estimator


class RarityGate(Estimator):
    """Admits a key's firing window when fewer than `rarity` of its last `memory` windows fired as strongly.

    Windows are counted by an integer index (a pane, a row) that grows by one per window and
    never goes back; a gap counts as quiet windows. The p-value of a window with score s is
    (1 + the key's earlier windows in memory that fired with score >= s) / (1 + its earlier
    windows in memory), the earlier windows counted from the first the gate saw (`seen`) and,
    while fewer than 1 / `rarity` - 1, as that many: a key that never fired as strongly is rare
    from its first window on, with no deaf warm-up. With `runs`, the firing windows counted are
    runs (firing windows at most `gap` apart, scored by their strongest), `rarity` is runs per window, and
    the earlier windows are always the whole memory: a count of runs, so that a new key hears
    as many of its surges as an old one (fewer in proportion would leave a week-old deployment
    deaf to its second surge).

    Parameters
    ----------
    rarity
        The share of a key's recent windows that may have fired at least as strongly (with `runs`, the runs
        per window); 1 admits everything.
    memory
        How many of the latest windows are remembered, at least 1 / `rarity` (at a 15-minute slide,
        2688 are four weeks).
    runs
        Count a run of firing windows once, at its strongest, instead of every window; `rarity` is then
        runs per window.
    gap
        With `runs`, firing windows at most this many windows apart are one run (1: consecutive ones; a
        topic detector's run outlasts a main window of quiet ones, and so does its gate's).

    >>> gate = RarityGate(rarity=0.01, memory=1000)
    >>> gate.admit("TX", 0, 6.0, fires=True)                             # its first firing window: rare
    True
    >>> gate.admit("TX", 1, 5.0, fires=True)                             # the same alarm goes on
    True

    A key that fired in more than 1% of its windows is held back, unless a window beats all but its top 1%:

    >>> for i in range(2, 1000):
    ...     _ = gate.admit("TX", i, 8.0 if i % 20 == 0 else 0.0, fires=i % 20 == 0)
    >>> gate.admit("TX", 1000, 8.0, fires=True), gate.admit("TX", 1001, 12.0, fires=True)
    (False, True)

    Counting runs, a key may fire in long runs; it is held back once it had `at_most`'s number of runs as strong:

    >>> gate = RarityGate.at_most(2, memory=timedelta(days=28), step=timedelta(minutes=15))
    >>> def burst(start):  # a run of 20 firing windows, each of score 9, from window `start`
    ...     return [gate.admit("TX", i, 9.0, fires=True) for i in range(start, start + 20)][0]
    >>> [burst(start) for start in (0, 100, 200)]  # the third would be its third run as strong in 28 days
    [True, True, False]
    """

    def __init__(self, rarity: float = 0.01, memory: int = 2688, runs: bool = False, gap: int = 1):
        # 1e-9: runs / windows times windows may fall a hair below 1 in floating point
        if not 0.0 < rarity <= 1.0 or memory * rarity < 1.0 - 1e-9 or gap < 1:
            raise ValueError(f"need 0 < rarity <= 1, a memory of at least 1 / rarity windows and a gap of at least 1 "
                             f"(got rarity {rarity}, memory {memory}, gap {gap})")
        self.rarity = rarity
        self.memory = memory
        self.runs = runs
        self.gap = gap
        # key -> (index, score) of its firing windows (with `runs`: its runs' last index and strongest score),
        # one per index: at most `memory` of them
        self._fired: dict[Hashable, deque[tuple[int, float]]] = {}
        self._open: dict[Hashable, int] = {}  # key -> the last index it was admitted at (admit's own runs)
        self._start: int | None = None  # the first index seen

    @classmethod
    def spanning(cls, rarity: float, memory: timedelta, step: timedelta) -> RarityGate:
        """A gate remembering `memory` of time in windows `step` apart (a detector's slide, a series' spacing)."""
        return cls(rarity, memory=memory // step)

    @classmethod
    def at_most(cls, runs: int, memory: timedelta, step: timedelta, gap: int = 1) -> RarityGate:
        """A gate counting runs (firing windows at most `gap` apart) that admits a key's run while fewer than
        `runs` of its earlier runs over `memory` (windows `step` apart) fired as strongly."""
        windows = memory // step
        if not 1 <= runs <= windows:
            raise ValueError(f"need 1 <= runs <= the windows in memory ({windows}), got {runs}")
        return cls(runs / windows, memory=windows, runs=True, gap=gap)

    def __setstate__(self, state: dict[str, object]) -> None:
        """A gate snapshotted before runs were counted counts windows."""
        self.__dict__.update(state)
        self.__dict__.setdefault("runs", False)
        self.__dict__.setdefault("gap", 1)

    def p_value(self, key: Hashable, index: int, score: float) -> float:
        """The share of `key`'s earlier windows in memory that fired at least as strongly, with `runs` the runs per
        window (nothing changes)."""
        first = index - self.memory + 1  # the oldest window still in memory
        fired = self._fired.get(key, ())
        stronger = sum(1 for at, earlier in fired if first <= at < index and earlier >= score)
        if self.runs:
            earlier = self.memory - 1
        else:
            earlier = min(index - self._start, self.memory - 1) if self._start is not None else 0
        return (1 + stronger) / (1 + max(earlier, math.ceil(1.0 / self.rarity) - 1))

    def rare(self, key: Hashable, index: int, score: float) -> bool:
        """Whether a firing window of `key` with `score` is rare enough to open an alarm."""
        return self.rarity >= 1.0 or self.p_value(key, index, score) <= self.rarity

    def seen(self, index: int) -> None:
        """Windows up to `index` were judged: the gate's count of windows starts at the first."""
        if self._start is None:
            self._start = index

    def remember(self, key: Hashable, index: int, score: float) -> None:
        """A window of `key` fired by the detector's rule, admitted or not."""
        self.seen(index)
        fired = self._fired.setdefault(key, deque(maxlen=self.memory))
        if self.runs and fired and index - fired[-1][0] <= self.gap:  # the run goes on: one entry, its strongest
            fired[-1] = (index, max(score, fired[-1][1]))
        else:
            fired.append((index, score))
        self._expire(key, index)

    def admit(self, key: Hashable, index: int, score: float, fires: bool) -> bool:
        """Judge and remember `key`'s window at `index`, for a caller without runs of its own: True when it fires
        and either continues an alarm admitted at the window before or is rare."""
        self.seen(index)
        if not fires:
            self._open.pop(key, None)
            self._expire(key, index)
            return False
        admitted = self._open.get(key) == index - 1 or self.rare(key, index, score)
        self.remember(key, index, score)
        if admitted:
            self._open[key] = index
        else:
            self._open.pop(key, None)
        return admitted

    def _expire(self, key: Hashable, index: int) -> None:
        fired = self._fired.get(key)
        if fired is None:
            return
        while fired and fired[0][0] <= index - self.memory:
            fired.popleft()
        if not fired:
            del self._fired[key]
