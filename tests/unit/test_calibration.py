"""A false-alarm rate that is a setting (issue 13, goal 2): alpha calibrated from the detector's own null.

The null draws must vary as the detector's scorers say they do, at every window length; and a detector
given a target must land near it on streams it has not seen, whatever alpha it was configured with.
"""

from __future__ import annotations

import pickle
from datetime import timedelta

import numpy as np
import pytest

from bench.bench_synthetic import evaluate
from bench.synthetic import generate
from forewarn.detectors.calibration import FIRST_DAYS, GRID, NullCalibrator, NullKey, adjusted_tails, draw
from forewarn.detectors.scales import best_scale
from forewarn.detectors.scoring import NegativeBinomialScorer, SpikeRule
from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.flows.steps import DetectorFactory
from forewarn.records import PaneCases
from forewarn.settings import DetectionSettings

FACTOR = 1.5
"""Issue 13's goal: the measured rate within this factor of the target."""


def _scorer(size: float, clustering: float) -> NegativeBinomialScorer:
    scorer = NegativeBinomialScorer(size=size, learn_dispersion=False)
    scorer.clustering = clustering
    return scorer


@pytest.mark.parametrize("sizes", [(8.0, 12.0, 16.0), (20.0, 20.0, 20.0), (30.0, 60.0, 150.0)])
def test_null_draws_vary_at_each_window_length_as_its_scorer_says(sizes: tuple[float, float, float]) -> None:
    scorers = {length: _scorer(size, 2.0) for length, size in zip((4, 8, 16), sizes, strict=True)}
    expected = np.full(64, 2.5)
    counts = draw(np.tile(expected, (40_000, 1)), scorers, np.random.default_rng(3))
    for length, scorer in scorers.items():
        window = counts[:, 40 - length:40].sum(axis=1)
        mean = 2.5 * length
        assert window.mean() == pytest.approx(mean, rel=0.02)
        # variance over mean as the scorer has it: clustering + mean / size
        assert window.var() / window.mean() == pytest.approx(scorer.dispersion(mean), rel=0.08), length


def test_tails_are_judged_by_the_rule_of_the_live_detector() -> None:
    scorers = {4: _scorer(1e9, 1.0), 8: _scorer(1e9, 1.0)}
    rule = SpikeRule(alpha=1e-4, min_count=8, min_ratio=1.5)
    expected = np.full(12, 1.0)
    quiet = np.ones((1, 12), dtype=np.int64)
    burst = quiet.copy()
    burst[0, 9:12] = [6, 6, 6]  # 19 cases in the newest hour against 4
    ended = quiet.copy()
    ended[0, 4:8] = [4, 4, 4, 4]  # the excess has left the newest hour: the two-hour window alone holds it
    tails = adjusted_tails(np.concatenate([quiet, burst, ended]), expected, scorers, rule, main=4, min_expected=0.05)
    assert tails.shape == (3, 5)  # one column per close once the two-hour window is full
    assert (tails[0] == 1.0).all()
    assert tails[1, -1] < 1e-4 and tails[1, 0] == 1.0
    assert (tails[2, -1:] == 1.0).all(), "a window whose newest hour does not hold the ratio must not fire"


def test_tails_match_the_live_detectors_judgement_close_by_close() -> None:
    rng = np.random.default_rng(11)
    rule = SpikeRule(alpha=1e-4, min_count=8, min_ratio=1.5)
    scorers = {4: _scorer(20.0, 1.5), 8: _scorer(15.0, 1.5), 16: _scorer(10.0, 1.5)}
    compared = 0
    for _ in range(60):
        expected = rng.choice([0.01, 0.3, 1.0, 4.0]) * rng.uniform(0.2, 2.0, 40)
        counts = rng.poisson(expected * rng.choice([1, 2, 4]))
        tails = adjusted_tails(counts[None, :], expected[None, :], scorers, rule, main=4, min_expected=0.05)[0]
        for column, end in enumerate(range(16, 41)):
            ring, means = counts[end - 16:end][::-1].tolist(), expected[end - 16:end][::-1].tolist()  # newest first
            current = sum(ring[:4]) >= rule.min_ratio * max(sum(means[:4]), 0.05)  # TopicDetector._current
            choice = best_scale(ring, means, scorers, 0.05, rule.large_enough if current else lambda o, e: False)
            assert tails[column] == pytest.approx(choice.p_value, rel=1e-9), (end, ring, means)
            compared += choice.p_value < 1.0
    assert compared > 100, "the draws must hold windows large enough to be judged"


