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

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from detectors.base import CountBaseline, Estimator, TailScorer
from detectors.baseline import RegionShares, SeasonalBaseline
from detectors.scoring import NegativeBinomialScorer, SpikeRule
from forewarn.records import NATIONAL, PaneCases, Spike, WindowScore, WindowVerdict
from forewarn.stats import score

PANE_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)
"""Panes are aligned to this Monday midnight UTC, so pane ids are stable everywhere."""

MAX_GAP_PANES = 7 * 24 * 12
"""A silence longer than this (a week of 5-minute panes) restarts the window ring."""


def pane_index(ts: datetime, slide: timedelta) -> int:
    """The index of the pane holding `ts`, counted from `PANE_EPOCH`."""
    return int((ts - PANE_EPOCH) // slide)


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
    flagged: dict[str, float] = field(default_factory=dict)  # region -> its expected count per pane
    national_flagged: bool = False


class TopicDetector(Estimator):
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
        rule: SpikeRule | None = None,
        share_fading: float = 0.003,
        explained_share: float = 0.5,
        min_expected: float = 0.05,
        max_examples: int = 5,
        reporter_lookback: timedelta = timedelta(hours=1),
        adapt_after: timedelta | None = timedelta(hours=6),
        region_weights: dict[str, float] | None = None,
        score_regions: bool = False,
    ):
        if window < slide or window % slide:
            raise ValueError(f"window {window} must be a whole multiple of slide {slide}")
        self.topic = topic
        self.window = window
        self.slide = slide
        self.warmup = warmup
        self.baseline = baseline
        self.scorer = scorer
        self.rule = rule
        self.share_fading = share_fading
        self.explained_share = explained_share
        self.min_expected = min_expected
        self.max_examples = max_examples
        self.reporter_lookback = reporter_lookback
        self.adapt_after = adapt_after
        self.region_weights = region_weights
        self.score_regions = score_regions
        self._national = baseline.clone() if baseline else SeasonalBaseline()
        self._scorer = scorer.clone() if scorer else NegativeBinomialScorer()
        self._rule = rule or SpikeRule()
        self._shares = RegionShares(fading=share_fading, prior_shares=region_weights)
        self._panes = window // slide
        self._ring: deque[_Pane] = deque()
        # Reporters of the panes just before the window, per region: who called already.
        self._earlier: deque[dict[str, tuple[str, ...]]] = deque(maxlen=reporter_lookback // slide)
        self._last: int | None = None
        # Region (or "*") -> first pane of its current run of flagged windows: a level shift
        # that lasts `adapt_after` becomes the new normal and is learned again.
        self._flagged_since: dict[str, int] = {}
        self.stale_panes = 0

    def pane_start(self, index: int) -> datetime:
        return PANE_EPOCH + index * self.slide

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
        if len(self._ring) == self._panes:
            leaving = self._ring.popleft()
            self._learn(leaving)
            if self._earlier.maxlen:
                self._earlier.append({r: c.reporters for r, c in leaving.cases.items() if c.reporters})
        self._ring.append(_Pane(index, dict(cases)))
        spikes: list[Spike] = []
        national: WindowScore | None = None
        regional: dict[str, WindowScore] = {}
        if len(self._ring) == self._panes and self._national.n_learned * self.slide >= self.warmup:
            spikes, flagged, national, regional = self._score(index)
            national_flagged = bool(spikes) and spikes[0].region == NATIONAL
            if not spikes:
                self._scorer.learn_one(national.observed, national.expected)
            for pane in self._ring:
                pane.flagged.update(flagged)
                pane.national_flagged |= national_flagged
            self._track_runs(index, set(flagged) | ({NATIONAL} if national_flagged else set()), national)
        return WindowVerdict(self.topic, self.pane_start(index), self.pane_start(index + 1),
                             tuple(spikes), dict(cases), national, regional)

    def _window_panes(self, index: int) -> list[datetime]:
        return [self.pane_start(index - k) for k in range(self._panes)]

    def _window_score(self, observed: int, expected: float, p_value: float | None = None) -> WindowScore:
        p = self._scorer.p_value(observed, expected) if p_value is None else p_value
        # The band's top costs a search over the tail; only a report (score_regions) wants it.
        threshold = self._rule.threshold(expected, self._scorer) if self.score_regions else None
        return WindowScore(observed, expected, p, threshold)

    def _score(self, index: int
               ) -> tuple[list[Spike], dict[str, float], WindowScore, dict[str, WindowScore]]:
        starts = self._window_panes(index)
        national_expected = max(sum(self._national.predict_one(t) for t in starts), self.min_expected)
        by_region: dict[str, list[PaneCases]] = {}
        for pane in self._ring:
            for region, pane_cases in pane.cases.items():
                by_region.setdefault(region, []).append(pane_cases)
        regional: list[Spike] = []
        flagged: dict[str, float] = {}
        scores: dict[str, WindowScore] = {}
        for region, panes in by_region.items():
            merged = _merge(panes, self.max_examples)
            if merged.count < self._rule.min_count and not self.score_regions:
                continue
            share = self._shares.share(region)
            expected = max(national_expected * share, self.min_expected)
            spike = self._spike(index, region, merged, expected, f"national seasonal x share {share:.4f}")
            if self.score_regions:
                scores[region] = self._window_score(merged.count, expected, spike.p_value if spike else None)
            if spike is not None:
                regional.append(spike)
                flagged[region] = expected / self._panes
        everything = _merge([c for p in by_region.values() for c in p], self.max_examples)
        national = self._spike(index, NATIONAL, everything, national_expected, "national seasonal (hour of day)")
        window = self._window_score(everything.count, national_expected, national.p_value if national else None)
        if national is None or self._concentrated(regional, national):
            return regional, flagged, window, scores
        return [national], flagged, window, scores

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

    def _spike(self, index: int, region: str, cases: PaneCases, expected: float,
               baseline: str) -> Spike | None:
        p_value = self._scorer.p_value(cases.count, expected)
        if not self._rule.fires(cases.count, expected, p_value):
            return None
        return Spike(
            topic=self.topic, region=region,
            window_start=self.pane_start(index - self._panes + 1), window_end=self.pane_start(index + 1),
            observed=cases.count, expected=expected, p_value=p_value, score=score(p_value),
            baseline=f"{baseline}; {self._scorer!r}",
            example_case_ids=cases.case_ids, reporters=cases.reporters,
            earlier_reporters=self._earlier_reporters(region),
        )

    def _earlier_reporters(self, region: str) -> tuple[str, ...]:
        ids = (i for pane in self._earlier for r, reporters in pane.items()
               if region in (NATIONAL, r) for i in reporters)
        return tuple(dict.fromkeys(ids))

    def _track_runs(self, index: int, flagged_now: set[str], national: WindowScore) -> None:
        for key in list(self._flagged_since):
            if key not in flagged_now:
                del self._flagged_since[key]
        for key in flagged_now:
            since = self._flagged_since.setdefault(key, index)
            if self.adapt_after is not None and (index - since - 1) * self.slide < self.adapt_after <= (
                    index - since) * self.slide:
                self._rebase(key, national)  # crossed adapt_after at this pane

    def _rebase(self, key: str, national: WindowScore) -> None:
        """A key flagged for `adapt_after`: its current level becomes the expected one."""
        if key == NATIONAL:
            self._national.rescale(national.observed / max(national.expected, self.min_expected))
            return
        observed = sum(p.cases[key].count for p in self._ring if key in p.cases)
        if national.observed:
            self._shares.set_share(key, observed / national.observed)

    def _adapted(self, index: int) -> set[str]:
        """Keys flagged for so long at `index` that their new level is learned as normal."""
        if self.adapt_after is None:
            return set()
        return {key for key, since in self._flagged_since.items() if (index - since) * self.slide >= self.adapt_after}

    def _learn(self, pane: _Pane) -> None:
        adapted = self._adapted(pane.index)
        national_flagged = pane.national_flagged and NATIONAL not in adapted
        flagged = {r: e for r, e in pane.flagged.items() if r not in adapted}
        if not national_flagged:
            # Flagged regions count at their expected level, not their surge.
            total = sum(c.count for r, c in pane.cases.items() if r not in flagged) + sum(flagged.values())
            self._national.learn_one(self.pane_start(pane.index), total)
        counts = {} if national_flagged else {r: c.count for r, c in pane.cases.items() if r not in flagged}
        self._shares.learn(pane.index, counts)
