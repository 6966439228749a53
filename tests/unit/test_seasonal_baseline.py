"""How far a seasonal slot is believed over its parent depends on the cases behind it (`SeasonalBaseline`)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from forewarn.detectors.baseline import SeasonalBaseline

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
SLIDE = timedelta(minutes=15)


def _learn(base: SeasonalBaseline, weeks: int, level: float, monday_10h: float = 1.0,
           unlucky_friday_1h: float | None = None) -> None:
    """`weeks` of noiseless 15-minute counts at `level` (x3 by day), Monday 10:00-11:00 at `monday_10h` times the
    usual, and Friday 01:00-02:00 of the last week at `unlucky_friday_1h` per pane when given."""
    for i in range(weeks * 7 * 96):
        t = MONDAY + i * SLIDE
        count = level * (3.0 if 8 <= t.hour < 20 else 1.0)
        if t.weekday() == 0 and t.hour == 10:
            count *= monday_10h
        if unlucky_friday_1h is not None and i >= (weeks - 1) * 7 * 96 and t.weekday() == 4 and t.hour == 1:
            count = unlucky_friday_1h
        base.learn_one(t, count)


def test_a_busy_topics_monday_morning_is_learned_at_its_level() -> None:
    """50 cases a pane by day, Monday 10:00 at 1.3x: after three weeks its hour-of-week slot, backed by hundreds of
    cases, predicts within 3% of it; a flat prior of 2 panes keeps about a fifth of the parent and stays 5% under."""
    new, flat = SeasonalBaseline(), SeasonalBaseline(prior_weight=2.0, prior_cases={})
    for base in (new, flat):
        _learn(base, weeks=3, level=50 / 3, monday_10h=1.3)
    monday_10h = MONDAY + timedelta(weeks=3, hours=10)
    truth = 50.0 * 1.3
    assert new.predict_one(monday_10h) / truth > 0.97, new.predict_one(monday_10h)
    assert flat.predict_one(monday_10h) / truth < 0.96, flat.predict_one(monday_10h)  # what this change mends


def test_a_quiet_topics_unlucky_hour_leans_on_its_hour_of_day() -> None:
    """4 cases a pane at night; one Friday 01:00 with 1.75 a pane (a quiet hour's bad luck: 7 cases against 16):
    the next Friday 01:00 is expected at over 3 (the weekday hour learned that Friday too), where a flat prior of
    half a pane believes the one bad hour and expects under 2.7."""
    new, loose = SeasonalBaseline(), SeasonalBaseline(prior_weight=0.5, prior_cases={})
    for base in (new, loose):
        _learn(base, weeks=2, level=4.0, unlucky_friday_1h=1.75)
    friday_1h = MONDAY + timedelta(weeks=2, days=4, hours=1)
    assert new.predict_one(friday_1h) > 3.0, new.predict_one(friday_1h)
    assert loose.predict_one(friday_1h) < 2.7, loose.predict_one(friday_1h)


def test_prior_cases_names_only_known_levels() -> None:
    with pytest.raises(ValueError, match="month"):
        SeasonalBaseline(prior_cases={"month": 5.0})


def test_a_baseline_snapshotted_before_prior_cases_predicts_as_it_did() -> None:
    """Recovery state from before this change has a flat prior and no cases: it restores with that shrinkage."""
    old = SeasonalBaseline(prior_weight=2.0, prior_cases={})
    _learn(old, weeks=1, level=4.0, unlucky_friday_1h=1.75)
    state = dict(old.__dict__)
    del state["prior_cases"], state["_level_prior_cases"], state["_case_scale"]
    before = SeasonalBaseline.__new__(SeasonalBaseline)
    before.__dict__.update(state)  # as the earlier version pickled it
    restored = pickle.loads(pickle.dumps(before))
    t = MONDAY + timedelta(weeks=1, days=4, hours=1)
    assert restored.predict_one(t) == old.predict_one(t)
    assert restored.prior_cases == {level: 0.0 for level in old.levels}


@pytest.mark.parametrize("level", [0.5, 4.0, 50.0])
@pytest.mark.parametrize("factor", [0.2, 3.0])
def test_a_rescale_multiplies_every_expectation_by_its_factor(level: float, factor: float) -> None:
    """An adopted level shift (`rescale`) moves each slot's expectation by exactly that factor: the prior cases
    scale with the level, or a quiet hour's slot would weigh more against its parent after a rise."""
    base = SeasonalBaseline()
    _learn(base, weeks=2, level=level, monday_10h=1.3, unlucky_friday_1h=level / 3)
    times = [MONDAY + timedelta(weeks=2, hours=h) for h in range(0, 7 * 24, 5)]
    before = [base.predict_one(t) for t in times]
    base.rescale(factor)
    assert [base.predict_one(t) for t in times] == pytest.approx([factor * p for p in before], rel=1e-12)


@pytest.mark.parametrize("bad", [{"prior_weight": -1.0}, {"prior_cases": {"week": -5.0}}])
def test_a_negative_prior_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        SeasonalBaseline(**bad)  # type: ignore[arg-type]
