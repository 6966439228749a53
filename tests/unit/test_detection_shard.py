"""Detection shards (issue 10): event time per input partition, and early firing as the newest pane fills.

A pane closes when every input partition has passed it, so a record is late only when it is late
in its own partition, and how records are spread over partitions changes nothing. A spike leaves
in the same batch as the record that tips its window; the pane's closing count then settles the
incident it opened.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from forewarn.batches import PartitionInfo
from forewarn.detectors.shard import CountedCase, DetectionShard, ShardBatch, ShardRules
from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.outreach.incidents import IncidentTracker
from forewarn.records import NATIONAL, Spike, WindowVerdict

SLIDE = timedelta(minutes=15)
LATE = timedelta(minutes=10)
T0 = datetime(2026, 11, 16, tzinfo=UTC)


def _detector(topic: str) -> TopicDetector:
    return TopicDetector(topic, window=timedelta(hours=1), slide=SLIDE, warmup=timedelta(hours=6))


def _shard(partitions: list[str], live: bool = False) -> DetectionShard:
    return DetectionShard(_detector, ShardRules(SLIDE, LATE, live=live), partitions)


def _case(ts: datetime, region: str, n: int) -> CountedCase:
    return CountedCase(ts, pane_index(ts, SLIDE), "no_internet", region, f"C-{n}", f"CU-{n}", n, b"{}")


def _quiet_day(rng: random.Random) -> list[CountedCase]:
    """Twelve hours of a few cases a pane over three regions, in time order."""
    cases: list[CountedCase] = []
    for minute in range(0, 12 * 60, 3):
        if rng.random() < 0.5:
            cases.append(_case(T0 + timedelta(minutes=minute, seconds=rng.randrange(60)),
                               rng.choice(["TX-453", "CA-037", "NY-081"]), len(cases)))
    return cases


def _closed(verdicts: list[list[WindowVerdict]]) -> list[tuple[datetime, tuple[tuple[str, int], ...], int]]:
    return [(v.pane_start, tuple(sorted((r, c.count) for r, c in v.cases.items())), len(v.spikes))
            for vs in verdicts for v in vs if not v.early]


def test_a_partition_behind_the_others_is_not_late_and_panes_close_when_both_passed() -> None:
    rng = random.Random(3)
    cases = _quiet_day(rng)
    one = _shard(["only"])
    alone = one.offer(ShardBatch(PartitionInfo("only"), cases[-1].ts, True, cases), T0).verdicts + one.end()

    two = _shard(["a", "b"])
    a_cases, b_cases = cases[0::2], cases[1::2]
    ahead = two.offer(ShardBatch(PartitionInfo("a"), a_cases[-1].ts, False, a_cases), T0)
    assert ahead.verdicts == [] and ahead.letters == [], "nothing closes before every partition has spoken"
    behind = two.offer(ShardBatch(PartitionInfo("b"), b_cases[len(b_cases) // 2].ts, False,
                                  b_cases[: len(b_cases) // 2]), T0)
    assert behind.letters == [], "b's records are on time in b, however far a has run ahead"
    rest = two.offer(ShardBatch(PartitionInfo("b"), b_cases[-1].ts, True, b_cases[len(b_cases) // 2:]), T0)
    assert rest.letters == []
    split = behind.verdicts + rest.verdicts + two.end()
    assert _closed(split) == _closed(alone), "two partitions close the same panes with the same counts as one"
    assert max(v.pane_start for vs in behind.verdicts for v in vs) < b_cases[len(b_cases) // 2].ts - LATE


def test_live_a_partition_never_heard_from_and_an_idle_one_do_not_hold_panes_open() -> None:
    shard = _shard(["a", "b"], live=True)
    wall = T0 + timedelta(hours=1)
    shard.offer(ShardBatch(PartitionInfo("a"), wall - timedelta(minutes=1), False,
                           [_case(wall - timedelta(minutes=1), "TX-453", 1)]), wall)
    # a's clock runs on from its newest record (00:59 seen at 01:00); b, never heard from, counts as the wall
    # clock. The 00:45 pane closes once a's clock passes its end (01:00) by the lateness: at 01:11 wall time.
    due = shard.next_close(wall)
    assert due == T0 + timedelta(hours=1, minutes=11)
    assert shard.advance(wall) == []
    [[verdict]] = shard.advance(due)
    assert verdict.pane_start == T0 + timedelta(minutes=45) and verdict.cases["TX-453"].count == 1


def _warm(shard: DetectionShard, rng: random.Random) -> None:
    cases = _quiet_day(rng)
    shard.offer(ShardBatch(PartitionInfo("cases"), cases[-1].ts, False, cases), T0)


def test_a_surge_fires_in_the_batch_that_tips_it_once_and_the_close_settles_the_incident() -> None:
    shard = _shard(["cases"])
    _warm(shard, random.Random(5))
    burst_start = T0 + timedelta(hours=13, minutes=5)  # an hour after the quiet half day, inside one pane
    burst = [_case(burst_start + timedelta(seconds=n), "TX-453", 10_000 + n) for n in range(40)]
    tracker = IncidentTracker(resolve_after=4)
    fired_at = None
    events = []
    for n in range(0, 40, 4):  # batches of four cases
        judged = shard.offer(ShardBatch(PartitionInfo("cases"), burst[n + 3].ts, False, burst[n:n + 4]), T0)
        early = [v for vs in judged.verdicts for v in vs if v.early]
        if early and fired_at is None:
            fired_at = n + 3
            [verdict] = early
            [spike] = verdict.spikes
            assert spike.region == "TX-453" and spike.decided_at == burst[n + 3].ts
            assert spike.observed <= n + 4 + 2, "the count so far, not the pane's final count"
        else:
            assert not early, "a key fires early once"
        for vs in judged.verdicts:
            for v in vs:
                events.extend(tracker.observe(v))
    assert fired_at is not None and fired_at < 39, "the surge was judged before its pane closed"
    closing = shard.offer(ShardBatch(PartitionInfo("cases"), burst[-1].ts + timedelta(hours=1), False, []), T0)
    for vs in closing.verdicts:
        for v in vs:
            events.extend(tracker.observe(v))
    opened = [e for e in events if e.status == "opened"]
    assert len(opened) == 1 and opened[0].opened_at == burst[fired_at].ts, "opened once, at the tipping record"
    [settled, *_] = [e for e in events if e.status == "updated" and e.id == opened[0].id]
    assert settled.observed == 40 and settled.linked_cases == 40, "the pane's final count replaces the early one"
    assert opened[0].observed < 40


def test_live_a_partition_whose_records_do_not_move_its_clock_does_not_pin_the_panes() -> None:
    """b keeps sending batches whose records were all refused (no newer time): its clock runs on regardless."""
    closed = {}
    for chatty in (False, True):
        shard = _shard(["a", "b"], live=True)
        wall = T0 + timedelta(hours=1)
        shard.offer(ShardBatch(PartitionInfo("b"), wall, False, [_case(wall, "TX-453", 0)]), wall)
        count = 0
        for minute in range(1, 121):
            now = wall + timedelta(minutes=minute)
            judged = [shard.offer(ShardBatch(PartitionInfo("a"), now, False, [_case(now, "TX-453", minute)]), now)]
            if chatty:
                judged.append(shard.offer(ShardBatch(PartitionInfo("b"), wall, False, []), now))
            count += sum(1 for j in judged for vs in j.verdicts for v in vs if not v.early)
        closed[chatty] = count
    assert closed[False] >= 7 and closed[True] == closed[False], closed


def test_a_key_fires_early_once_while_its_pane_waits_to_close_and_each_pane_adds_one_spike() -> None:
    shard = _shard(["cases"])
    _warm(shard, random.Random(5))
    tracker = IncidentTracker(resolve_after=4)
    verdicts: list[WindowVerdict] = []

    def feed(cases: list[CountedCase], mark: datetime) -> None:
        for vs in shard.offer(ShardBatch(PartitionInfo("cases"), mark, False, cases), T0).verdicts:
            verdicts.extend(vs)

    burst = [_case(T0 + timedelta(hours=13, minutes=5, seconds=n), "TX-453", 10_000 + n) for n in range(40)]
    feed(burst, burst[-1].ts)
    # More cases in the next pane while the 13:00 pane still waits out its lateness (until 13:25).
    later = [_case(T0 + timedelta(hours=13, minutes=16, seconds=n), "TX-453", 20_000 + n) for n in range(3)]
    feed(later, later[-1].ts)
    feed([], T0 + timedelta(hours=16))
    assert [v.pane_start for v in verdicts if v.early] == [T0 + timedelta(hours=13)], "one early fire for the key"
    events = [e for v in verdicts for e in tracker.observe(v)]
    [incident] = [e for e in events if e.status == "opened"]
    last = [e for e in events if e.id == incident.id][-1]
    closing_spikes = sum(1 for v in verdicts if not v.early for s in v.spikes if s.region == "TX-453")
    assert last.spikes == closing_spikes, "the early spike is settled by its pane's close, not counted again"


def test_an_early_national_incident_is_not_overwritten_by_the_regional_spikes_of_its_close() -> None:
    t = T0 + timedelta(hours=13)
    early = Spike("no_internet", NATIONAL, t - 3 * SLIDE, t + SLIDE, 60, 20.0, 1e-9, 9.0, "x", decided_at=t)
    close_ca = Spike("no_internet", "CA-037", t - 3 * SLIDE, t + SLIDE, 12, 2.0, 1e-9, 9.0, "x")
    tracker = IncidentTracker(resolve_after=4)
    [opened] = tracker.observe(WindowVerdict("no_internet", t, t + SLIDE, (early,), early=True))
    [after] = tracker.observe(WindowVerdict("no_internet", t, t + SLIDE, (close_ca,)))
    assert opened.region == NATIONAL and after.id == opened.id
    assert after.observed == 60, "a regional spike of the close does not replace the national count"
