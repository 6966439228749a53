"""How a topic detector adapts: runs of flagged windows, level shifts on trial, and what each closed pane teaches.

A mixin of `TopicDetector` (its state stays the detector's own, so recovery snapshots keep their shape): a key
flagged for `adapt_after` has its level accepted on trial (`detectors/levels.py`), judged by each newest pane;
a pane leaving the ring teaches the national seasonal baseline and the regions' shares, leaving out the keys
flagged in any window that held it.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from forewarn.detectors.base import CountBaseline
from forewarn.detectors.baseline import RegionShares
from forewarn.detectors.levels import Levels
from forewarn.records import NATIONAL, WindowScore

if TYPE_CHECKING:
    from forewarn.detectors.topic import _Pane


def levels_for(slide: timedelta) -> Levels:
    """Accepted levels on trial: an hour's half-life, adopted after a day (`detectors/levels.py`)."""
    return Levels(half_life=max(timedelta(hours=1) / slide, 1.0), adopt_after=max(int(timedelta(days=1) / slide), 1))


class LevelAdaptation:
    """Run tracking, level trials and learning for `TopicDetector` (which holds the state named here)."""

    slide: timedelta
    adapt_after: timedelta | None
    min_expected: float
    _national: CountBaseline
    _shares: RegionShares
    _levels: Levels
    _ring: deque[_Pane]
    _panes: int
    _flagged_since: dict[str, int]
    _run_last: dict[str, int]
    _run_adapted: set[str]
    _share_cache: dict[str, float]
    _predicted: dict[object, float]

    def pane_start(self, index: int) -> datetime:
        raise NotImplementedError

    def _predict(self, index: int) -> float:
        raise NotImplementedError

    def _spread(self, key: str, expected: float) -> float:
        raise NotImplementedError

    def _track_runs(self, index: int, flagged_now: set[str], national: WindowScore) -> None:
        """A key's run of flagged windows survives a main window's worth of unflagged ones (a level three times
        the usual still has a quiet hour now and then, as its incident stays open through one); a run that
        has lasted `adapt_after` has its level accepted, once."""
        for key in flagged_now:
            self._run_last[key] = index
        for key in list(self._flagged_since):
            if index - self._run_last.get(key, index) > self._panes:
                del self._flagged_since[key]
                self._run_last.pop(key, None)
                self._run_adapted.discard(key)
        crossed = []
        for key in flagged_now:
            since = self._flagged_since.setdefault(key, index)
            if (self.adapt_after is not None and key not in self._run_adapted
                    and (index - since) * self.slide >= self.adapt_after):
                self._run_adapted.add(key)
                crossed.append(key)  # its run reached adapt_after at this pane
        # the nation first: a region's level is then judged against the nation's new one (no level twice)
        for key in sorted(crossed, key=lambda k: k != NATIONAL):
            self._rebase(key, national)
            self._predicted.clear()

    def _rebase(self, key: str, national: WindowScore) -> None:
        """A key flagged for `adapt_after`: its current level is accepted, on trial (`Levels`), against the
        baseline without any earlier trial's factor."""
        if key == NATIONAL:
            self._levels.start(key, national.observed, national.expected / self._levels.factor(key))
            return
        main = list(self._ring)[-self._panes:]  # the main window, as `national` counts it
        observed = sum(p.cases[key].count for p in main if key in p.cases)
        expected = max(sum(self._predict(p.index) for p in main) * self._shares.share(key), self.min_expected)
        if observed > (1.0 + self._levels.tolerance) * expected:  # what the nation's new level leaves unexplained
            self._levels.start(key, observed, expected)

    def _learn(self, pane: _Pane) -> None:
        """Learn a pane leaving the ring: keys flagged in any window holding it are left out; keys on trial
        teach their level only (their baseline waits for the trial's end)."""
        start = self.pane_start(pane.index)
        national = self._national.predict_one(start)  # before anything below learns
        trials = set(self._levels.keys())
        left_out = {r: share for r, share in pane.flagged.items() if r not in trials}
        left_out |= {r: self._shares.share(r) for r in trials if r != NATIONAL}
        if not pane.national_flagged and NATIONAL not in trials:
            # Flagged regions (and those on trial) count at their expected level, not their surge.
            total = sum(c.count for r, c in pane.cases.items() if r not in left_out) + national * sum(
                left_out.values())
            self._national.learn_one(start, total)
        if pane.national_flagged:
            return  # a national surge says nothing about the regions' shares
        # A region left out counts at its usual level (the nation's accepted level included): left out of the
        # sums, its share would fade for as long as it is flagged, making it look ever more surprising (and
        # flagged) until it is adapted to
        national = self._national.predict_one(start) * self._levels.factor(NATIONAL)  # as any trial left it
        counts: dict[str, float] = {r: c.count for r, c in pane.cases.items() if r not in left_out}
        counts |= {r: national * share for r, share in left_out.items()}
        self._shares.learn(pane.index, counts)

    def _judge_levels(self, pane: _Pane) -> None:
        """The newest pane, once judged, teaches each key on trial its level: a trial is judged by what happens
        now, not by panes a ring span old (the longest window's hours, which would end a real shift's trial on
        the quiet hour before it, or hold a transient's for hours after it ended)."""
        trials = set(self._levels.keys())
        if trials:
            national = self._national.predict_one(self.pane_start(pane.index))
            self._learn_levels(pane, trials, national, self._levels.factor(NATIONAL))
            self._predicted.clear()  # a trial that ended or was adopted changes the expectations
            self._share_cache.clear()

    def _learn_levels(self, pane: _Pane, trials: set[str], national: float, national_factor: float) -> None:
        """Each key on trial learns its level from the pane, flagged or not; an adopted level moves into the
        baseline (the nation's seasonal profile, a region's share). Every key of the pane is judged against the
        same national expectation (`national`, `national_factor`), read before the nation's trial may end."""
        for key in sorted(trials):
            if key == NATIONAL:
                observed = sum(c.count for c in pane.cases.values())
                expected = national
            elif pane.national_flagged:
                continue  # a national surge is not this region's level
            else:
                observed = pane.cases[key].count if key in pane.cases else 0
                expected = national * national_factor * self._shares.share(key)
            verdict, level = self._levels.learn(key, observed, expected, self._spread(key, expected))
            if verdict == "ended":
                # the level was not kept: a key still flagged starts a new run, judged again after adapt_after;
                # the nation's ending restarts every run (the regions' were judged against its level)
                for run in [key] if key != NATIONAL else list(self._flagged_since):
                    if run in self._flagged_since:
                        self._flagged_since[run] = pane.index
                        self._run_adapted.discard(run)
            if verdict != "adopted":
                continue
            if key == NATIONAL:
                self._national.rescale(level)
            else:
                self._shares.set_share(key, self._shares.share(key) * level)
