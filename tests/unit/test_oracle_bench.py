"""The oracle reference of the synthetic benchmark (bench/oracle.py) and its rows, gap and JSON."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from bench.bench_synthetic import TAIL_PANES, Scores, evaluate, main
from bench.gap import DELAY_RATIO, RECALL_SLACK, gap, oracle_rows, report
from bench.oracle import Oracle, episodes, excused_panes, national_size, nb_llr, null_means, page_cusum
from bench.synthetic import SIZES, SyntheticData, generate, negbin
from forewarn.records import NATIONAL

W = 4  # window in panes (1 h of 15-minute panes)


@pytest.fixture(scope="module")
def small() -> SyntheticData:
    return generate(topics=2, regions=6, weeks=3, seed=11)


@pytest.fixture(scope="module")
def oracle(small: SyntheticData) -> Oracle:
    return Oracle.build(small, W)


def _nb_logpmf(x: int, mu: float, size: float) -> float:
    return (math.lgamma(x + size) - math.lgamma(size) - math.lgamma(x + 1)
            + size * math.log(size / (size + mu)) + x * math.log(mu / (size + mu)))


# --- the statistic -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "mu", "size", "k"), [(0, 0.05, 10.0, 5.0), (3, 0.4, 30.0, 2.0), (41, 12.0, 20.0, 3.0)])
def test_nb_llr_is_the_log_ratio_of_the_two_nb_probabilities(x: int, mu: float, size: float, k: float) -> None:
    assert nb_llr(x, mu, size, k) == pytest.approx(_nb_logpmf(x, k * mu, size) - _nb_logpmf(x, mu, size), abs=1e-9)


def test_national_size_matches_the_variance_of_a_sum_of_negbins() -> None:
    means, sizes = [0.3, 2.0, 8.0], [10.0, 25.0, 40.0]
    size = national_size(means, sizes)
    total = sum(means)
    assert total + total**2 / size == pytest.approx(sum(m + m * m / s for m, s in zip(means, sizes, strict=True)))
    rng = random.Random(4)
    sums = [sum(negbin(rng, m, s) for m, s in zip(means, sizes, strict=True)) for _ in range(20_000)]
    mean = sum(sums) / len(sums)
    var = sum((v - mean) ** 2 for v in sums) / (len(sums) - 1)
    assert var == pytest.approx(total + total**2 / size, rel=0.06)


def test_cusum_fires_on_a_3x_step_on_a_dense_key_and_not_on_a_null_key() -> None:
    rng = random.Random(8)
    mu, size, h = 10.0, 20.0, 12.0
    null = [negbin(rng, mu, size) for _ in range(3000)]
    assert page_cusum(null, [mu] * len(null), size, h) == []
    before = [negbin(rng, mu, size) for _ in range(400)]
    step = [negbin(rng, 3 * mu, size) for _ in range(8)]
    alarms = page_cusum(before + step, [mu] * 408, size, h)
    assert alarms and 400 <= alarms[0] <= 402  # within 3 panes of the step
    assert all(a >= 400 for a in alarms)
    # The same step on a key whose mean is already 3x higher is no surge: nothing to find.
    assert page_cusum(step, [3 * mu] * 8, size, h) == []


def test_null_means_leave_surges_out_and_national_sums_the_regions(small: SyntheticData) -> None:
    keys, means, sizes = null_means(small)
    assert keys == small.keys + [(t, NATIONAL) for t in small.topics]
    s = next(s for s in small.surges if s.region != NATIONAL)
    i, p = keys.index(s.key), s.start + 1
    assert means[i, p - small.eval_start] == pytest.approx(small.expected(s.key, p) / s.multiplier(p))
    star = keys.index((small.topics[0], NATIONAL))
    parts = [keys.index((small.topics[0], r)) for r in small.regions]
    assert means[star, 7] == pytest.approx(means[parts, 7].sum())
    assert sizes[star, 7] == pytest.approx(national_size(list(means[parts, 7]), list(sizes[parts, 7])))


def test_the_vectorised_oracle_is_the_reference_cusum_on_every_key(small: SyntheticData, oracle: Oracle) -> None:
    keys, means, sizes = null_means(small)
    lo = small.eval_start - small.first_pane
    for h in (3.0, 9.0):
        alarms = oracle.alarms(h)
        for i, key in enumerate(keys):
            want = page_cusum(small.series(key)[lo:], list(means[i]), list(sizes[i]), h)
            assert alarms.get(key, []) == [small.eval_start + a for a in want], (h, key)


# --- false alarms and threshold matching ---------------------------------------------------------------


def test_fast_false_alarm_count_is_evaluates(small: SyntheticData, oracle: Oracle) -> None:
    for h in (0.5, 2.0, 5.0, 10.0):
        assert oracle.false_alarms(h) == len(evaluate(small, oracle.alarms(h), W).false_alarms), h
    assert oracle.key_days == evaluate(small, {}, W).key_days
    untailed = Oracle.build(small, W, tail=0)  # the same with another tail on both sides
    for h in (2.0, 5.0):
        assert untailed.false_alarms(h) == len(evaluate(small, untailed.alarms(h), W, tail=0).false_alarms), h
        assert untailed.false_alarms(h) >= oracle.false_alarms(h)


def test_excused_panes_are_each_surges_detection_span_and_its_tail(small: SyntheticData) -> None:
    s = next(s for s in small.surges if s.region != NATIONAL and s.end + W + TAIL_PANES < small.end_pane)
    row = excused_panes(small, [s.key], W)[0]
    first, last = s.start - small.eval_start, s.end + W - 1 + TAIL_PANES - small.eval_start
    assert row[first:last + 1].all()
    assert not row[first - 1] and not row[last + 1]  # surges on one key keep 12 h apart
    assert TAIL_PANES == 24


def test_episodes_break_at_excused_panes() -> None:
    alarming = np.array([[1, 0], [1, 1], [1, 1], [0, 1]], dtype=bool)
    excused = np.array([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=bool)
    assert episodes(alarming, excused) == 3  # key 0: panes 0 and 2 (1 excused); key 1: panes 1-3


def test_false_alarms_fall_as_the_threshold_rises(oracle: Oracle) -> None:
    counts = [oracle.false_alarms(h) for h in (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 100 * max(1, counts[-1])


@pytest.mark.parametrize("target", [0, 1, 3, 10, 50, 300])
def test_matching_lands_at_or_below_the_target_and_just_below_h_it_is_above(oracle: Oracle, target: int) -> None:
    h = oracle.match(target)
    assert oracle.false_alarms(h) <= target
    assert oracle.false_alarms(h * (1 - 2e-3)) > target  # the smallest such h, to the tolerance
    assert oracle.max_episodes(1000.0 * target / oracle.key_days) == target
    assert oracle.match_rate(1000.0 * (target + 0.5) / oracle.key_days) == h


def test_a_target_above_what_the_oracle_can_produce_gives_its_peak(oracle: Oracle) -> None:
    h = oracle.match(10**9)
    assert h > 0 and oracle.false_alarms(h) == max(oracle.false_alarms(g) for g in (0.125, 0.25, 0.5, 1.0, 2.0))


# --- what the oracle finds -----------------------------------------------------------------------------


def _one_pane_oracle(oracle: Oracle, max_episodes: int) -> tuple[float, np.ndarray]:
    """A Shewhart chart with the oracle's knowledge: alarm when one pane's LLR alone reaches c."""
    best = oracle.llr.max(axis=1)
    lo, hi = 0.0, float(best.max()) + 1.0
    while hi - lo > 1e-4 * hi:
        mid = (lo + hi) / 2
        if episodes(best >= mid, oracle.excused) <= max_episodes:
            hi = mid
        else:
            lo = mid
    return hi, best >= hi


def _alarms_of(small: SyntheticData, oracle: Oracle, hits: np.ndarray) -> dict[tuple[str, str], list[int]]:
    return {key: [small.eval_start + int(p) for p in np.flatnonzero(hits[:, j])]
            for j, key in enumerate(oracle.keys) if hits[:, j].any()}


@pytest.mark.parametrize("max_episodes", [1, 10])
def test_accumulating_evidence_beats_one_pane_at_the_same_false_alarms(small: SyntheticData, oracle: Oracle,
                                                                        max_episodes: int) -> None:
    cusum = evaluate(small, oracle.alarms(oracle.match(max_episodes)), W)
    _, hits = _one_pane_oracle(oracle, max_episodes)
    shewhart = evaluate(small, _alarms_of(small, oracle, hits), W)
    assert len(shewhart.false_alarms) <= max_episodes and len(cusum.false_alarms) <= max_episodes
    assert cusum.recall[2.0] > shewhart.recall[2.0]
    assert cusum.recall_all > shewhart.recall_all
    assert cusum.recall[5.0] >= shewhart.recall[5.0]


def test_oracle_at_one_false_alarm_finds_the_5x_surges_that_show(small: SyntheticData, oracle: Oracle) -> None:
    """Every 5x surge whose counts rise at least 3x over the null mean is found, within 4 slides on dense keys."""
    sc = evaluate(small, oracle.alarms(oracle.match(1)), W)
    keys, means, _ = null_means(small)
    shown = 0
    for s, delay in sc.per_surge:
        if s.size != 5.0:
            continue
        i = keys.index(s.key)
        null = means[i, s.start - small.eval_start:s.end - small.eval_start].sum()
        observed = sum(small.count(s.key, p) for p in range(s.start, s.end))
        if observed >= 3 * null and observed >= 5:
            shown += 1
            assert delay is not None, s
            if null / (s.end - s.start) >= 3 or s.region == NATIONAL:
                assert delay <= 4 or s.shape == "ramp", (s, delay)
    assert shown >= 6


# --- the rows, the gap and the JSON -----------------------------------------------------------------


def test_oracle_rows_match_each_detectors_false_alarms(small: SyntheticData, oracle: Oracle) -> None:
    none = evaluate(small, {}, W)
    noisy = evaluate(small, oracle.alarms(1.5), W)
    rows = oracle_rows(small, oracle, [("quiet", none, 0.0), ("noisy", noisy, 0.0)], W)
    assert [r.name for r in rows] == ["oracle @ quiet's FA rate", "oracle @ noisy's FA rate"]
    assert rows[0].target_episodes == 0 and rows[0].scores.false_alarms == []
    assert len(rows[1].scores.false_alarms) <= len(noisy.false_alarms)
    assert rows[1].threshold == pytest.approx(1.5, rel=0.05)  # the oracle matched to itself finds itself


def _delayed(small: SyntheticData, delay: int, skip: int = 0) -> Scores:
    """Alarms `delay` slides into every surge's own key but the first `skip` surges."""
    alarms: dict[tuple[str, str], list[int]] = {}
    for s in small.surges[skip:]:
        alarms.setdefault(s.key, []).append(s.start + delay - 1)
    return evaluate(small, {k: sorted(v) for k, v in alarms.items()}, W)


