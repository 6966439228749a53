"""The NAB scorer: hand-computed cases, then the published detectors' figures from their own rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.nab.scorer import (
    LOW_FN,
    LOW_FP,
    PROFILES,
    STANDARD,
    LabelledFile,
    corpus_score,
    file_score,
    label_file,
    label_timestamps,
    load_labels,
    load_results,
    n_windows,
    normalise,
    optimise,
    probation,
    published_thresholds,
    sigmoid,
)

NAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"

# One file of 100 rows (probation = 15 rows) with one window of 10 rows, [50, 59].
FILE = label_file("demo", n_rows=100, windows=[(50, 59)])
TOP = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # σ(−1)


def detections(*rows: int) -> list[float]:
    scores = [0.0] * 100
    for row in rows:
        scores[row] = 1.0
    return scores


def test_sigmoid_and_probation() -> None:
    assert sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert sigmoid(0.0) == 0.0
    assert sigmoid(3.0) == pytest.approx(2.0 / (1.0 + math.exp(15.0)) - 1.0)
    assert sigmoid(3.0001) == -1.0
    assert probation(100) == 15
    assert probation(4032) == 604
    assert probation(22695) == 750  # capped at 0.15 x 5000


def test_detection_at_the_window_start_earns_a_full_true_positive() -> None:
    assert file_score(FILE, detections(50), STANDARD, 0.5) == pytest.approx(1.0)
    assert normalise(1.0, 1, STANDARD) == 100.0
    assert normalise(1.0, 1, LOW_FN) == 100.0


def test_later_in_the_window_earns_less_and_only_the_earliest_detection_counts() -> None:
    last = sigmoid(-1 / 10) / TOP  # y = −(59 − 59 + 1) / 10
    assert file_score(FILE, detections(59), STANDARD, 0.5) == pytest.approx(last)
    middle = sigmoid(-5 / 10) / TOP  # row 55: y = −(59 − 55 + 1) / 10
    assert file_score(FILE, detections(55, 56, 59), STANDARD, 0.5) == pytest.approx(middle)
    assert 0 < last < middle < 1.0


def test_a_miss_costs_a_false_negative() -> None:
    assert file_score(FILE, detections(), STANDARD, 0.5) == -1.0
    assert file_score(FILE, detections(), LOW_FN, 0.5) == -2.0
    assert normalise(-1.0, 1, STANDARD) == 0.0  # the null detector
    assert normalise(-2.0, 1, LOW_FN) == 0.0


def test_detection_after_the_window_is_a_mild_false_positive() -> None:
    # Row 61 is 2 rows after the window's right edge: y = 2 / (10 − 1); the window itself is missed.
    u = 2.0 / (1.0 + math.exp(5.0 * 2 / 9)) - 1.0
    assert file_score(FILE, detections(61), STANDARD, 0.5) == pytest.approx(-1.0 + 0.11 * u)
    assert file_score(FILE, detections(61), LOW_FP, 0.5) == pytest.approx(-1.0 + 0.22 * u)
    # Far after the window (y > 3) the penalty is the full A_FP.
    assert file_score(FILE, detections(95), STANDARD, 0.5) == pytest.approx(-1.11)


def test_false_positive_before_any_window_and_probation() -> None:
    assert file_score(FILE, detections(20), STANDARD, 0.5) == pytest.approx(-1.11)
    assert file_score(FILE, detections(20, 21), LOW_FP, 0.5) == pytest.approx(-1.44)  # each row counts
    assert file_score(FILE, detections(5), STANDARD, 0.5) == -1.0  # in probation: ignored


def test_threshold_decides_what_is_a_detection() -> None:
    scores = detections(20)
    scores[50] = 0.7
    assert file_score(FILE, scores, STANDARD, 0.8) == pytest.approx(-1.11)
    assert file_score(FILE, scores, STANDARD, 0.7) == pytest.approx(0.89)


def test_optimise_sweeps_the_corpus_threshold() -> None:
    scores = [0.0] * 100
    scores[20], scores[50], scores[70] = 0.9, 0.7, 0.3
    corpus = [(FILE, scores)]
    # θ = 0.7 catches the window and the early FP; lower adds a FP far after the window (y = 11/9).
    threshold, raw = optimise(corpus, STANDARD)
    assert threshold == 0.7
    assert raw == pytest.approx(1.0 - 0.11)
    assert raw == pytest.approx(corpus_score(corpus, STANDARD, threshold))
    # No detection at all beats a detector that only cries wolf.
    assert optimise([(FILE, detections(20, 30))], STANDARD) == (math.inf, -1.0)


def test_timestamp_windows_map_to_rows() -> None:
    stamps = [f"2015-03-01 00:{m:02d}:00" for m in range(60)]
    labelled = label_timestamps("t", stamps, [["2015-03-01 00:40:00.000000", "2015-03-01 00:44:00.000000"]])
    assert labelled.windows == ((40, 44),)
    assert labelled.probation == 9


# --- the published detectors, from their own rows --------------------------------------------------

README = {  # data README: standard / reward-low-FP / reward-low-FN on these 11 files at the published thresholds
    "ARTime": (70.3, 58.2, 77.0),
    "numenta": (58.8, 50.1, 65.0),
    "contextOSE": (50.9, 47.7, 56.6),
    "earthgeckoSkyline": (43.1, 28.6, 49.2),
    "twitterADVec": (38.1, 25.7, 43.7),
    "windowedGaussian": (27.0, 9.4, 34.1),
    "random": (19.3, 5.3, 27.9),
}


@pytest.fixture(scope="module")
def labels() -> dict[str, LabelledFile]:
    if not (NAB / "labels" / "combined_windows.json").exists():
        pytest.skip("shared NAB data is not beside the checkout")
    return load_labels(NAB)


def test_corpus_has_the_documented_windows(labels: dict[str, LabelledFile]) -> None:
    assert len(labels) == 11
    assert sum(len(f.scored_windows) for f in labels.values()) == 31


@pytest.mark.parametrize("detector", sorted(README))
def test_published_scores_are_reproduced(labels: dict[str, LabelledFile], detector: str) -> None:
    corpus = load_results(NAB, detector, labels)
    thresholds = published_thresholds(NAB)[detector]
    got = [normalise(corpus_score(corpus, p, thresholds[p.name]), n_windows(corpus), p) for p in PROFILES]
    # The README rounds to 0.1: ours must round to the same figure.
    assert got == pytest.approx(README[detector], abs=0.05 + 1e-9)


def test_optimised_threshold_beats_the_published_one(labels: dict[str, LabelledFile]) -> None:
    corpus = load_results(NAB, "numenta", labels)
    published = published_thresholds(NAB)["numenta"]["standard"]
    _, best = optimise(corpus, STANDARD)
    assert best >= corpus_score(corpus, STANDARD, published)
