"""Detection quality floors: Forewarn's default detector on a seeded synthetic suite (quality, not timing).

Runs `TopicDetector` with `config/default.yaml`'s detection settings, as `python -m
bench.bench_synthetic` does, over `bench/synthetic.py`'s streams (16 topics x 30 regions,
5 weeks, seed 2: not the bench's default seed 0 nor 1, so the floors are not tuned on the
figures the bench prints) and checks recall (overall, per surge size, national) and false
alarms per 1,000 key-days against floors with a margin, scored as the bench scores them
(`bench_synthetic.evaluate`). The run is deterministic: the same detector gives the same
figures, so a floor fails only when the detector's quality changes by more than the margin.

Each floor is the figure measured on 2026-12-01 with the default detector, minus
0.05 for recall; the false-alarm ceiling is 1.5 x measured (well under the issue's goal of 1). A change that makes
the detector better should raise them (rerun the figures: `_figures` in a test shows them
in the assertion messages).

Beside the floors, the oracle of `bench/oracle.py` (known-mean NB CUSUM, threshold matched to
Forewarn's false alarms here) is computed and Forewarn's overall recall may trail it by at
most the measured gap + 0.02 (`ORACLE_SLACK`): that documents the gap and catches it widening.
The issue's goal is within 0.05 of the oracle; `bench/gap.py` prints it per density class and scope.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.bench_synthetic import Ours, Scores, evaluate
from bench.gap import OracleRow, gap, oracle_rows
from bench.oracle import Oracle
from bench.synthetic import SIZES, SyntheticData, generate
from forewarn.records import NATIONAL
from forewarn.settings import BUNDLED_CONFIG, load_settings

TOPICS, REGIONS, WEEKS, SEED = 16, 30, 5, 2
"""The suite: 1,088 surges (363 at 2x, 362 at 3x, 363 at 5x; 128 national), 496 keys x 28 test days =
13,888 key-days. About 30 s of detector time on one core."""

# Measured 2026-12-01 on the suite with the default detector of this change (1-, 2- and 4-hour windows, clustering
# and regional dispersion learned, level trials judged by the newest pane, weekly slots shrunk by expected cases,
# alpha 2.5e-5). Before it (a flat prior of 2 panes, alpha 5e-5): 0.663 / 0.375 / 0.743 / 0.871 / national 0.953 /
# 6 FA; the detector of be9c303 (one 1-hour window, alpha 3e-5): 0.603 / 0.333 / 0.663 / 0.813 / 0.953 / 6 FA.
RECALL_ALL_FLOOR = 0.626  # measured 735/1088 = 0.676
RECALL_FLOORS = {
    2.0: 0.361,  # measured 149/363 = 0.411
    3.0: 0.696,  # measured 270/362 = 0.746
    5.0: 0.821,  # measured 316/363 = 0.871
}
RECALL_NATIONAL_FLOOR = 0.942  # measured 127/128 = 0.992
FA_PER_1K_CEILING = 0.65  # measured 6 episodes / 13,888 key-days = 0.43 per 1,000; 1.5 x that (9 episodes)
ORACLE_SLACK = 0.041  # measured: oracle @ Forewarn's rate (6 FA episodes, h = 10.98) 758/1088 = 0.697, gap 0.021


@dataclass
class Quality:
    data: SyntheticData
    ours: Scores
    oracle: OracleRow


@pytest.fixture(scope="module")
def quality() -> Quality:
    settings = load_settings(BUNDLED_CONFIG / "default.yaml").detection
    assert not settings.window % settings.slide
    window = settings.window // settings.slide
    data = generate(topics=TOPICS, regions=REGIONS, weeks=WEEKS, seed=SEED, slide=settings.slide)
    ours = evaluate(data, Ours(settings).run(data).alarms, window)
    [oracle] = oracle_rows(data, Oracle.build(data, window), [("Forewarn", ours, 0.0)], window)
    return Quality(data, ours, oracle)


def _recall(sc: Scores, national: bool) -> float:
    found = [d is not None for s, d in sc.per_surge if (s.region == NATIONAL) == national]
    return sum(found) / len(found)


def _figures(q: Quality) -> str:
    sc = q.ours
    return (f"recall all {sc.recall_all:.4f}, " + ", ".join(f"{s:g}x {sc.recall[s]:.4f}" for s in SIZES)
            + f", national {_recall(sc, True):.4f}; {len(sc.false_alarms)} FA episodes = {sc.fa_per_1k:.3f} "
            f"per 1k key-days; oracle @ that rate {q.oracle.scores.recall_all:.4f} (h = {q.oracle.threshold:.2f})")


def test_the_suite_is_the_one_the_floors_were_measured_on(quality: Quality) -> None:
    sc = quality.ours
    assert sc.n_surges == {2.0: 363, 3.0: 362, 5.0: 363}
    assert sum(s.region == NATIONAL for s in quality.data.surges) == 128
    assert sc.key_days == 13_888


def test_overall_recall_floor(quality: Quality) -> None:
    assert quality.ours.recall_all >= RECALL_ALL_FLOOR, _figures(quality)


@pytest.mark.parametrize("size", SIZES)
def test_recall_floor_per_size(quality: Quality, size: float) -> None:
    assert quality.ours.recall[size] >= RECALL_FLOORS[size], _figures(quality)


def test_national_recall_floor(quality: Quality) -> None:
    assert _recall(quality.ours, national=True) >= RECALL_NATIONAL_FLOOR, _figures(quality)


def test_false_alarm_ceiling(quality: Quality) -> None:
    assert quality.ours.fa_per_1k <= FA_PER_1K_CEILING, _figures(quality)


def test_recall_against_the_oracle_at_forewarns_false_alarm_rate(quality: Quality) -> None:
    oracle, ours = quality.oracle, quality.ours
    # The oracle row is there and matched: a real threshold, no more false alarms than Forewarn.
    assert oracle.threshold > 0 and oracle.target_episodes == len(ours.false_alarms)
    assert len(oracle.scores.false_alarms) <= len(ours.false_alarms)
    assert oracle.scores.key_days == ours.key_days
    assert ours.recall_all >= oracle.scores.recall_all - ORACLE_SLACK, _figures(quality)


def test_every_density_class_and_scope_is_within_the_goal_of_the_oracle(quality: Quality) -> None:
    """Issue 13's goal per row of `bench/gap.py` (recall within 0.05 of the oracle in each density class and scope,
    median delay on shared finds at most 1.25x its own, at most 1 false alarm per 1,000 key-days). Measured: worst
    recall gap -0.029 (medium), delay x1.20, 0.43 false alarms."""
    rows = gap(quality.data, quality.ours, quality.oracle.scores)
    missed = [f"{r.metric}: {r.ours:.3f} against {r.oracle:.3f} ({r.status})" for r in rows if r.met is False]
    assert {r.kind for r in rows} == {"recall", "delay", "fa"} and len(rows) == 8, [r.metric for r in rows]
    assert all(r.met is not None for r in rows), [r.metric for r in rows if r.met is None]  # each row judged
    assert not missed, missed
