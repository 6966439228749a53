"""Per-topic spike detection over sliding windows built from tumbling panes.

Bytewax hands this detector one pane (one slide of time) of a topic's cases at a
time, already counted per region. The detector keeps the last `window / slide` panes
in a ring and sums them into the window itself, which is far cheaper than letting a
sliding windower copy every record into every overlapping window.

Keeping all regions of a topic in one state lets one decision see the whole picture:
a surge that is national becomes one national spike, while a surge concentrated in a
few regions is reported for those regions only.
"""

from __future__ import annotations

import copy
import zlib
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np

from forewarn.detectors.adaptation import LevelAdaptation, levels_for
from forewarn.detectors.base import CountBaseline, Estimator, TailScorer, check_windows
from forewarn.detectors.baseline import RegionShares, SeasonalBaseline
from forewarn.detectors.calibration import KeySpread, NullCalibrator, NullKey
from forewarn.detectors.clustering import BlockClustering
from forewarn.detectors.rarity import RarityGate
from forewarn.detectors.scales import ScaleChoice, best_scale, best_scale_and_tail, firing_windows, window_sums
from forewarn.detectors.scoring import REGIONAL_MIN_EXPECTED, NegativeBinomialScorer, SpikeRule
from forewarn.records import NATIONAL, PaneCases, Spike, WindowScore, WindowVerdict
from forewarn.stats import score

PANE_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)
"""Panes are aligned to this Monday midnight UTC, so pane ids are stable everywhere."""

MAX_GAP_PANES = 7 * 24 * 12
"""A silence longer than this (a week of 5-minute panes) restarts the window ring."""


_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


