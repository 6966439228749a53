"""Folding a backtest's spikes into alarms: when each was raised, and where its windows began."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from forewarn.reports.backtest_report import fold_alarms

NOON = datetime(2015, 1, 8, 12, tzinfo=UTC)
SLIDE = timedelta(minutes=15)


def _spike(end: datetime, length: timedelta, score: float, region: str = "*") -> dict[str, Any]:
    return {"key": {"topic": "water", "region": region}, "window_start": (end - length).isoformat(),
            "window_end": end.isoformat(), "observed": 6, "expected": 0.6, "score": score}


def test_a_day_windows_alarm_is_raised_at_its_first_windows_end_not_where_that_window_began() -> None:
    spikes = [_spike(NOON, timedelta(days=1), 5.0), _spike(NOON + SLIDE, timedelta(hours=1), 7.0),
              _spike(NOON + 3 * SLIDE, timedelta(days=1), 6.0)]  # a slide missing: a second alarm
    first, second = fold_alarms(spikes, SLIDE.total_seconds())
    assert (first.start, first.raised, first.end, first.windows) == (NOON - timedelta(days=1), NOON, NOON + SLIDE, 2)
    assert first.peak_score == 7.0
    assert (second.raised, second.end) == (NOON + 3 * SLIDE, NOON + 3 * SLIDE)


def test_keys_fold_apart() -> None:
    spikes = [_spike(NOON, timedelta(hours=1), 5.0), _spike(NOON, timedelta(hours=1), 5.0, region="Dorchester")]
    assert sorted(a.region for a in fold_alarms(spikes, SLIDE.total_seconds())) == ["*", "Dorchester"]