def test_gap_reads_recall_delay_and_false_alarms_against_the_goals(small: SyntheticData) -> None:
    oracle = _delayed(small, 2)
    ours = _delayed(small, 3, skip=2)
    rows = {r.metric: r for r in gap(small, ours, oracle)}
    n = len(small.surges)
    overall = rows["recall, all surges"]
    assert (overall.n, overall.oracle) == (n, 1.0)
    assert overall.ours == pytest.approx((n - 2) / n)
    assert overall.met is ((2 / n) <= RECALL_SLACK)
    assert overall.shortfall == pytest.approx(2 / n - RECALL_SLACK)
    assert sum(rows[f"recall, local {b}"].n for b in ("sparse <0.5/pane", "medium 0.5-3", "dense >=3/pane")) \
        == rows["recall, local"].n == n - rows["recall, national"].n
    delay = rows["median delay, surges both found (slides)"]
    assert (delay.n, delay.ours, delay.oracle, delay.gap) == (n - 2, 3.0, 2.0, 1.5)
    assert delay.met is False and delay.status == f"missed by {1.5 - DELAY_RATIO:.3f}"
    fa = rows["FA / 1k key-days"]
    assert fa.ours == 0.0 and fa.met is True and fa.status == "met"
    same = {r.metric: r for r in gap(small, oracle, oracle)}
    assert all(r.met for r in same.values() if r.n)


