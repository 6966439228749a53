"""Resource bounds (issue 9, item 5): a case id counts once within a horizon; a topic's regions are capped.

Finding: the same case id delivered twice was counted twice. The decisions are pure units
(`SeenIds`, `RegionCap`) held as per-key state by the flow, so they must stay bounded and
survive a snapshot (deep copy) and recovery (pickle) as equal, independent state.
"""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from forewarn.detectors.dedup import SeenIds, duplicate_reason
from forewarn.detectors.region_cap import RegionCap, capped_reason
from forewarn.flows.steps import CapRegions, CountOnce
from forewarn.records import Case, DeadLetter, Origin
from forewarn.settings import OVERFLOW_REGION, DetectionSettings

T = datetime(2026, 11, 20, 14, tzinfo=UTC)
DAY = timedelta(days=1)


# --- a case id counts once within the horizon -----------------------------------------------------------------


def test_an_id_seen_within_the_horizon_is_a_duplicate_of_the_first_count() -> None:
    seen = SeenIds(DAY, max_ids=100)
    assert seen.first_count("C-1", T) is None
    assert seen.first_count("C-1", T) == T
    assert seen.first_count("C-1", T + timedelta(hours=23)) == T
    assert seen.first_count("C-1", T - timedelta(hours=23)) == T, "a copy may arrive with an earlier time"
    assert seen.first_count("C-2", T) is None, "another id counts"


def test_an_id_seen_again_beyond_the_horizon_counts_again_and_restarts_its_horizon() -> None:
    seen = SeenIds(DAY, max_ids=100)
    seen.first_count("C-1", T)
    assert seen.first_count("C-1", T + DAY + timedelta(seconds=1)) is None
    assert seen.first_count("C-1", T + DAY + timedelta(hours=2)) == T + DAY + timedelta(seconds=1)


def test_ids_older_than_the_horizon_behind_the_stream_are_forgotten() -> None:
    seen = SeenIds(DAY, max_ids=1_000_000)
    for n in range(1000):
        seen.first_count(f"C-{n}", T + n * timedelta(minutes=5))  # 1000 cases over ~3.5 days
    assert len(seen.seen) == 24 * 12 + 1, "only the last day's ids are kept"
    assert seen.first_count("C-0", T) is None, "forgotten: it counts again"


def test_memory_is_capped_whatever_the_rate_and_the_oldest_are_forgotten_first() -> None:
    seen = SeenIds(DAY, max_ids=50)
    for n in range(10_000):
        seen.first_count(f"C-{n}", T)  # all within the horizon: only the cap bounds them
        assert len(seen.seen) <= 50
    assert seen.first_count("C-9999", T) == T, "the newest are remembered"
    assert seen.first_count("C-0", T) is None, "the oldest were forgotten"


def test_times_at_the_edge_of_the_calendar_do_not_raise() -> None:
    seen = SeenIds(timedelta(days=3650), max_ids=10)
    assert seen.first_count("C-1", datetime(1, 1, 2, tzinfo=UTC)) is None
    assert seen.first_count("C-1", datetime(1, 1, 2, tzinfo=UTC)) is not None


def test_seen_ids_pickle_and_copy_to_equal_independent_state() -> None:
    seen = SeenIds(DAY, max_ids=10)
    seen.first_count("C-1", T)
    for twin in (pickle.loads(pickle.dumps(seen)), copy.deepcopy(seen)):
        assert twin == seen
        twin.first_count("C-2", T)
        assert "C-2" not in seen.seen
        assert twin.first_count("C-1", T) == T


def test_the_step_dead_letters_a_copy_with_its_origin_and_lets_cases_without_an_id_count() -> None:
    step = CountOnce(DAY, 100)
    case = Case(id="C-1", ts=T, topic="no_internet", region="TX-453")
    state, first = step(None, (Origin("cases", 0, 10), case))
    state, second = step(state, (Origin("cases", 0, 11), case))
    assert first == (Origin("cases", 0, 10), case)
    assert isinstance(second, DeadLetter)
    assert second.step == "dedup" and second.origin == Origin("cases", 0, 11)
    assert second.reason == ("duplicate: case id already counted at 2026-11-20T14:00:00+00:00 "
                             "(within detection.dedup_horizon 1d)") == duplicate_reason(T, DAY)
    anonymous = Case(ts=T, topic="no_internet", region="TX-453")
    for _ in range(2):
        state, out = step(state, (Origin("cases", 0, 12), anonymous))
        assert out == (Origin("cases", 0, 12), anonymous)


def test_the_horizon_is_a_setting_off_with_null_or_zero_and_never_negative() -> None:
    assert DetectionSettings().dedup_horizon == DAY
    assert DetectionSettings(dedup_horizon="2h").dedup_horizon == timedelta(hours=2)
    assert DetectionSettings(dedup_horizon=None).dedup_horizon is None
    assert DetectionSettings(dedup_horizon="0s").dedup_horizon is None
    with pytest.raises(ValidationError, match="must be positive"):
        DetectionSettings(dedup_horizon="-1h")
    with pytest.raises(ValidationError):
        DetectionSettings(dedup_max_ids=0)


# --- a topic's distinct regions are capped --------------------------------------------------------------------


def test_regions_beyond_the_cap_count_under_the_overflow_bucket() -> None:
    cap = RegionCap(max_regions=3)
    assert [cap.region_for(r) for r in ["A", "B", "C", "D", "A", "E", "C"]] == ["A", "B", "C", OVERFLOW_REGION,
                                                                                "A", OVERFLOW_REGION, "C"]
    for n in range(10_000):
        cap.region_for(f"R-{n}")
    assert cap.known == {"A", "B", "C"}, "a flood of invented regions cannot grow the state"


def test_region_cap_pickles_and_copies_to_equal_independent_state() -> None:
    cap = RegionCap(max_regions=2)
    cap.region_for("A")
    for twin in (pickle.loads(pickle.dumps(cap)), copy.deepcopy(cap)):
        assert twin == cap
        assert twin.region_for("B") == "B"
        assert cap.known == {"A"}


def test_the_step_counts_a_capped_case_under_overflow_and_dead_letters_it_with_its_region() -> None:
    step = CapRegions(max_regions=1)
    first = (Origin("cases", 0, 1), Case(id="C-1", ts=T, topic="billing", region="TX-453"))
    state, out = step(None, first)
    assert out == [first]
    other = Case(id="C-2", ts=T, topic="billing", region="CA-037")
    state, out = step(state, (Origin("cases", 0, 2), other))
    counted, letter = out
    assert isinstance(counted, tuple) and counted[1].region == OVERFLOW_REGION and counted[1].id == "C-2"
    assert isinstance(letter, DeadLetter) and letter.step == "cap_regions" and letter.origin == Origin("cases", 0, 2)
    assert letter.reason == capped_reason("billing", "CA-037", 1)
    assert "'CA-037'" in letter.reason and "detection.max_regions_per_topic" in letter.reason
    assert DetectionSettings().max_regions_per_topic == 5_000
    with pytest.raises(ValidationError):
        DetectionSettings(max_regions_per_topic=0)
