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

from forewarn.batches import PartitionInfo
from forewarn.detectors.dedup import SeenIds, duplicate_reason
from forewarn.detectors.region_cap import RegionCap, capped_reason
from forewarn.detectors.shard import CountedCase, DetectionShard, ShardBatch, ShardRules
from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.records import DeadLetter, Origin
from forewarn.settings import OVERFLOW_REGION, DetectionSettings

T = datetime(2026, 11, 20, 14, tzinfo=UTC)
DAY = timedelta(days=1)
SLIDE = timedelta(minutes=15)
CASES = PartitionInfo("cases", 0)


def _shard(dedup: tuple[timedelta, int] | None = (DAY, 100), max_regions: int = 5000) -> DetectionShard:
    return DetectionShard(lambda topic: TopicDetector(topic, slide=SLIDE),
                          ShardRules(SLIDE, timedelta(minutes=10), live=False, dedup=dedup, max_regions=max_regions),
                          partitions=["cases#0"])


def _case(offset: int, case_id: str | None, region: str = "TX-453", topic: str = "no_internet") -> CountedCase:
    return CountedCase(T, pane_index(T, SLIDE), topic, region, case_id, None, offset, f"case {offset}".encode())


def _offer(shard: DetectionShard, *cases: CountedCase) -> list[DeadLetter]:
    return shard.offer(ShardBatch(CASES, T, False, list(cases)), T).letters


def _counted(shard: DetectionShard) -> dict[str, int]:
    """Cases per region of the pane being filled, by closing it."""
    [[verdict]] = shard.end()
    return {region: c.count for region, c in verdict.cases.items()}


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


def test_the_shard_dead_letters_a_copy_with_its_origin_and_bytes_and_lets_cases_without_an_id_count() -> None:
    shard = _shard()
    assert _offer(shard, _case(10, "C-1")) == []
    [letter] = _offer(shard, _case(11, "C-1"))
    assert letter.step == "dedup" and letter.origin == Origin("cases", 0, 11) and letter.raw == b"case 11"
    assert letter.reason == ("duplicate: case id already counted at 2026-11-20T14:00:00+00:00 "
                             "(within detection.dedup_horizon 1d)") == duplicate_reason(T, DAY)
    assert _offer(shard, _case(12, None), _case(13, None)) == []
    assert _counted(shard) == {"TX-453": 3}
    unchecked = _shard(dedup=None)
    assert _offer(unchecked, _case(10, "C-1"), _case(11, "C-1")) == []
    assert _counted(unchecked) == {"TX-453": 2}


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


def test_the_shard_counts_a_capped_case_under_overflow_and_dead_letters_it_with_its_region() -> None:
    shard = _shard(max_regions=1)
    assert _offer(shard, _case(1, "C-1", "TX-453")) == []
    [letter] = _offer(shard, _case(2, "C-2", "CA-037"))
    assert letter.step == "cap_regions" and letter.origin == Origin("cases", 0, 2)
    assert letter.reason == capped_reason("no_internet", "CA-037", 1)
    assert "'CA-037'" in letter.reason and "detection.max_regions_per_topic" in letter.reason
    assert _counted(shard) == {"TX-453": 1, OVERFLOW_REGION: 1}
    assert DetectionSettings().max_regions_per_topic == 5_000
    with pytest.raises(ValidationError):
        DetectionSettings(max_regions_per_topic=0)
