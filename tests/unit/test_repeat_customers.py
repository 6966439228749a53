"""`detection.repeat_horizon`: a customer counts once per topic within a horizon.

Finding: every case counted, whoever filed it, so one customer calling back a dozen times, or a
script filing under one account, was a surge at a sparse key (a record decided more than its
source allows). Boston's 2015 street-light requests show the pattern without the ids to act on it:
24 app reports in one neighbourhood in two hours, at 23 addresses, as one user's walk would file them.
The shard now remembers, per topic, the customers it counted (`SeenIds`, as for case ids): a
customer's further cases there within the horizon are read and not counted, and tallied per topic for
the metric; they are valid, so they are not dead letters. A repeat stays a reporter of its pane (in a
region the topic counted in), and is judged before the region cap, so it takes no region's place.
"""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from forewarn.batches import PartitionInfo
from forewarn.detectors.shard import CountedCase, DetectionShard, Judged, ShardBatch, ShardRules
from forewarn.detectors.topic import TopicDetector, pane_index, pane_time
from forewarn.metrics import EngineMetrics
from forewarn.settings import DetectionSettings

T = datetime(2026, 11, 20, 14, tzinfo=UTC)
DAY = timedelta(days=1)
SLIDE = timedelta(minutes=15)
LATENESS = timedelta(minutes=10)
CASES = PartitionInfo("cases", 0)


def _detector(topic: str) -> TopicDetector:  # module-level: a recovered shard pickles its builder
    return TopicDetector(topic, slide=SLIDE)


def _shard(repeats: tuple[timedelta, int] | None = (DAY, 100)) -> DetectionShard:
    return DetectionShard(_detector, ShardRules(SLIDE, LATENESS, live=False, repeats=repeats), partitions=["cases#0"])


def _case(n: int, customer: str | None, at: datetime = T, topic: str = "no_internet",
          region: str = "TX-453") -> CountedCase:
    return CountedCase(at, pane_index(at, SLIDE), topic, region, f"C-{n}", customer, n, f"case {n}".encode())


def _offer(shard: DetectionShard, *cases: CountedCase, watermark: datetime = T) -> Judged:
    return shard.offer(ShardBatch(CASES, watermark, False, list(cases)), watermark)


def _counts(shard: DetectionShard) -> dict[tuple[str, str], int]:
    """(topic, region) -> cases counted in the panes still filling, by closing them."""
    return {(v.topic, region): c.count for verdicts in shard.end() for v in verdicts for region, c in v.cases.items()}


def test_one_customers_dozen_cases_count_once_and_a_dozen_customers_count_twelve() -> None:
    shard = _shard()
    judged = _offer(shard, *(_case(n, "CU-1") for n in range(12)),
                    *(_case(100 + n, f"CU-{100 + n}", region="TX-001") for n in range(12)))
    assert judged.repeats == {"no_internet": 11}
    assert judged.letters == [], "a customer's repeat is valid: no dead letter"
    assert _counts(shard) == {("no_internet", "TX-453"): 1, ("no_internet", "TX-001"): 12}


def test_the_same_customer_counts_on_each_topic_and_cases_without_a_customer_always_count() -> None:
    shard = _shard()
    judged = _offer(shard, _case(1, "CU-1"), _case(2, "CU-1", topic="billing"), _case(3, "CU-1", topic="billing"),
                    *(_case(10 + n, None) for n in range(5)), *(_case(20 + n, "") for n in range(3)))
    assert judged.repeats == {"billing": 1}
    assert _counts(shard) == {("no_internet", "TX-453"): 9, ("billing", "TX-453"): 1}


def test_a_customer_counts_again_once_the_horizon_has_passed() -> None:
    shard = _shard((timedelta(hours=2), 100))
    _offer(shard, _case(1, "CU-1"))
    later = T + timedelta(hours=1, minutes=59)
    assert _offer(shard, _case(2, "CU-1", later), watermark=later).repeats == {"no_internet": 1}
    after = T + timedelta(hours=2, minutes=1)
    assert _offer(shard, _case(3, "CU-1", after), watermark=after).repeats is None


def test_a_late_case_does_not_use_up_its_customers_count() -> None:
    shard = _shard()
    after = T + timedelta(hours=1)
    _offer(shard, _case(1, "CU-9", after), watermark=after)  # the pane at T closed behind this partition's clock
    late = _offer(shard, _case(2, "CU-1", T), watermark=after)
    assert [letter.step for letter in late.letters] == ["count_panes"] and late.repeats is None
    assert _offer(shard, _case(3, "CU-1", after), watermark=after).repeats is None, "CU-1 was never counted"
    assert _counts(shard) == {("no_internet", "TX-453"): 2}


def test_without_the_rule_every_case_counts() -> None:
    shard = _shard(None)
    assert _offer(shard, *(_case(n, "CU-1") for n in range(12))).repeats is None
    assert _counts(shard) == {("no_internet", "TX-453"): 12}