def pane_index(ts: datetime, slide: timedelta) -> int:
    """The index of the pane holding `ts`, counted from `PANE_EPOCH`."""
    return int((ts - PANE_EPOCH) // slide)


def pane_time(index: int, slide: timedelta) -> datetime:
    """The start of pane `index`, saturated at datetime's limits instead of raising.

    A pane near year 1 or 9999 has no representable start or end; detection state must
    never raise on a bad timestamp (the time bounds keep such records out, but a
    misconfigured bound must not turn one record into a crash loop).

    >>> pane_time(pane_index(datetime(9999, 12, 31, 23, 59, tzinfo=UTC), timedelta(minutes=15)) + 1,
    ...           timedelta(minutes=15)).year
    9999
    """
    try:
        return PANE_EPOCH + index * slide
    except OverflowError:
        return _FIRST if index < 0 else _LAST


_pane_start = lru_cache(maxsize=8192)(pane_time)
"""Every close asks for the start of each pane in the ring: one datetime each, made once."""


def _totals(ring: list[_Pane]) -> dict[str, int]:
    """Cases per region over the panes of `ring`, regions in the order they first appear."""
    totals: dict[str, int] = {}
    for pane in ring:
        for region, cases in pane.cases.items():
            totals[region] = totals.get(region, 0) + cases.count
    return totals


def _count(pane: _Pane, key: str) -> int:
    """A pane's cases of a region, or of all regions for the national key."""
    if key == NATIONAL:
        return pane.total
    found = pane.cases.get(key)
    return found.count if found is not None else 0


def _never(length: int, observed: int, expected: float) -> bool:
    """No window is eligible to fire."""
    return False


def _merge(panes: list[PaneCases], max_examples: int) -> PaneCases:
    case_ids: list[str] = []
    reporters: list[str] = []
    for pane in panes:
        case_ids.extend(pane.case_ids[: max(0, max_examples - len(case_ids))])
        reporters.extend(pane.reporters)
    return PaneCases(sum(p.count for p in panes), tuple(case_ids), tuple(dict.fromkeys(reporters)))


@dataclass
class _Pane:
    """A pane in the ring, with the keys any window holding it was flagged for."""

    index: int
    cases: dict[str, PaneCases]
    flagged: dict[str, float] = field(default_factory=dict)  # region -> its usual share of the topic
    national_flagged: bool = False
    total: int = field(init=False)  # cases over all regions

    def __post_init__(self) -> None:
        self.total = sum(c.count for c in self.cases.values())

    def __setstate__(self, state: dict[str, object]) -> None:
        """A pane snapshotted before `total` existed counts its cases on restore."""
        self.__dict__.update(state)
        if "total" not in state:
            self.__post_init__()


class TopicDetector(LevelAdaptation, Estimator):
    """Finds improbable windows of one topic, nationally and per region.

    Regional expectations are the national baseline times each region's share of the
    topic; `region_weights` (customers per region) give new regions their share until
    they have history of their own.

    Learn-then-score would leak a surge into its own baseline, and so would learning
    a pane while later windows holding it are still to be scored. A pane is learned
    only when it leaves the ring, after every window holding it was scored, and
    keys flagged in any of those windows are left out.

    >>> from datetime import timedelta
    >>> det = TopicDetector("no_internet", window=timedelta(hours=1), slide=timedelta(minutes=15),
    ...                     warmup=timedelta(hours=6))
    >>> quiet = {"TX-453": PaneCases(1), "CA-037": PaneCases(2)}
    >>> verdicts = [v for p in range(40) for v in det.process(p, quiet)]
    >>> any(v.spikes for v in verdicts)
    False
    >>> burst = {"TX-453": PaneCases(30, ("C-1",), ("CU-1",)), "CA-037": PaneCases(2)}
    >>> [(s.region, s.observed) for s in det.process(40, burst)[0].spikes]
    [('TX-453', 33)]
    """

    def __init__(
        self,
        topic: str,
        window: timedelta = timedelta(hours=1),
        slide: timedelta = timedelta(minutes=15),
        warmup: timedelta = timedelta(days=1),
        baseline: CountBaseline | None = None,
        scorer: TailScorer | None = None,
        regional_scorer: TailScorer | None = None,
        rule: SpikeRule | None = None,
        share_fading: float = 0.003,
        explained_share: float = 0.5,
        min_expected: float = 0.05,
        max_examples: int = 5,
        reporter_lookback: timedelta = timedelta(hours=1),
        adapt_after: timedelta | None = timedelta(hours=6),
        region_weights: dict[str, float] | None = None,
        score_regions: bool = False,
        scales: tuple[timedelta, ...] = (),
        false_alarm_target: float | None = None,
        rarity: RarityGate | None = None,
    ):
        check_windows(slide, window, *scales)
        self.topic = topic
        self.window = window
        self.slide = slide
        self.warmup = warmup
        self.baseline = baseline
        self.scorer = scorer
        self.regional_scorer = regional_scorer
        self.rule = rule
        self.share_fading = share_fading
        self.explained_share = explained_share
        self.min_expected = min_expected
        self.max_examples = max_examples
        self.reporter_lookback = reporter_lookback
        self.adapt_after = adapt_after
        self.region_weights = region_weights
        self.score_regions = score_regions
        self.scales = scales
        self.false_alarm_target = false_alarm_target
        self.rarity = rarity
        # a key that fires often by the rule opens an alarm only with a window it rarely reaches (its noise)
        self._gate = rarity.clone() if rarity is not None else None
        self._fired_now: dict[str, float] = {}  # key -> score of its window that fired by the rule, this close
        # alpha set daily so that the detector's own null gives this many alarms per 1,000 key-days
        self._calibrator = NullCalibrator(false_alarm_target) if false_alarm_target is not None else None
        self._key_spread = KeySpread()  # each region's dispersion against its pool's, for the calibrator's null
        # how clustered reports are, from every sparse window, flagged or not (batches recur, real surges do not)
        self._batches = self._block_clustering()
        self._national_batches = self._block_clustering()
        self._national = baseline.clone() if baseline else SeasonalBaseline()
        self._scorer = scorer.clone() if scorer else NegativeBinomialScorer()  # the main window's
        self._rule = rule or SpikeRule()
        self._shares = RegionShares(fading=share_fading, prior_shares=region_weights)
        # levels accepted after adapt_after, on trial until they end or hold for a day (detectors/levels.py)
        self._levels = levels_for(slide)
        self._national_fired = False  # whether the last judged national window fired (reported or not)
        self._panes = window // slide
        self._scales = tuple(sorted({self._panes, *(length // slide for length in scales)}))
        self._span = self._scales[-1]  # the ring holds the longest window
        self._scorers = {n: self._scorer if n == self._panes else self._scorer.clone() for n in self._scales}
        self._regional_scorers = self._regional_scorers_for(regional_scorer)
        self._ring: deque[_Pane] = deque()
        # Reporters of the panes just before the window, per region: who called already.
        self._earlier: deque[dict[str, tuple[str, ...]]] = deque(maxlen=reporter_lookback // slide)
        self._last: int | None = None
        # Region (or "*") -> first pane of its current run of flagged windows: a level shift
        # that lasts `adapt_after` becomes the new normal and is learned again.
        self._flagged_since: dict[str, int] = {}
        self._run_last: dict[str, int] = {}  # key -> the last pane its run was flagged in
        self._run_adapted: set[str] = set()  # keys whose run has had its level accepted
        self.stale_panes = 0
        # Early firing: keys fired early for the pane being filled, and what the closed panes add up to
        # per region and window length for it (valid until the next pane closes).
        self._early_pane: int | None = None
        self._early_keys: dict[str, int] = {}  # key -> the pane it fired early in, until that pane closes
        self._closed_sums: dict[str, tuple[int, ...]] = {}
        self._predicted: dict[Hashable, float] = {}
        self._share_cache: dict[str, float] = {}  # region -> _share(region), until shares or levels change
        self._scorer_repr: str | None = None
        self._sums: dict[str, int] = {}  # cases per region over the ring: a pane added, the one leaving taken off
        self._total = 0  # ... and over all regions

    def __getstate__(self) -> dict[str, object]:
        """The snapshot leaves the share cache out: it is rebuilt at the first look after a restore."""
        state = dict(self.__dict__)
        state["_share_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        """State snapshotted before level trials existed restores without any trial (none was running)."""
        self.__dict__.update(state)
        if "_levels" not in state:
            self._levels = levels_for(self.slide)
        self.__dict__.setdefault("_national_fired", False)
        if "_run_last" not in state:  # runs snapshotted before gaps were tolerated: last flagged at the last close
            self._run_last = {key: self._last for key in self._flagged_since if self._last is not None}
            self._run_adapted = {key for key, since in self._flagged_since.items() if self._last is not None
                                 and self.adapt_after is not None and (self._last - since) * self.slide
                                 >= self.adapt_after}
        self.__dict__.setdefault("_share_cache", {})
        self.__dict__.setdefault("_scorer_repr", None)
        self.__dict__.setdefault("false_alarm_target", None)
        self.__dict__.setdefault("_calibrator", None)
        self.__dict__.setdefault("_key_spread", KeySpread())
        self.__dict__.setdefault("rarity", None)
        self.__dict__.setdefault("_gate", None)
        self.__dict__.setdefault("_fired_now", {})
        if "_batches" not in state:  # older state: batches are learned from now on
            self._batches = self._block_clustering()
            self._national_batches = self._block_clustering()
        if "_regional_scorers" not in state:  # older state: regions start from the nation's dispersion
            self._regional_scorers = {n: copy.deepcopy(scorer) for n, scorer in self._scorers.items()}
            self.regional_scorer = None

    def _regional_scorers_for(self, regional_scorer: TailScorer | None) -> dict[int, TailScorer]:
        """Regions' windows learn their own dispersion: the nation's is inflated by every region's small surges.
        By default from windows of at least `REGIONAL_MIN_EXPECTED` cases."""
        if regional_scorer is not None:
            template = regional_scorer
        else:
            template = self.scorer.clone() if self.scorer else NegativeBinomialScorer(
                min_expected=REGIONAL_MIN_EXPECTED)
        return {n: template.clone() for n in self._scales}

    def pane_start(self, index: int) -> datetime:
        return _pane_start(index, self.slide)

    def process(self, index: int, cases: dict[str, PaneCases]) -> list[WindowVerdict]:
        """Close pane `index` with its cases per region; one verdict per pane closed.

        Panes skipped because nothing happened in them are closed first as empty
        panes, so baselines learn the zeros and incidents see the quiet time. A pane
        at or before the last one closed is a straggler of a window already emitted
        and is dropped (counted in `stale_panes`).
        """
        if self._last is not None and index <= self._last:
            self.stale_panes += 1
            return []
        verdicts: list[WindowVerdict] = []
        if self._last is not None:
            gap_start = max(self._last + 1, index - MAX_GAP_PANES)
            verdicts.extend(self._close(gap, {}) for gap in range(gap_start, index))
        verdicts.append(self._close(index, cases))
        self._last = index
        return verdicts

    def _close(self, index: int, cases: dict[str, PaneCases]) -> WindowVerdict:
        self._closed_sums.clear()
        self._predicted.clear()  # the baseline learns below
        self._share_cache.clear()  # ... and the shares
        sums = self._sums
        if len(self._ring) == self._span:
            leaving = self._ring.popleft()
            self._total -= leaving.total
            for region, gone in leaving.cases.items():
                left = sums.get(region, 0) - gone.count
                if left > 0:
                    sums[region] = left
                else:
                    sums.pop(region, None)
            self._learn(leaving)
            if self._earlier.maxlen:
                self._earlier.append({r: c.reporters for r, c in leaving.cases.items() if c.reporters})
        self._ring.append(_Pane(index, dict(cases)))
        for region, added in cases.items():
            if added.count:
                sums[region] = sums.get(region, 0) + added.count
                self._total += added.count
        spikes: list[Spike] = []
        national: WindowScore | None = None
        regional: dict[str, WindowScore] = {}
        if len(self._ring) == self._span and self._national.n_learned * self.slide >= self.warmup:
            self._fired_now.clear()
            spikes, flagged, national, regional = self._score(index, list(reversed(self._ring)), sums)
            if self._gate is not None:
                self._gate.seen(index)
                for key, fired in self._fired_now.items():
                    self._gate.remember(key, index, fired)
            national_flagged = bool(spikes) and spikes[0].region == NATIONAL
            if not spikes:
                self._learn_dispersion()
                self._learn_regions(index)
            if index % self._panes == 0:
                self._learn_batches()
            for pane in self._ring:
                pane.flagged.update(flagged)
                pane.national_flagged |= national_flagged
            # a national run, once reported, goes on while the nation's own window fires, even when a close
            # reports it as its regions (a surge everywhere alternates between the two)
            self._judge_levels(self._ring[-1])
            national_run = national_flagged or (self._national_fired and NATIONAL in self._flagged_since)
            self._track_runs(index, set(flagged) | ({NATIONAL} if national_run else set()), national)
            self._predicted.clear()  # a level shift accepted above rescales the baseline
            self._share_cache.clear()  # ... or a share
            if self._calibrator is not None and (not self._calibrator.key_days or index % self._panes_per_day == 0):
                self._calibrate(index)
        return WindowVerdict(self.topic, self.pane_start(index), self.pane_start(index + 1),
                             tuple(spikes), dict(cases), national, regional)

    def _calibrate(self, index: int) -> None:
        """Draw null days from the model as it stands (the last day's expectations of every key) and set alpha
        to the calibrated one (`detectors/calibration.py`)."""
        assert self._calibrator is not None
        day = self._panes_per_day
        national = np.array([self._predict(i) for i in range(index - day + 1, index + 1)])
        keys = [NullKey(national, self._scorers)]
        # in name order: the draws must not depend on which region's case happened to arrive first
        regions = sorted(self._shares.regions())
        spreads = self._key_spread.spreads(regions)
        keys.extend(NullKey(national * self._share(region), self._regional_scorers, spreads[region])
                    for region in regions)
        rng = np.random.default_rng([zlib.crc32(self.topic.encode()), index])
        self._calibrator.observe(keys, self._rule, self._panes, self.min_expected, rng)
        self._rule = replace(self._rule, alpha=self._calibrator.alpha())

    @property
    def _panes_per_day(self) -> int:
        return timedelta(days=1) // self.slide

    def _predict(self, index: int) -> float:
        """The national baseline's expectation for pane `index`, asked once per slot until the baseline learns."""
        start = self.pane_start(index)
        slot = self._national.slot(start)
        value = self._predicted.get(slot)
        if value is None:
            value = self._predicted[slot] = self._national.predict_one(start) * self._levels.factor(NATIONAL)
        return value

    def _spread(self, key: str, expected: float) -> float:
        """Variance over mean of a pane's count of `key` expecting `expected`, as its main-window scorer sees it
        (a pane at a window's rate)."""
        scorer = self._scorer if key == NATIONAL else self._regional_scorers[self._panes]
        return scorer.dispersion(expected * self._panes)

    def _share(self, region: str) -> float:
        """The region's share of the topic, times its accepted level while that is on trial (asked once per
        region until the shares or the levels change)."""
        value = self._share_cache.get(region)
        if value is None:
            value = self._share_cache[region] = self._shares.share(region) * self._levels.factor(region)
        return value

    def early(self, filling: Sequence[tuple[int, dict[str, PaneCases]]], decided_at: datetime,
              touched: Iterable[str]) -> list[Spike]:
        """Judge the window ending at the newest pane still filling, as it stands, by the closing rule.

        `filling` holds the open panes after the last one closed, oldest first, with their cases so
        far; `touched` the regions that just gained cases (the nation is always judged). Nothing is
        learned. A key fires early once: keys fired early for this pane, and keys in a run of flagged
        windows (their incident is open) are left out. The full judgement runs only when some key's
        running count passes the rule's cheap conditions (minimum count and ratio) and the tail at one
        of the window lengths; for most keys it is a dictionary lookup and a comparison.
        """
        if self._last is None or not filling or self._national.n_learned * self.slide < self.warmup:
            return []
        newest = filling[-1][0]
        if newest != self._early_pane:
            self._early_pane, self._closed_sums = newest, {}
            # A key stays fired until its pane closes; then the close's verdict (flagged or not) decides.
            self._early_keys = {key: pane for key, pane in self._early_keys.items() if pane > self._last}
        skip = self._early_keys.keys() | set(self._flagged_since)
        by_index = dict(filling)
        added = [_Pane(i, by_index.get(i, {})) for i in range(max(self._last + 1, newest - self._span + 1),
                                                                newest + 1)]
        candidates = [key for key in (NATIONAL, *touched) if key not in skip and self._enough(key, added)]
        if not candidates:
            return []
        panes = [*self._ring, *added]
        ring, older = panes[-self._span:], panes[-self._span - 1::-1] if len(panes) > self._span else []
        if len(ring) < self._span:
            return []
        ring.reverse()  # newest first
        expected = {length: sum(self._predict(p.index) for p in ring[:length]) for length in self._scales}
        if not any(self._may_fire(key, ring, len(added), expected) for key in candidates):
            return []
        spikes = [spike for spike in self._score(newest, ring, _totals(ring), older)[0] if spike.region not in skip]
        self._early_keys.update((spike.region, newest) for spike in spikes)
        return [replace(spike, decided_at=decided_at) for spike in spikes]

    def _enough(self, key: str, added: list[_Pane]) -> bool:
        """Whether `key` has at least the rule's minimum count over the ring and the filling panes: no window
        of it can fire with fewer (the cheapest test, done for every key that gained a case)."""
        before = self._total if key == NATIONAL else self._sums.get(key, 0)
        return before + sum(_count(p, key) for p in added) >= self._rule.min_count

    def _may_fire(self, key: str, ring: list[_Pane], n_filling: int, national: dict[int, float]) -> bool:
        """Whether `key`'s running count passes the rule at some window length: min count, ratio, then tail
        (`national`: the nation's expected count over each length of `ring`)."""
        closed = self._closed_sums.get(key)
        if closed is None:
            closed = self._closed_sums[key] = tuple(
                sum(_count(p, key) for p in ring[n_filling:length]) for length in self._scales)
        filling = sum(_count(p, key) for p in ring[:n_filling])
        share = 1.0 if key == NATIONAL else self._share(key)
        scorers = self._scorers if key == NATIONAL else self._regional_scorers
        for length, before in zip(self._scales, closed, strict=True):
            observed = before + filling
            if observed < self._rule.min_count:
                continue
            expected = max(national[length] * share, self.min_expected)
            if observed >= self._rule.min_ratio * expected and (
                    scorers[length].p_value(observed, expected) <= self._rule.alpha):
                return True
        return False

    def _learn_dispersion(self) -> None:
        """Each window length's scorer learns from the national windows of a close that reported nothing (fired
        by no rule, or held back by the rarity gate), those too surprising left out by the scorer itself."""
        ring = list(reversed(self._ring))
        counts = [p.total for p in ring]
        expected = [self._predict(p.index) for p in ring]
        for length, (observed, mean) in window_sums(counts, expected, self._scales).items():
            self._scorers[length].learn_one(observed, max(mean, self.min_expected))

    def _learn_regions(self, index: int) -> None:
        """The regional scorers learn the regions' dispersion from their windows that did not fire: how
        clustered reports are from the main window (a few cases each; the same clustering holds at every
        length and for the nation, which take it), and how much more dense windows vary, per length."""
        lengths = [length for length in self._scales if index % length == 0]  # windows that do not overlap
        ring = list(reversed(self._ring))
        if not lengths or any(p.national_flagged for p in ring):
            return
        flagged = {region for pane in ring for region in pane.flagged}
        national_pred = [self._predict(p.index) for p in ring]
        observed: dict[str, int] = {}
        done = 0
        main = self._regional_scorers[self._panes]
        for length in self._scales:
            for pane in ring[done:length]:
                for region, cases in pane.cases.items():
                    observed[region] = observed.get(region, 0) + cases.count
            done = length
            if length not in lengths:
                continue
            mean = sum(national_pred[:length])
            regional = self._regional_scorers[length]
            for region in self._shares.regions():
                if region not in flagged:
                    count, expected = observed.get(region, 0), mean * self._share(region)
                    if length == self._panes:
                        main.learn_clustering(count, expected)
                    regional.learn_one(count, max(expected, self.min_expected))
                    if self._calibrator is not None:  # only its null draws on it
                        self._key_spread.learn(region, count, expected, regional)
        self._share_clustering()

    def _block_clustering(self) -> BlockClustering:
        """A week of main windows per block (`detectors/clustering.py`)."""
        return BlockClustering(block=max(timedelta(days=7) // self.window, 1))

    def _learn_batches(self) -> None:
        """Every main window that does not overlap the last teaches how clustered reports are, whether it fired
        or not (`detectors/clustering.py`): a topic whose reports come in batches week after week stops
        alarming on each batch, while a week with a real surge is one block among many. The scorers then take
        the larger of their own clustering and the regions' batches' (the nation also its own batches', where
        its windows are sparse: an app syncing a backlog across regions)."""
        main = list(self._ring)[-self._panes:]
        mean = sum(self._predict(p.index) for p in main)
        totals = _totals(main)
        regional = self._regional_scorers[self._panes]
        size = getattr(regional, "learned_size", None)
        self._batches.learn_window(((totals.get(region, 0), mean * self._share(region))
                                    for region in self._shares.regions()), size)
        self._national_batches.learn_window([(sum(totals.values()), mean)], getattr(self._scorer, "learned_size", None))
        self._share_clustering()

    def _share_clustering(self) -> None:
        """Every scorer takes the main regional scorer's own clustering (the same clustering holds at every length
        and for the nation), raised to the batches' where it learns dispersion: the regions' for them, and for the
        nation also its own (a region's batch is its nation's too). A scorer that learns no dispersion (built
        with `learn_dispersion=False`, or a Poisson one) takes the main scorer's own only, as it did before."""
        own = self._regional_scorers[self._panes].learned_clustering
        regional = self._batches.estimate
        national = max(regional, self._national_batches.estimate)
        for scorers, floor in ((self._regional_scorers, regional), (self._scorers, national)):
            for scorer in scorers.values():
                scorer.take_clustering(own, floor)

    def _window_score(self, observed: int, expected: float, p_value: float, scorer: TailScorer) -> WindowScore:
        # The band's top costs a search over the tail; only a report (score_regions) wants it.
        threshold = self._rule.threshold(expected, scorer) if self.score_regions else None
        return WindowScore(observed, expected, p_value, threshold)

    def _score(self, index: int, ring: list[_Pane], totals: dict[str, int], older: Sequence[_Pane] = ()
               ) -> tuple[list[Spike], dict[str, float], WindowScore, dict[str, WindowScore]]:
        """Judge every key of `ring` (newest pane first) over the window scales; returns spikes, flagged
        region shares and scores. `totals` holds each region's cases over the ring: a region with fewer
        than the rule's minimum count cannot fire at any length and is skipped without a look.

        The national and regional WindowScores give the main window's counts with the most surprising
        length's adjusted tail, whether or not that window could fire (too few cases, no excess in the newest
        hour): a report shows how unusual each key looked; the spikes say which fired.
        """
        national_pred = [self._predict(p.index) for p in ring]
        regional: list[Spike] = []
        flagged: dict[str, float] = {}
        scores: dict[str, WindowScore] = {}
        least = self._rule.min_count
        main_pred = sum(national_pred[: self._panes])
        main_sums = _totals(ring[: self._panes])
        for region, total in totals.items():
            # without a report, a region that cannot fire is skipped at a glance: too few cases over the longest
            # window, or no excess in the newest hour
            if total < least and not self.score_regions:
                continue
            share = self._share(region)
            current = self._current(main_sums.get(region, 0), main_pred * share)
            if not (current or self.score_regions):
                continue
            counts = [p.cases[region].count if region in p.cases else 0 for p in ring]
            expected = [e * share for e in national_pred]
            judged = self._eligible(counts, expected) if current else _never
            if self.score_regions:  # the report shows the tail of every window, large enough to fire or not
                choice, tail = best_scale_and_tail(counts, expected, self._regional_scorers, self.min_expected, judged)
                scores[region] = self._window_score(sum(counts[: self._panes]),
                                                    max(sum(expected[: self._panes]), self.min_expected), tail,
                                                    self._regional_scorers[self._panes])
            else:
                choice = best_scale(counts, expected, self._regional_scorers, self.min_expected, judged)
            spike = self._spike(index, region, ring, choice, f"national seasonal x share {share:.4f}", older)
            if spike is not None:
                regional.append(spike)
                flagged[region] = self._shares.share(region)  # its usual share, without a trial's factor
        counts = [p.total for p in ring]
        choice, tail = best_scale_and_tail(  # the tail is reported always
            counts, national_pred, self._scorers, self.min_expected,
            self._eligible(counts, national_pred) if self._current(sum(counts[: self._panes]), main_pred) else _never)
        national = self._spike(index, NATIONAL, ring, choice, "national seasonal (hour of day, weekday, week)",
                               older)
        window = self._window_score(sum(counts[: self._panes]),
                                    max(sum(national_pred[: self._panes]), self.min_expected), tail, self._scorer)
        self._national_fired = national is not None
        if national is None or self._concentrated(regional, national):
            if national is not None and NATIONAL in self._flagged_since:  # inside the nation's open alarm
                self._forget_regions(regional)
            kept = [spike for spike in regional if self._admits(index, spike)]
            return kept, {s.region: flagged[s.region] for s in kept}, window, scores
        if not self._admits(index, national):  # the nation's noise: neither it nor its regions' part of it
            return [], {}, window, scores
        self._forget_regions(regional)
        return [national], flagged, window, scores

    def _forget_regions(self, regional: list[Spike]) -> None:
        """Regions firing inside an admitted alarm of their nation: the nation's run, not theirs, so the rarity
        gate does not count it against their own later surges (a dense region fires with every national one)."""
        for spike in regional:
            self._fired_now.pop(spike.region, None)

    def _admits(self, index: int, spike: Spike) -> bool:
        """Whether a key's spike is reported: always without a rarity gate, and when its run goes on; else only
        when the key rarely fires as strongly (`detectors/rarity.py`)."""
        return (self._gate is None or spike.region in self._flagged_since
                or self._gate.rare(spike.region, index, spike.score))

    def _current(self, observed: int, expected: float) -> bool:
        """Whether the excess is still here: the main window (the newest), `observed` against `expected`, holds
        at least the rule's ratio.

        A longer window keeps an excess for hours after it ended; without this, an incident would stay open
        (and its all-clear wait) until the surge left the longest window, and a burst would fire again and
        again as it slid through it.
        """
        return observed >= self._rule.min_ratio * max(expected, self.min_expected)

    def _eligible(self, counts: Sequence[int], expected: Sequence[float]) -> Callable[[int, int, float], bool]:
        """Which of a key's windows may fire (`firing_windows`); a window too small to fire costs no tail."""
        return firing_windows(self._rule.large_enough, counts, expected, self._panes)

    def _concentrated(self, regional: list[Spike], national: Spike) -> bool:
        """True when a few regions explain the national surge: report them, not the nation.

        The spiking regions must explain at least `explained_share` of the national
        excess while normally carrying at most `1 - explained_share` of the topic's
        cases; a surge everywhere stays one national spike however many regions
        cross the threshold on their own.
        """
        if not regional:
            return False
        regional_excess = sum(s.observed - s.expected for s in regional)
        usual_share = sum(self._shares.share(s.region) for s in regional)
        return (regional_excess >= self.explained_share * (national.observed - national.expected)
                and usual_share <= 1.0 - self.explained_share)

    def _spike(self, index: int, region: str, ring: list[_Pane], choice: ScaleChoice, baseline: str,
               older: Sequence[_Pane] = ()) -> Spike | None:
        if not self._rule.fires(choice.observed, choice.expected, choice.p_value):
            return None
        if self._gate is not None:  # remembered at the close, reported or not (`_admits`)
            self._fired_now[region] = score(choice.p_value)
        inside, before = ring[: choice.panes], [*ring[choice.panes:], *older]  # older: closed panes an early
        # judgement's ring left out (newest first), which have not reached `_earlier` yet
        # Regions in name order: the examples of a national spike must not depend on which region's case
        # reached the pane first (partitions interleave differently on one process and on several).
        cases = _merge([c for p in inside for r, c in sorted(p.cases.items()) if region in (NATIONAL, r)],
                       self.max_examples)
        return Spike(
            topic=self.topic, region=region,
            window_start=self.pane_start(index - choice.panes + 1), window_end=self.pane_start(index + 1),
            observed=choice.observed, expected=choice.expected, p_value=choice.p_value,
            score=score(choice.p_value), baseline=f"{baseline}; {self._scorer_text()}",
            example_case_ids=cases.case_ids, reporters=cases.reporters,
            earlier_reporters=self._earlier_reporters(region, before),
        )

    def _scorer_text(self) -> str:
        """The main window's scorer as its spikes name it (its parameters do not change: made once)."""
        if self._scorer_repr is None:
            self._scorer_repr = repr(self._scorer)
        return self._scorer_repr

    def _earlier_reporters(self, region: str, before: list[_Pane]) -> tuple[str, ...]:
        """Who called about the key in the look-back before the deciding window: the ring's panes just before
        it, then panes that already left the ring, `reporter_lookback` in all (a shorter window than the ring
        leaves older ring panes out)."""
        lookback = self._earlier.maxlen or 0
        recent = [{r: c.reporters for r, c in p.cases.items()} for p in before[:lookback]]
        missing = max(0, lookback - len(recent))
        older = list(self._earlier)[-missing:] if missing else []
        ids = (i for pane in [*recent, *older] for r, reporters in pane.items()
               if region in (NATIONAL, r) for i in reporters)
        return tuple(dict.fromkeys(ids))