def test_report_is_strict_json(small: SyntheticData, oracle: Oracle) -> None:
    ours = _delayed(small, 3)
    rows = [("ours", ours, 0.0)]
    oracles = oracle_rows(small, oracle, rows, W)
    figures = report(small, rows, oracles, gap(small, ours, oracles[0].scores), "ours")
    again = json.loads(json.dumps(figures, allow_nan=False))
    assert again["gap"]["oracle"] == "oracle @ ours's FA rate"
    assert set(again["detectors"]) == {"ours", "oracle @ ours's FA rate"}
    assert again["detectors"]["ours"]["recall"] == {f"{s:g}x": 1.0 for s in SIZES}
    assert again["detectors"]["oracle @ ours's FA rate"]["fa_episodes"] == 0


def test_the_cli_writes_the_gap_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gap.json"
    main(["--topics", "2", "--regions", "4", "--weeks", "2", "--seed", "3", "-j", "1", "--no-breakdown",
          "--json", str(out)])
    printed = capsys.readouterr().out
    assert "oracle @ Forewarn TopicDetector's FA rate" in printed and "gap: Forewarn TopicDetector" in printed
    figures = json.loads(out.read_text())
    names = list(figures["detectors"])
    assert "Forewarn TopicDetector" in names and figures["gap"]["ours"] == "Forewarn TopicDetector"
    for name, row in figures["detectors"].items():
        if name.startswith("oracle @ "):
            assert row["fa_episodes"] <= figures["detectors"][row["matched_to"]]["fa_episodes"]
    assert {r["figure"] for r in figures["gap"]["rows"]} >= {"recall, all surges", "recall, national",
                                                             "FA / 1k key-days"}