def test_the_customers_remembered_survive_a_snapshot_and_recovery_independently() -> None:
    shard = _shard()
    _offer(shard, _case(1, "CU-1"))
    copied, restored = copy.deepcopy(shard), pickle.loads(pickle.dumps(shard))
    assert _offer(copied, _case(2, "CU-1")).repeats == {"no_internet": 1}
    assert _offer(restored, _case(2, "CU-1")).repeats == {"no_internet": 1}
    assert _offer(shard, _case(3, "CU-2")).repeats is None, "the copies' counts did not touch the original"


def test_a_topic_restored_from_state_written_before_the_rule_counts_every_case() -> None:
    shard = _shard()
    _offer(shard, _case(1, "CU-1"))
    topic = shard._topics["no_internet"]
    _, slots = cast(tuple[None, dict[str, Any]], topic.__reduce_ex__(2)[2])  # as pickle writes slots: (None, {...})
    assert set(slots) == {"detector", "seen", "cap", "filling", "customers"}
    del slots["customers"]  # as the state was written before customers were counted once
    old = type(topic).__new__(type(topic))
    old.__setstate__((None, slots))
    assert old.customers is None
    shard._topics["no_internet"] = old
    assert _offer(shard, _case(2, "CU-1")).repeats is None
    assert _counts(shard) == {("no_internet", "TX-453"): 2}


def test_a_copy_of_a_case_is_a_duplicate_not_a_repeat() -> None:
    shard = DetectionShard(_detector, ShardRules(SLIDE, LATENESS, live=False, dedup=(DAY, 100), repeats=(DAY, 100)),
                           partitions=["cases#0"])
    judged = _offer(shard, _case(1, "CU-1"), _case(1, "CU-1"), _case(2, "CU-1"))
    assert [letter.step for letter in judged.letters] == ["dedup"] and judged.repeats == {"no_internet": 1}


def test_a_repeat_takes_no_capped_regions_place_and_gets_no_letter() -> None:
    """One account filing in region after region must not use up a topic's regions (`max_regions_per_topic`)."""
    shard = DetectionShard(_detector, ShardRules(SLIDE, LATENESS, live=False, max_regions=2, repeats=(DAY, 100)),
                           partitions=["cases#0"])
    judged = _offer(shard, _case(1, "CU-1", region="A"), _case(2, "CU-1", region="B"), _case(3, "CU-1", region="C"),
                    _case(4, "CU-2", region="D"), _case(5, "CU-3", region="E"))
    assert [letter.raw for letter in judged.letters] == [b"case 5"], "only E, the third region counted, is capped"
    [[verdict]] = shard.end()
    assert {region: (c.count, c.reporters) for region, c in verdict.cases.items()} == {
        "A": (1, ("CU-1",)), "D": (1, ("CU-2",)), "~overflow": (1, ("CU-3",))}


def test_of_a_customers_cases_the_first_to_arrive_counts_whatever_its_time() -> None:
    shard = _shard()
    later = T + timedelta(minutes=20)
    assert _offer(shard, _case(1, "CU-1", later), _case(2, "CU-1", T), watermark=later).repeats == {"no_internet": 1}
    counted = {v.pane_start: v.cases["TX-453"] for verdicts in shard.end() for v in verdicts if v.cases}
    assert {start: (c.count, c.reporters) for start, c in counted.items()} == {
        pane_time(pane_index(later, SLIDE), SLIDE): (1, ("CU-1",)), T: (0, ("CU-1",))}


def test_the_setting_defaults_to_a_day_turns_off_with_null_or_zero_and_refuses_a_negative_one() -> None:
    assert DetectionSettings().repeat_horizon == DAY
    assert DetectionSettings(repeat_horizon="4h").repeat_horizon == timedelta(hours=4)
    assert DetectionSettings(repeat_horizon=None).repeat_horizon is None
    assert DetectionSettings(repeat_horizon="0s").repeat_horizon is None
    with pytest.raises(ValueError, match="repeat_horizon"):
        DetectionSettings(repeat_horizon="-1h")


def test_the_metric_adds_up_each_topics_repeats() -> None:
    metrics = EngineMetrics(CollectorRegistry())
    metrics.repeat_cases({"no_internet": 11, "billing": 1})
    metrics.repeat_cases({"no_internet": 2})
    sample = metrics.registry.get_sample_value
    assert sample("forewarn_repeat_cases_total", {"topic": "no_internet"}) == 13
    assert sample("forewarn_repeat_cases_total", {"topic": "billing"}) == 1


def test_a_repeat_is_not_counted_but_its_customer_is_a_reporter_of_the_pane_it_fell_in() -> None:
    """They called: outreach must not warn them of what they told us, even in a pane that counted nothing else."""
    shard = _shard()
    later = T + timedelta(minutes=30)
    _offer(shard, _case(1, "CU-1"), _case(2, "CU-2"))
    closed = _offer(shard, _case(3, "CU-1", later), watermark=later).verdicts  # the first pane closes here
    panes = {v.pane_start: v.cases["TX-453"] for verdicts in [*closed, *shard.end()] for v in verdicts
             if "TX-453" in v.cases}
    assert (panes[T].count, panes[T].reporters) == (2, ("CU-1", "CU-2"))
    assert (panes[later].count, panes[later].reporters) == (0, ("CU-1",))
