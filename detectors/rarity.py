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

Once admitted, an alarm's further windows go on without the check (its incident is open),
and every window that fired by the rule is remembered, admitted or held back, so a key
whose noise passes the rule again and again keeps being held back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from forewarn.detectors.base import Estimator


class RarityGate(Estimator):
    """Admits a key's firing window when fewer than `rarity` of its last `memory` windows fired as strongly.

    Windows are counted by an integer index (a pane, a row) that grows by one per window; a
    key's windows are those since the gate saw its first window of any key (`seen`), up to
    `memory`, so a key with no earlier firing window is as rare as it can be once the gate has
    seen 1 / `rarity` windows (before that, nothing is rare: a warm-up). The p-value of a window
    with score s is (1 + the key's remembered windows with score >= s) / (1 + its windows in memory).

    Parameters
    ----------
    rarity
        The share of a key's recent windows that may have fired at least as strongly; 1 admits everything.
    memory
        How many of the latest windows are remembered (at a 15-minute slide, 2688 are four weeks).

    >>> gate = RarityGate(rarity=0.01, memory=1000)
    >>> [gate.admit("TX", i, 5.0, fires=False) for i in range(500)][-1]   # a quiet key
    False
    >>> gate.admit("TX", 500, 6.0, fires=True)                           # its first firing window: rare
    True
    >>> gate.admit("TX", 501, 5.0, fires=True)                           # the same alarm goes on
    True

    A key that fired in more than 1% of its windows is held back, unless a window beats all but its top 1%:

    >>> for i in range(502, 1000):
    ...     _ = gate.admit("TX", i, 8.0 if i % 20 == 0 else 0.0, fires=i % 20 == 0)
    >>> gate.admit("TX", 1000, 8.0, fires=True), gate.admit("TX", 1001, 12.0, fires=True)
    (False, True)
    """

    def __init__(self, rarity: float = 0.01, memory: int = 2688):
        if not 0.0 < rarity <= 1.0 or memory < 1:
            raise ValueError("need 0 < rarity <= 1 and memory >= 1 windows")
        self.rarity = rarity
        self.memory = memory
        self._fired: dict[Hashable, deque[tuple[int, float]]] = {}  # key -> (index, score) of its firing windows
        self._open: set[Hashable] = set()  # keys whose last window fired and was admitted (admit's own runs)
        self._start: int | None = None  # the first index seen

    def p_value(self, key: Hashable, index: int, score: float) -> float:
        """The share of `key`'s windows in memory (the one at `index` included) that fired at least as strongly."""
        fired = self._expire(key, index)
        windows = min(index - self._start, self.memory) if self._start is not None else 0
        stronger = sum(1 for _, earlier in fired if earlier >= score) if fired else 0
        return (1 + stronger) / (1 + windows)

    def rare(self, key: Hashable, index: int, score: float) -> bool:
        """Whether a firing window of `key` with `score` is rare enough to open an alarm (nothing is learned).

        Until the gate has seen 1 / `rarity` windows, none is."""
        return self.rarity >= 1.0 or self.p_value(key, index, score) <= self.rarity

    def seen(self, index: int) -> None:
        """Windows up to `index` were judged: the gate's count of windows starts at the first."""
        if self._start is None:
            self._start = index

    def remember(self, key: Hashable, index: int, score: float) -> None:
        """A window of `key` fired by the detector's rule, admitted or not."""
        self.seen(index)
        self._fired.setdefault(key, deque()).append((index, score))

    def admit(self, key: Hashable, index: int, score: float, fires: bool) -> bool:
        """Judge and remember `key`'s window at `index`, for a caller without runs of its own: True when it fires
        and either continues an admitted alarm (the key's last window) or is rare."""
        self.seen(index)
        if not fires:
            self._open.discard(key)
            self._expire(key, index)
            return False
        admitted = key in self._open or self.rare(key, index, score)
        self.remember(key, index, score)
        if admitted:
            self._open.add(key)
        else:
            self._open.discard(key)
        return admitted

    def _expire(self, key: Hashable, index: int) -> deque[tuple[int, float]] | None:
        fired = self._fired.get(key)
        if fired is None:
            return None
        while fired and fired[0][0] <= index - self.memory:
            fired.popleft()
        if not fired:
            del self._fired[key]
            return None
        return fired
