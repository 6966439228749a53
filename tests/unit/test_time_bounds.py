"""Time bounds: which record times are accepted, decided per record with the wall clock injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from forewarn.detectors.time_bounds import StreamGate, TimeBounds
from forewarn.settings import ConfigError, Settings, load_settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 16, tzinfo=UTC)
BOUNDS = TimeBounds(max_ahead=timedelta(minutes=15), max_age=timedelta(days=7),
                    max_stream_ahead=timedelta(hours=1), jump_after=3)


def _live(ts: datetime, now: datetime = NOW) -> str | None:
    return BOUNDS.check(ts, now, live=True)


def _offer_all(gate: StreamGate[str], items: list[tuple[datetime, str]]) -> tuple[list[str], list[str]]:
    accepted: list[str] = []
    refused: list[str] = []
    for ts, name in items:
        now_accepted, now_refused = gate.offer(ts, name)
        accepted += now_accepted
        refused += [item for item, _ in now_refused]
    return accepted, refused


def test_a_live_record_ahead_of_the_wall_clock_by_more_than_max_ahead_is_refused() -> None:
    assert _live(NOW + timedelta(minutes=14)) is None
    reason = _live(NOW + timedelta(minutes=16))
    assert reason is not None and "ahead of the wall clock" in reason and "max_ahead" in reason


def test_the_wall_clock_is_the_one_handed_in() -> None:
    later = NOW + timedelta(days=1)
    assert _live(later, now=NOW) is not None
    assert _live(later, now=later) is None


def test_a_live_record_older_than_max_age_is_refused() -> None:
    assert _live(NOW - timedelta(days=6)) is None
    reason = _live(NOW - timedelta(days=8))
    assert reason is not None and "max_age" in reason


def test_a_replay_never_reads_the_wall_clock() -> None:
    """Old data replays the same on any machine: the stream's own progress bounds it instead."""
    assert BOUNDS.check(NOW - timedelta(days=400), NOW, live=False) is None
    assert BOUNDS.check(NOW + timedelta(days=400), NOW, live=False) is None


@pytest.mark.parametrize("ts", [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)])
@pytest.mark.parametrize("live", [True, False])
def test_dates_at_the_ends_of_the_calendar_are_refused_however_lax_the_bounds(ts: datetime, live: bool) -> None:
    lax = TimeBounds(max_ahead=timedelta(days=999_999), max_age=None, not_before=datetime(1, 1, 1, tzinfo=UTC))
    assert lax.check(ts, NOW, live=live) is not None


def test_a_reset_clock_is_refused() -> None:
    reason = BOUNDS.check(datetime(1970, 1, 1, tzinfo=UTC), NOW, live=False)
    assert reason is not None and "not_before" in reason


def test_a_replay_refuses_an_outlier_ahead_of_the_stream_and_keeps_its_clock() -> None:
    gate: StreamGate[str] = BOUNDS.gate()
    normal = [(T0 + timedelta(minutes=m), f"n{m}") for m in range(0, 60, 5)]
    assert _offer_all(gate, normal) == ([name for _, name in normal], [])
    assert gate.offer(T0 + timedelta(days=1), "outlier") == ([], []), "held until the stream shows what it is"
    accepted, refused = gate.offer(T0 + timedelta(minutes=60), "next")
    assert accepted == ["next"] and [item for item, _ in refused] == ["outlier"]
    reason = refused[0][1]
    assert "ahead of its stream" in reason and "max_stream_ahead" in reason and "23:05:00 ahead" in reason
    assert gate.watermark == T0 + timedelta(minutes=60), "the outlier did not move the stream's clock"


def test_outliers_between_normal_records_never_add_up_to_a_jump() -> None:
    gate: StreamGate[str] = BOUNDS.gate()
    items = []
    for m in range(0, 120, 5):
        items += [(T0 + timedelta(minutes=m), "normal"), (T0 + timedelta(days=1), "outlier")]
    accepted, refused = _offer_all(gate, items)
    end_accepted, end_refused = gate.end()
    assert accepted + end_accepted == ["normal"] * 24
    assert refused + [item for item, _ in end_refused] == ["outlier"] * 24


