"""A surge that outlasts `adapt_after` is taken as the new normal only while it lasts: after a 9-hour 5x national
surge the detector still finds the topic's later surges, and a real level shift is still adopted."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from bench.synthetic import START, Season, negbin
from forewarn.detectors.levels import Levels
from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.flows.steps import DetectorFactory
from forewarn.records import NATIONAL, PaneCases
from forewarn.settings import BUNDLED_CONFIG, load_settings

SLIDE = timedelta(minutes=15)
PER_DAY = 96
REGIONS = [f"R{i:02d}" for i in range(20)]
DAYS = 21


def _national_surges(long_surge: tuple[int, int, float] | None, later: list[tuple[int, int, float]]
                     ) -> list[tuple[int, int, float]]:
    return ([long_surge] if long_surge else []) + later


def _run(surges: list[tuple[int, int, float]], seed: int = 3, where: str = NATIONAL
         ) -> tuple[TopicDetector, list[int]]:
    """One dense topic (about 20 cases a pane over 20 regions) with `surges` (first pane, last pane exclusive,
    size) applied to every region, or to region `where` only; the last panes of the windows that alarmed on
    `where`."""
    rng = random.Random(seed)
    season = Season()
    first = pane_index(START, SLIDE)
    rates = {r: rng.uniform(0.4, 1.6) for r in REGIONS}
    detector = DetectorFactory(load_settings(BUNDLED_CONFIG / "default.yaml").detection)("no_internet")
    alarms: list[int] = []
    for i in range(DAYS * PER_DAY):
        t = START + i * SLIDE
        size = next((k for a, b, k in surges if a <= i < b), 1.0)
        cases = {r: PaneCases(n) for r in REGIONS
                 if (n := negbin(rng, rates[r] * season.raw(t) * (size if where in (NATIONAL, r) else 1.0), 30.0))}
        if any(s.region == where for v in detector.process(first + i, cases) for s in v.spikes):
            alarms.append(i)
    return detector, alarms


def _found(alarms: list[int], start: int, end: int) -> bool:
    return any(start <= a <= end + 3 for a in alarms)


def at(day: int, hour: int) -> int:
    return day * PER_DAY + hour * 4


LONG = (at(8, 8), at(8, 17), 5.0)  # 9 hours at 5x: longer than adapt_after (6 h)
LATER = [(at(d, 10), at(d, 13), 3.0) for d in (10, 12, 14, 16, 18)]


def test_later_surges_are_found_after_a_long_transient_one(monkeypatch: pytest.MonkeyPatch) -> None:
    trials = _trials(monkeypatch)
    _, alarms = _run(_national_surges(LONG, LATER))
    assert trials[:2] == [(NATIONAL, "start"), (NATIONAL, "ended")], trials  # on trial, then gone
    assert _found(alarms, LONG[0], LONG[1])
    found = [_found(alarms, a, b) for a, b, _ in LATER]
    assert found == [True] * len(LATER), found


def test_a_long_transient_surge_in_a_region_costs_none_of_its_later_finds() -> None:
    """R05 (about 0.8 cases a pane by day) has a 9-hour 5x surge, then five 3-hour 5x ones: every later surge
    found without the long one is found after it too."""
    later = [(a, b, 5.0) for a, b, _ in LATER]
    _, control = _run(later, where="R05")
    _, alarms = _run([LONG, *later], where="R05")
    found_control = [_found(control, a, b) for a, b, _ in later]
    found = [_found(alarms, a, b) for a, b, _ in later]
    assert sum(found_control) >= 3, found_control
    assert _found(alarms, LONG[0], LONG[1])
    assert all(f or not c for f, c in zip(found, found_control, strict=True)), (found, found_control)


def test_the_same_later_surges_are_found_without_the_long_one() -> None:
    """The control: what the detector finds when no long surge came first."""
    _, alarms = _run(LATER)
    assert [_found(alarms, a, b) for a, b, _ in LATER] == [True] * len(LATER)


def _trials(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Records each trial's start and end ("start", "ended", "adopted") with its key."""
    seen: list[tuple[str, str]] = []
    start, learn = Levels.start, Levels.learn

    def recording_start(self: Levels, key: str, observed: float, expected: float) -> None:
        seen.append((key, "start"))
        start(self, key, observed, expected)

    def recording_learn(self: Levels, key: str, observed: float, expected: float, spread: float = 1.0
                        ) -> tuple[str, float]:
        verdict, level = learn(self, key, observed, expected, spread)
        if verdict != "on trial":
            seen.append((key, verdict))
        return verdict, level

    monkeypatch.setattr(Levels, "start", recording_start)
    monkeypatch.setattr(Levels, "learn", recording_learn)
    return seen


def test_a_real_level_shift_is_adopted_and_stops_alarming(monkeypatch: pytest.MonkeyPatch) -> None:
    """From day 8 on the topic runs at three times its level for good: on trial after adapt_after, adopted a day
    later; alarms stop, and stay stopped."""
    trials = _trials(monkeypatch)
    shift = (at(8, 9), DAYS * PER_DAY, 3.0)
    detector, alarms = _run([shift])
    assert _found(alarms, shift[0], shift[0] + 24)
    assert (NATIONAL, "start") in trials and (NATIONAL, "adopted") in trials, trials
    assert not [a for a in alarms if a >= shift[0] + 2 * PER_DAY]
    assert not detector._levels.on_trial(NATIONAL)


def test_a_regions_real_level_shift_is_adopted_at_its_size() -> None:
    """R05 runs at three times its level from day 8 on: its share is taken at that size (its share does not fade
    while it is left out of learning) and it stops alarming."""
    shift = (at(8, 9), DAYS * PER_DAY, 3.0)
    before, _ = _run([], where="R05")
    detector, alarms = _run([shift], where="R05")
    assert _found(alarms, shift[0], shift[0] + 24)
    assert not [a for a in alarms if a >= shift[0] + 2 * PER_DAY]
    ratio = detector._shares.share("R05") / before._shares.share("R05")
    assert 2.4 <= ratio <= 3.6, ratio


def test_a_detector_snapshotted_before_level_trials_restores_and_runs() -> None:
    """Recovery state written by the detector before this change has no `_levels`: it restores without trials."""
    import pickle

    detector, _ = _run([])
    state = dict(detector.__dict__)
    del state["_levels"]
    old = TopicDetector.__new__(TopicDetector)
    old.__dict__.update(state)  # as the earlier version pickled it
    restored = pickle.loads(pickle.dumps(old))
    first = pane_index(START, SLIDE)
    assert restored.process(first + DAYS * PER_DAY, {"R01": PaneCases(1)}) is not None
    assert restored._levels.keys() == []


def test_a_dominant_regions_shift_is_on_trial_then_adopted_without_moving_the_other_regions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """R05 grows tenfold for good (about a third of the topic then): a regional trial, adopted; the other regions'
    shares stay where they were."""
    trials = _trials(monkeypatch)
    shift = (at(8, 9), DAYS * PER_DAY, 10.0)
    before, _ = _run([], where="R05")
    detector, _ = _run([shift], where="R05")
    assert ("R05", "start") in trials and ("R05", "adopted") in trials, trials
    others = [detector._shares.share(r) / before._shares.share(r) for r in REGIONS if r != "R05"]
    assert min(others) > 0.5 and max(others) < 1.3, others
