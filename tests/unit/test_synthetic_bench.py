"""The synthetic-outbreak generator and the benchmark's metric functions, on small inputs."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from datetime import datetime

import pytest

from bench.bench_synthetic import (
    NATIONAL_SHARE,
    TAIL_PANES,
    Adapter,
    Ours,
    PerKey,
    detection_delay,
    evaluate,
    false_alarm_episodes,
    percentile,
    run_all,
)
from bench.synthetic import SIZES, Surge, SyntheticData, generate, negbin, poisson
from forewarn.detectors.topic import PANE_EPOCH
from forewarn.records import NATIONAL
from forewarn.settings import DetectionSettings

W = 4  # window in panes (1 h of 15-minute panes)


@pytest.fixture(scope="module")
def small() -> SyntheticData:
    return generate(topics=2, regions=6, weeks=3, seed=11)


@pytest.fixture(scope="module")
def dense() -> SyntheticData:
    """Every key dense (20 per pane on average), so averages are tight."""
    return generate(topics=2, regions=8, weeks=3, seed=5, min_rate=20.0, max_rate=20.0)


# --- the generator -----------------------------------------------------------------------------------


def test_same_seed_same_streams_other_seed_other_streams(small: SyntheticData) -> None:
    again = generate(topics=2, regions=6, weeks=3, seed=11)
    assert again.counts == small.counts
    assert again.surges == small.surges
    assert again.rates == small.rates
    other = generate(topics=2, regions=6, weeks=3, seed=12)
    assert other.counts != small.counts
    assert other.surges != small.surges


def test_shape_of_the_data(small: SyntheticData) -> None:
    assert small.n_panes == 3 * 7 * 96
    assert small.pane_start(small.first_pane).weekday() == 0  # starts on a Monday midnight
    assert small.pane_start(small.first_pane).hour == 0
    assert len(small.keys) == 12
    assert all(len(c) == small.n_panes for c in small.counts.values())
    assert all(0.05 - 1e-9 <= r <= 20.0 + 1e-9 for r in small.rates.values())
    assert all(10.0 <= k <= 50.0 for k in small.dispersion.values())
    # The panes handed to TopicDetector: every pane, only regions with cases, the counts of the streams.
    panes = list(small.panes("topic00"))
    assert [i for i, _ in panes] == list(range(small.first_pane, small.end_pane))
    i, cases = panes[500]
    assert {r: c.count for r, c in cases.items()} == {r: small.count(("topic00", r), i) for r in small.regions
                                                      if small.count(("topic00", r), i)}
    assert small.count(("topic00", NATIONAL), i) == sum(c.count for c in cases.values())
    assert small.series(("topic00", NATIONAL))[500] == small.count(("topic00", NATIONAL), i)


def test_rates_span_sparse_to_dense() -> None:
    data = generate(topics=5, regions=40, weeks=1, seed=0, national_per_topic=0, local_per_region=0)
    rates = sorted(data.rates.values())
    assert rates[0] < 0.15 and rates[-1] > 10.0
    assert sum(r < 0.5 for r in rates) > 20 and sum(r >= 3 for r in rates) > 20


def test_surges_are_placed_as_planned(small: SyntheticData) -> None:
    surges = small.surges
    assert {s.scope for s in surges} == {"local", "national"}
    assert {s.size for s in surges} == set(SIZES)
    assert {s.shape for s in surges} == {"step", "ramp"}
    for s in surges:
        assert small.eval_start <= s.start < s.end <= small.end_pane
        if s.shape == "step":
            assert 8 <= s.end - s.start <= 24  # 2-6 hours
        else:
            assert 16 <= s.end - s.start <= 24  # 2 h ramp + 2-4 h plateau
    # Surges touching the same key never overlap and keep 12 h apart.
    for key in small.keys:
        mine = sorted((s.start, s.end) for s in surges if s.affects(key))
        for (_, end), (start, _) in itertools.pairwise(mine):
            assert start - end >= 48


def test_multiplier_step_and_ramp() -> None:
    step = Surge("t", "R1", start=100, end=110, size=3.0, shape="step")
    assert [step.multiplier(p) for p in (99, 100, 109, 110)] == [1.0, 3.0, 3.0, 1.0]
    ramp = Surge("t", "R1", start=100, end=120, size=5.0, shape="ramp")
    assert [ramp.multiplier(p) for p in (99, 100, 101, 107, 108, 119, 120)] == [1.0, 1.5, 2.0, 5.0, 5.0, 5.0, 1.0]
    assert step.affects(("t", "R1")) and step.affects(("t", NATIONAL))
    assert not step.affects(("t", "R2")) and not step.affects(("u", "R1"))
    national = Surge("t", NATIONAL, 0, 8, 2.0, "step")
    assert national.affects(("t", "R7")) and national.scope == "national" and step.scope == "local"


def test_surges_raise_the_expected_and_observed_counts_by_their_size(dense: SyntheticData) -> None:
    for s in dense.surges:
        key = s.key if s.region != NATIONAL else (s.topic, dense.regions[0])
        for p in (s.start, s.end - 1):
            base = dense.rates[key] * dense.season(s.topic, p)
            assert dense.expected(key, p) == pytest.approx(base * s.multiplier(p))
        assert dense.expected(key, s.end) == pytest.approx(dense.rates[key] * dense.season(s.topic, s.end))
    # Observed: the surge panes of each size hold about size x the no-surge expectation.
    for size in SIZES:
        observed = baseline = 0.0
        for s in dense.surges:
            if s.size != size or s.shape != "step":
                continue
            keys = [(s.topic, r) for r in dense.regions] if s.region == NATIONAL else [s.key]
            for key in keys:
                for p in range(s.start, s.end):
                    observed += dense.count(key, p)
                    baseline += dense.rates[key] * dense.season(s.topic, p)
        assert baseline > 0
        assert observed / baseline == pytest.approx(size, rel=0.1), size


def test_seasonality_is_visible() -> None:
    """Monday morning above other weekday mornings, weekday mornings above weekend ones, nights lowest."""
    dense = generate(topics=2, regions=8, weeks=2, seed=5, min_rate=20.0, max_rate=20.0,
                     national_per_topic=0, local_per_region=0)
    assert not dense.surges

    def mean_count(weekday: int, hours: tuple[int, int]) -> float:
        values = []
        for key in dense.keys:
            for i, c in enumerate(dense.counts[key]):
                t = dense.pane_start(dense.first_pane + i)
                if t.weekday() == weekday and hours[0] <= t.hour < hours[1]:
                    values.append(c)
        return statistics.fmean(values)

    monday, tuesday, sunday = mean_count(0, (9, 11)), mean_count(1, (9, 11)), mean_count(6, (9, 11))
    night = mean_count(1, (2, 5))
    assert monday > 1.25 * tuesday
    assert tuesday > 1.2 * sunday
    assert sunday > 2 * night
    assert tuesday > 5 * night


def test_counts_are_overdispersed(dense: SyntheticData) -> None:
    """Per key, E[(x - mu)^2 - x] / mu^2 estimates 1/size: about 1/50 to 1/10, not 0 (Poisson)."""
    quiet = {(s.topic, r) for s in dense.surges for r in ([s.region] if s.region != NATIONAL else dense.regions)}
    estimates = []
    for key in dense.keys:
        num = den = 0.0
        for i, x in enumerate(dense.counts[key]):
            p = dense.first_pane + i
            if key in quiet and any(s.affects(key) and s.start <= p < s.end for s in dense.surges):
                continue
            mu = dense.expected(key, p)
            num += (x - mu) ** 2 - x
            den += mu * mu
        estimates.append(num / den)
    inverse_sizes = [1.0 / dense.dispersion[k] for k in dense.keys]
    assert statistics.fmean(estimates) == pytest.approx(statistics.fmean(inverse_sizes), rel=0.35)
    assert min(estimates) > 0.005


@pytest.mark.parametrize("lam", [0.05, 3.0, 9.9, 40.0, 400.0])
def test_poisson_sampler_mean_and_variance(lam: float) -> None:
    rng = random.Random(1)
    draws = [poisson(rng, lam) for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(lam, rel=0.05)
    assert statistics.pvariance(draws) == pytest.approx(lam, rel=0.1)


def test_negbin_sampler_variance() -> None:
    rng = random.Random(2)
    draws = [negbin(rng, 20.0, 10.0) for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(20.0, rel=0.05)
    assert statistics.pvariance(draws) == pytest.approx(20.0 + 20.0**2 / 10.0, rel=0.1)


# --- the metrics -------------------------------------------------------------------------------------


LOCAL = Surge("t", "R1", start=100, end=108, size=3.0, shape="step")
NATIONWIDE = Surge("t", NATIONAL, start=200, end=212, size=2.0, shape="ramp")
WEIGHTS = {"R1": 0.4, "R2": 0.3, "R3": 0.2, "R4": 0.1}


def test_delay_counts_slides_from_start_to_the_end_of_the_first_alarming_window() -> None:
    assert detection_delay(LOCAL, {("t", "R1"): [100]}, W) == 1  # the window ending with the first surge pane
    assert detection_delay(LOCAL, {("t", "R1"): [90, 99, 103, 104]}, W) == 4  # alarms before the start don't count
    assert detection_delay(LOCAL, {("t", "R1"): [111]}, W) == 12  # end + 1 window is still in time
    assert detection_delay(LOCAL, {("t", "R1"): [112]}, W) is None  # one slide later is not
    assert detection_delay(LOCAL, {("t", "R2"): [101], ("t", NATIONAL): [101]}, W) is None  # other keys
    assert detection_delay(LOCAL, {}, W) is None


def test_national_surge_detected_by_star_or_by_regions_carrying_half_the_topic() -> None:
    assert detection_delay(NATIONWIDE, {("t", NATIONAL): [203]}, W, WEIGHTS) == 4
    # Regions: R4 (0.1) at 201, R2 (0.3) at 204 -> 0.4, R3 (0.2) at 206 -> 0.6 >= 0.5: detected at 206.
    regions = {("t", "R4"): [201], ("t", "R2"): [204, 205], ("t", "R3"): [206]}
    assert NATIONAL_SHARE == 0.5
    assert detection_delay(NATIONWIDE, regions, W, WEIGHTS) == 7
    assert detection_delay(NATIONWIDE, {**regions, ("t", NATIONAL): [205]}, W, WEIGHTS) == 6  # whichever first
    assert detection_delay(NATIONWIDE, {("t", "R4"): [201], ("t", "R3"): [202]}, W, WEIGHTS) is None  # 0.3
    assert detection_delay(NATIONWIDE, {("u", "R1"): [201], ("u", "R2"): [201]}, W, WEIGHTS) is None  # other topic
    assert detection_delay(NATIONWIDE, regions, W) is None  # without weights only "*" counts


def test_false_alarm_episodes_outside_surges_with_one_window_of_grace() -> None:
    """Without the tail (tail=0): only the windows that could detect a surge are excused."""
    alarms = {
        ("t", "R1"): [10, 11, 12, 14, 99, 100, 105, 111, 112, 113, 150],
        ("t", "R2"): [203, 204, 300],  # R2 is raised by the national surge
        ("t", NATIONAL): [104, 215, 216],  # "*" is raised by every surge of its topic: a local one too
        ("u", "R1"): [104],  # another topic: LOCAL does not excuse it
    }
    episodes = false_alarm_episodes(alarms, [LOCAL, NATIONWIDE], W, start=0, end=1000, tail=0)
    assert episodes == [
        (("t", "*"), 216, 216),
        (("t", "R1"), 10, 12), (("t", "R1"), 14, 14), (("t", "R1"), 99, 99), (("t", "R1"), 112, 113),
        (("t", "R1"), 150, 150),
        (("t", "R2"), 300, 300),
        (("u", "R1"), 104, 104),
    ]
    # Only windows ending in the test period count.
    assert false_alarm_episodes(alarms, [LOCAL, NATIONWIDE], W, start=100, end=200, tail=0) == [
        (("t", "R1"), 112, 113), (("t", "R1"), 150, 150), (("u", "R1"), 104, 104)]
    # With the default tail, the alarms in the 24 panes after each grace are the surges' echo:
    # R1's 112-113 (LOCAL's grace ends at 111) and "*"'s 216 (NATIONWIDE's at 215) go; 150 is past 111 + 24.
    assert TAIL_PANES == 24
    assert false_alarm_episodes(alarms, [LOCAL, NATIONWIDE], W, start=0, end=1000) == [
        (("t", "R1"), 10, 12), (("t", "R1"), 14, 14), (("t", "R1"), 99, 99), (("t", "R1"), 150, 150),
        (("t", "R2"), 300, 300),
        (("u", "R1"), 104, 104),
    ]


def test_an_alarm_in_the_tail_of_a_surge_is_neither_a_false_alarm_nor_a_detection() -> None:
    grace = LOCAL.end + W - 1  # 111: the last window that detects LOCAL
    for p in (grace + 1, grace + TAIL_PANES):
        assert false_alarm_episodes({("t", "R1"): [p]}, [LOCAL], W, 0, 1000) == [], p
        assert detection_delay(LOCAL, {("t", "R1"): [p]}, W) is None, p
    late = grace + TAIL_PANES + 1
    assert false_alarm_episodes({("t", "R1"): [late]}, [LOCAL], W, 0, 1000) == [(("t", "R1"), late, late)]
    # An episode running out of the tail counts from its first pane past it.
    assert false_alarm_episodes({("t", "R1"): [late - 2, late - 1, late, late + 1]}, [LOCAL], W, 0, 1000) == [
        (("t", "R1"), late, late + 1)]
    # The tail follows a surge only: before its start an alarm is a false alarm.
    assert false_alarm_episodes({("t", "R1"): [LOCAL.start - 1]}, [LOCAL], W, 0, 1000) == [
        (("t", "R1"), LOCAL.start - 1, LOCAL.start - 1)]


def test_percentile_nearest_rank() -> None:
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 11)), 90) == 9
    assert percentile(list(range(1, 11)), 100) == 10
    assert percentile([7], 90) == 7


def test_evaluate_on_hand_made_alarms(small: SyntheticData) -> None:
    # An oracle alarming at each surge's second pane on its own key, plus two false alarms.
    alarms: dict[tuple[str, str], list[int]] = {}
    for s in small.surges:
        alarms.setdefault(s.key, []).append(s.start + 1)
    quiet = small.eval_start + 3  # the first test day, 00:45: before any surge (they start after 6 h)
    assert not any(s.start <= quiet + W for s in small.surges)
    alarms.setdefault(("topic00", "R000"), []).extend([quiet, quiet + 1])  # one episode
    alarms.setdefault(("topic01", NATIONAL), []).append(quiet)
    alarms[("topic01", "R001")] = [*alarms.get(("topic01", "R001"), []), small.eval_start - 5]  # training
    for v in alarms.values():
        v.sort()
    sc = evaluate(small, alarms, W)
    assert sc.recall == dict.fromkeys(SIZES, 1.0)
    assert sc.n_surges == {size: sum(s.size == size for s in small.surges) for size in SIZES}
    assert sc.delays == [2] * len(small.surges)
    assert sc.delay(50) == 2 and sc.delay(90) == 2
    assert len(sc.false_alarms) == 2
    key_days = (len(small.keys) + len(small.topics)) * 14
    assert sc.key_days == key_days
    assert sc.fa_per_1k == pytest.approx(2000 / key_days)
    missed = evaluate(small, {}, W)
    assert missed.recall == dict.fromkeys(SIZES, 0.0) and math.isnan(missed.delay(50)) and missed.fa_per_1k == 0


# --- the adapters ------------------------------------------------------------------------------------


class _Above:
    """A fake per-key detector: the score is the windowed count; records what it learned."""

    def __init__(self) -> None:
        self.learned: list[tuple[datetime, float]] = []

    def score_one(self, t: datetime, x: float) -> float:
        return x

    def learn_one(self, t: datetime, x: float) -> None:
        self.learned.append((t, x))


def test_per_key_adapter_scores_windowed_counts_from_the_test_period(small: SyntheticData) -> None:
    made: list[_Above] = []

    def make() -> _Above:
        made.append(_Above())
        return made[-1]

    run = PerKey("above 30", make, threshold=30.0).run(small)
    assert len(made) == len(small.keys) + len(small.topics)
    learned = made[0].learned
    assert len(learned) == small.n_panes - W + 1  # every full window, training included
    key = small.keys[0]
    assert learned[0] == (PANE_EPOCH + (small.first_pane + W) * small.slide, sum(small.counts[key][:W]))
    windows = {p: sum(small.count(key, q) for q in range(p - W + 1, p + 1))
               for p in range(small.eval_start, small.end_pane)}
    assert run.alarms[key] == [p for p, x in windows.items() if x >= 30.0]
    star = (small.topics[0], NATIONAL)
    assert run.alarms[star][:3] == [p for p in range(small.eval_start, small.end_pane)
                                    if sum(small.count(star, q) for q in range(p - W + 1, p + 1)) >= 30][:3]


def test_run_all_is_the_same_in_one_or_two_processes() -> None:
    data = generate(topics=2, regions=5, weeks=2, seed=3)
    adapters: list[Adapter] = [Ours(DetectionSettings()), PerKey("above 12", _Above, threshold=12.0)]
    one = run_all(adapters, data, jobs=1)
    two = run_all(adapters, data, jobs=2)
    assert [r.alarms for r in one] == [r.alarms for r in two]
    assert [r.name for r in one] == ["Forewarn TopicDetector", "above 12"]
    assert one[0].state_bytes is not None and one[0].state_bytes > 0 and one[1].state_bytes is None
    assert any(one[0].alarms.values())  # ours fires on some of the 5x surges at least
    assert all(key[0] in data.topics for key in one[0].alarms)