@pytest.mark.parametrize("outlier", [datetime(2100, 1, 1, tzinfo=UTC), T0 + timedelta(days=1)])
def test_an_outlier_as_a_streams_first_record_does_not_set_its_clock(outlier: datetime) -> None:
    gate: StreamGate[str] = BOUNDS.gate()
    normal = [(T0 + timedelta(minutes=m), f"n{m}") for m in range(0, 30, 5)]
    accepted, refused = _offer_all(gate, [(outlier, "outlier"), *normal])
    assert accepted == [name for _, name in normal] and refused == ["outlier"]
    assert gate.watermark == normal[-1][0]


def test_a_stream_too_short_to_start_its_clock_loses_nothing() -> None:
    """Two readings a day apart: nothing says which is wrong, and at the end they can make nothing late."""
    gate: StreamGate[str] = BOUNDS.gate()
    assert _offer_all(gate, [(T0, "a"), (T0 + timedelta(days=1), "b")]) == ([], [])
    assert gate.end() == (["a", "b"], [])


def test_a_real_gap_is_followed_and_loses_no_record() -> None:
    gate: StreamGate[str] = BOUNDS.gate()
    before = [(T0 + timedelta(minutes=m), f"b{m}") for m in range(3)]
    after_gap = [(T0 + timedelta(hours=5, minutes=m), f"g{m}") for m in range(6)]
    accepted, refused = _offer_all(gate, [*before, *after_gap])
    accepted += gate.end()[0]
    assert accepted == [name for _, name in [*before, *after_gap]] and refused == []
    assert gate.watermark == after_gap[-1][0]


def test_records_still_held_when_the_input_ends_are_refused() -> None:
    gate: StreamGate[str] = BOUNDS.gate()
    _offer_all(gate, [(T0 + timedelta(minutes=m), "normal") for m in range(3)])
    assert _offer_all(gate, [(T0 + timedelta(days=1), "last")]) == ([], [])
    accepted, refused = gate.end()
    assert accepted == [] and [item for item, _ in refused] == ["last"]
    assert gate.end() == ([], [])


def test_time_bounds_are_configuration() -> None:
    settings = Settings.model_validate({"detection": {"time_bounds": {
        "max_ahead": "15m", "max_age": None, "max_stream_ahead": "2h", "jump_after": 3,
        "not_before": "2010-01-01T00:00:00Z"}}})
    bounds = settings.detection.time_bounds
    assert (bounds.max_ahead, bounds.max_age, bounds.max_stream_ahead, bounds.jump_after) == (
        timedelta(minutes=15), None, timedelta(hours=2), 3)
    assert bounds.not_before == datetime(2010, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("max_ahead", "0s", "must be positive"),
    ("jump_after", 0, "greater than or equal to 1"),
    ("not_before", "2010-01-01T00:00:00", "timezone"),
    ("max_ahaed", "5m", "unknown key"),
])
def test_a_bad_time_bound_is_refused_at_start_naming_it(tmp_path: Path, key: str, value: object, says: str
                                                        ) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(orjson.dumps({"detection": {"time_bounds": {key: value}}}))  # JSON is YAML
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"detection.time_bounds.{key}" in str(caught.value) and says in str(caught.value)


def test_a_sparse_stream_whose_records_lie_hours_apart_loses_nothing() -> None:
    """311 water complaints come a few a day: each record is supported by the ones after it."""
    gate: StreamGate[str] = BOUNDS.gate()
    sparse = [(T0 + timedelta(hours=5 * n, minutes=7 * n), f"s{n}") for n in range(12)]
    accepted, refused = _offer_all(gate, sparse)
    end_accepted, end_refused = gate.end()
    assert accepted + end_accepted == [name for _, name in sparse[:-1]] and refused == []
    assert [item for item, _ in end_refused] == ["s11"], "the last record, with nothing after it, stays unproven"
    assert gate.watermark == sparse[-2][0]