def test_the_calibrated_alpha_gives_the_target_on_fresh_draws() -> None:
    scorers = {4: _scorer(30.0, 1.0), 16: _scorer(30.0, 1.0)}
    keys = [NullKey(np.full(96, mu), scorers) for mu in (0.3, 1.0, 3.0, 10.0)]
    check = NullCalibrator(target=1.0, draws=4000)  # other draws, five times as many (its rates hold for any target)
    check.observe(keys, SpikeRule(), main=4, min_expected=0.05, rng=np.random.default_rng(6))
    alphas = []
    for target in (2.0, 10.0, 50.0):
        calibrator = NullCalibrator(target=target, draws=800)
        calibrator.observe(keys, SpikeRule(), main=4, min_expected=0.05, rng=np.random.default_rng(5))
        alphas.append(calibrator.alpha())
        measured = float(np.interp(np.log(alphas[-1]), np.log(GRID), check.rate()))
        assert target / FACTOR <= measured <= target * FACTOR, (target, alphas[-1], measured)
    assert alphas[0] < alphas[1] < alphas[2]


def test_a_key_too_sparse_to_fire_adds_key_days_and_no_draws() -> None:
    scorers = {4: _scorer(30.0, 1.0), 16: _scorer(30.0, 1.0)}
    calibrator = NullCalibrator(target=1.0, draws=10)
    calibrator.observe([NullKey(np.full(96, 1e-4), scorers)], SpikeRule(), main=4, min_expected=0.05,
                       rng=np.random.default_rng(1))
    assert calibrator.key_days == 10 * FIRST_DAYS
    assert not calibrator.episodes.any()
    assert calibrator.alpha() == calibrator.bounds[1]


def _null_rate(target: float, alpha: float) -> tuple[float, float]:
    """Alarm episodes per 1,000 key-days of a detector with `target` on surge-free streams; and its final alpha."""
    data = generate(topics=4, regions=30, weeks=4, seed=41, national_per_topic=0, local_per_region=0)
    factory = DetectorFactory(DetectionSettings(alpha=alpha, false_alarm_target=target))
    alarms: dict[tuple[str, str], list[int]] = {}
    detectors = []
    for topic in data.topics:
        det = factory(topic)
        for index, cases in data.panes(topic):
            for verdict in det.process(index, cases):
                for spike in verdict.spikes:
                    alarms.setdefault((topic, spike.region), []).append(pane_index(spike.window_end, data.slide) - 1)
        detectors.append(det)
    scores = evaluate(data, alarms, timedelta(hours=1) // data.slide)
    return scores.fa_per_1k, detectors[0]._rule.alpha


def test_a_target_holds_on_streams_the_detector_has_not_seen_whatever_alpha_it_started_from() -> None:
    # a high target, so that the streams hold enough false alarms (about 40) to tell 1.5x apart from chance
    target, start = 15.0, 1e-6
    measured, alpha = _null_rate(target, start)
    assert target / FACTOR <= measured <= target * FACTOR, (measured, alpha)
    assert alpha > 100 * start, "the alpha it runs with is the calibrated one, not the one it started from"


def test_a_calibrating_detector_snapshots_and_one_from_before_restores_without() -> None:
    det = TopicDetector("t", warmup=timedelta(hours=6), scales=(timedelta(hours=2),), false_alarm_target=1.0)
    for index in range(200):
        det.process(index, {"R1": PaneCases(3), "R2": PaneCases(1)})
    assert det._calibrator is not None and det._calibrator.key_days > 0
    restored = pickle.loads(pickle.dumps(det))
    assert restored._rule == det._rule and restored._calibrator.key_days == det._calibrator.key_days
    old = TopicDetector("t", warmup=timedelta(hours=6), rule=SpikeRule(alpha=3e-5))
    state = dict(old.__dict__)
    del state["_calibrator"], state["false_alarm_target"]
    older = TopicDetector.__new__(TopicDetector)
    older.__setstate__(state)
    for index in range(200):  # past the warm-up: it scores, with the alpha it was configured with
        older.process(index, {"R1": PaneCases(3), "R2": PaneCases(1)})
    assert older._calibrator is None and older.false_alarm_target is None and older._rule.alpha == 3e-5
    assert older._national.n_learned * older.slide >= older.warmup
