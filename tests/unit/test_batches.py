"""Reports that come in batches: a topic whose sparse keys batch week after week stops alarming on each batch
(its clustering is learned from every window, fired or not, as the median of weekly blocks), while one real
surge is one block among many and a topic that never batches keeps its Poisson-like tail."""

from __future__ import annotations

import pickle
import random

from forewarn.detectors.clustering import BlockClustering
from forewarn.detectors.topic import TopicDetector
from forewarn.records import PaneCases

REGIONS = [f"R-{i:02d}" for i in range(20)]
DAY = 96  # 15-minute panes
WEEKS = 10


def _quiet(rng: random.Random, rate: float = 0.03) -> dict[str, PaneCases]:
    """20 sparse regions at `rate` cases a pane (0.03: about 3 a day each, as most of Boston's neighbourhoods)."""
    return {r: PaneCases(1) for r in REGIONS if rng.random() < rate}


def _batched(pane: int, rng: random.Random) -> dict[str, PaneCases]:
    """A street-light stream: one report a day per region, and twice a day a worker logs 8 in one pane in one
    region (most of the topic's cases come in batches, as in Boston's 2015 street-light outages)."""
    cases = _quiet(rng, 0.01)
    if pane % 48 == 20:
        region = REGIONS[(pane // 48) % len(REGIONS)]
        cases[region] = PaneCases(cases.get(region, PaneCases(0)).count + 8)
    return cases


def _alarm_days(detector: TopicDetector, stream: list[dict[str, PaneCases]]) -> dict[int, set[str]]:
    days: dict[int, set[str]] = {}
    for pane, cases in enumerate(stream):
        for verdict in detector.process(pane, cases):
            for spike in verdict.spikes:
                days.setdefault(pane // DAY, set()).add(spike.region)
    return days


def test_a_topic_that_reports_in_batches_week_after_week_stops_alarming_on_them() -> None:
    rng = random.Random(7)
    stream = [_batched(pane, rng) for pane in range(WEEKS * 7 * DAY)]
    detector = TopicDetector("street_lights", rarity=None)
    days = _alarm_days(detector, stream)
    first, last = [d for d in days if d < 21], [d for d in days if d >= 49]
    assert len(first) >= 15, "the first batches alarm: nothing says yet that this topic batches"
    assert len(last) <= 2, f"after seven weeks of batches they are the topic's texture: alarms on {last}"
    assert detector._regional_scorers[4].clustering > 3.0 and detector._scorers[4].clustering > 3.0


def test_a_topic_without_batches_learns_no_clustering_and_a_surge_still_alarms() -> None:
    rng = random.Random(8)
    stream = [_quiet(rng) for _ in range(WEEKS * 7 * DAY)]
    surge = 8 * 7 * DAY + 40  # an outage in week 9: 12 reports in an hour where 0.12 were due
    for pane in range(surge, surge + 4):
        stream[pane] = {**stream[pane], "R-03": PaneCases(3)}
    detector = TopicDetector("no_internet", rarity=None)
    days = _alarm_days(detector, stream)
    assert days == {surge // DAY: {"R-03"}}
    assert detector._batches.estimate < 1.5


def test_one_real_surge_does_not_blind_the_topic_to_the_next() -> None:
    """An outage of 40 reports in one region is one block among eight: the next, two weeks later, alarms too."""
    rng = random.Random(9)
    stream = [_quiet(rng) for _ in range(WEEKS * 7 * DAY)]
    outages = [5 * 7 * DAY + 40, 7 * 7 * DAY + 40]
    for start in outages:
        for pane in range(start, start + 4):
            stream[pane] = {**stream[pane], "R-05": PaneCases(10)}
    detector = TopicDetector("no_internet", rarity=None)
    days = _alarm_days(detector, stream)
    assert {start // DAY for start in outages} <= set(days)
    assert detector._batches.estimate < 1.5


def test_a_detector_snapshotted_before_batches_restores_and_learns_them() -> None:
    detector = TopicDetector("street_lights")
    rng = random.Random(1)
    for pane in range(2 * DAY):
        detector.process(pane, _batched(pane, rng))
    state = dict(detector.__dict__)
    del state["_batches"], state["_national_batches"]
    restored: TopicDetector = TopicDetector.__new__(TopicDetector)
    restored.__setstate__(state)
    assert isinstance(restored._batches, BlockClustering) and restored._batches.estimate == 1.0
    for pane in range(2 * DAY, 3 * DAY):
        restored.process(pane, _batched(pane, rng))
    again = pickle.loads(pickle.dumps(restored))
    assert again._batches._windows == again._national_batches._windows == 24, "a day of hourly windows learned"
    assert again._batches._cases > 0 and again._batches.block == 168