def test_an_outlier_among_the_records_after_a_gap_is_refused_and_the_rest_kept() -> None:
    gate: StreamGate[str] = BOUNDS.gate()
    before = [(T0 + timedelta(minutes=m), f"b{m}") for m in range(3)]
    after_gap = [(T0 + timedelta(hours=5, minutes=m), f"g{m}") for m in range(4)]
    outlier = (datetime(2100, 1, 1, tzinfo=UTC), "outlier")
    accepted, refused = _offer_all(gate, [*before, after_gap[0], outlier, *after_gap[1:]])
    assert accepted == [name for _, name in [*before, *after_gap]] and refused == ["outlier"]
    assert gate.watermark == after_gap[-1][0]


def test_held_records_are_released_in_time_order() -> None:
    """Records a little out of order after a gap: none is released after a later one (it would be late)."""
    gate: StreamGate[str] = BOUNDS.gate()
    _offer_all(gate, [(T0, "a"), (T0 + timedelta(minutes=1), "b"), (T0 + timedelta(minutes=2), "c")])
    order = [(T0 + timedelta(hours=3), "x"), (T0 + timedelta(hours=2, minutes=30), "y"),
             (T0 + timedelta(hours=2, minutes=40), "z")]
    assert _offer_all(gate, order) == (["y", "z", "x"], [])
    assert gate.watermark == T0 + timedelta(hours=3)


def test_a_gate_snapshotted_before_support_was_counted_restores() -> None:
    """Before `support`, a gate pickled as a slots dataclass without __getstate__: (None, its slots)."""
    import pickle

    old_state = (None, {"max_ahead": BOUNDS.max_stream_ahead, "jump_after": BOUNDS.jump_after, "watermark": T0,
                        "held": [(T0 + timedelta(days=1), "held")]})
    restored: StreamGate[str] = StreamGate.__new__(StreamGate)
    restored.__setstate__(old_state)
    assert restored.support == [0] and restored.watermark == T0
    restored = pickle.loads(pickle.dumps(restored))
    assert restored.support == [0] and restored.held == [(T0 + timedelta(days=1), "held")]
    accepted, refused = restored.offer(T0 + timedelta(minutes=5), "next")
    assert accepted == ["next"] and [item for item, _ in refused] == ["held"]


def test_at_the_end_records_next_to_an_accepted_one_follow_it() -> None:
    gate: StreamGate[str] = TimeBounds(max_stream_ahead=timedelta(hours=1), jump_after=5).gate()
    before = [(T0 + timedelta(minutes=m), f"b{m}") for m in range(5)]
    after_gap = [(T0 + timedelta(hours=5), "g0"), (T0 + timedelta(hours=5, minutes=1), "g1")]
    accepted, _ = _offer_all(gate, [*before, *after_gap])
    assert accepted == [name for _, name in before]
    assert gate.end() == (["g0", "g1"], [])
    assert gate.watermark == T0 + timedelta(hours=5, minutes=1)


def test_a_late_record_says_nothing_about_what_is_held() -> None:
    """A sparse stream (records hours apart) holds a few records most of the time: one stale record, days
    behind the clock, must not refuse them (it is late itself)."""
    gate: StreamGate[str] = BOUNDS.gate()
    sparse = [(T0 + timedelta(hours=5 * n), f"s{n}") for n in range(8)]
    stale = (T0 - timedelta(days=3), "stale")
    accepted, refused = _offer_all(gate, [*sparse[:6], stale, *sparse[6:]])
    end_accepted, end_refused = gate.end()
    assert refused == [] and [item for item, _ in end_refused] == ["s7"]
    assert sorted(accepted + end_accepted) == sorted(["stale", *[name for _, name in sparse[:-1]]])
