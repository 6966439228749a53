"""A detection shard: several topics' cases counted into panes, judged early, closed on event time.

The dataflow spreads topics over a fixed number of shards (one key each), so no single key
carries every case and the work spreads over workers and processes. A shard receives, from
each input partition, batches of cases with that partition's progress (its watermark: the
newest time it has accepted). It keeps each partition's clock:

- a pane closes when every input partition has passed it by `lateness` (the minimum
  watermark), so a record is late only when it is late in its own partition, and the
  result does not depend on how partitions are spread over processes;
- a partition that ended (a file, a topic read without tailing) holds nothing back;
- live, a partition's clock runs on with the wall clock since its newest record (as
  Bytewax's `EventClock` does), so an idle partition never stalls the others, and one not
  heard from yet counts as the wall clock;
- in a replay, a partition not heard from yet holds everything until it speaks or ends.

As a pane fills, each topic's detector judges the window ending at it (`TopicDetector.early`):
a spike leaves in the same batch as the record that tipped it, not when the pane closes.
Every case is counted once (`SeenIds`), a customer once per topic within a horizon (their further
cases are read and not counted: one customer filing a dozen cases, or a script behind one account,
is one affected customer, not a surge), and regions are capped (`RegionCap`) per topic, as before
any windowing.

>>> from datetime import UTC, datetime, timedelta
>>> from forewarn.detectors.topic import TopicDetector
>>> slide = timedelta(minutes=15)
>>> shard = DetectionShard(lambda topic: TopicDetector(topic, slide=slide, warmup=slide),
...                        ShardRules(slide, lateness=timedelta(0), live=False), partitions=["a", "b"])
>>> t = datetime(2026, 11, 30, 9, tzinfo=UTC)
>>> def case(minutes, n=0):
...     ts = t + timedelta(minutes=minutes)
...     return CountedCase(ts, pane_index(ts, slide), "billing", "TX-453", f"C-{minutes}-{n}", None, 1, b"{}")
>>> shard.offer(ShardBatch(PartitionInfo("a"), t + timedelta(minutes=40), False, [case(1), case(40)]), t).verdicts
[]
>>> judged = shard.offer(ShardBatch(PartitionInfo("b"), t + timedelta(minutes=20), False, [case(2)]), t)
>>> [(v[0].pane_start.minute, v[0].cases["TX-453"].count) for v in judged.verdicts]   # b passed 09:15, a too
[(0, 2)]
>>> [letter.step for letter in shard.offer(ShardBatch(PartitionInfo("b"), None, True, [case(3)]), t).letters]
['count_panes']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from forewarn.batches import PartitionInfo
from forewarn.detectors.dedup import SeenIds, duplicate_reason
from forewarn.detectors.panes import Pane, RegionAcc, freeze_pane
from forewarn.detectors.region_cap import RegionCap, capped_reason
from forewarn.detectors.topic import TopicDetector, pane_index, pane_time
from forewarn.records import DeadLetter, PaneCases, WindowVerdict

_NEVER = datetime.max.replace(tzinfo=UTC)


class CountedCase(NamedTuple):
    """A case as a shard counts it: plain fields, its pane, its position in its partition and its bytes."""

    ts: datetime
    pane: int
    topic: str
    region: str
    case_id: str | None
    customer_id: str | None
    position: int | None
    raw: bytes
    text: str | None = None
    """Kept only until the case's topic is settled (topic discovery reads it); never sent on."""
    late: bool = False
    """Late in its own partition: its pane had closed on that partition's clock."""


class ShardBatch(NamedTuple):
    """One input partition's cases for one shard, with the partition's progress after them."""

    partition: PartitionInfo
    watermark: datetime | None
    """The newest record time the partition has accepted (None: none yet)."""
    end: bool
    cases: list[CountedCase]


class Failure(NamedTuple):
    """A topic's pane the detector failed on: the flow dead-letters it and goes on."""

    topic: str
    pane_start: datetime
    error: Exception


class Judged(NamedTuple):
    """What a shard decided: verdict lists (one list per topic and pane, or per early judgement), dead letters,
    and how many cases per topic were a customer's repeats (read, not counted)."""

    verdicts: list[list[WindowVerdict]]
    letters: list[DeadLetter]
    repeats: dict[str, int] | None = None


@dataclass(slots=True)
class _Clock:
    """One input partition's progress."""

    newest: datetime | None = None
    seen_at: datetime | None = None
    ended: bool = False

    def mark(self, now: datetime, live: bool) -> datetime | None:
        """How far this partition has come (None: not at all, in a replay); `_NEVER` while it has ended."""
        if self.ended:
            return _NEVER
        if self.newest is None or self.seen_at is None:
            return now if live else None
        return self.newest + (now - self.seen_at) if live else self.newest


@dataclass(slots=True)
class _Topic:
    detector: TopicDetector
    seen: SeenIds | None
    cap: RegionCap
    filling: dict[int, Pane] = field(default_factory=dict)
    customers: SeenIds | None = None
    """The customers counted on this topic within the horizon of `ShardRules.repeats` (at most its number)."""

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        # Pickled as slots are, (None, {name: value}); state from before customers were counted once has no
        # "customers": such a topic counts every case.
        self.customers = None
        for name, value in state[1].items():
            setattr(self, name, value)


@dataclass(frozen=True)
class ShardRules:
    """How a shard counts: pane length, lateness, live or replay, case-id horizon and region cap."""

    slide: timedelta
    lateness: timedelta
    live: bool
    dedup: tuple[timedelta, int] | None = None
    """(horizon, most ids remembered per topic), or None to count every case."""
    max_regions: int = 5000
    repeats: tuple[timedelta, int] | None = None
    """(horizon, most customers remembered per topic): a customer's cases on a topic count once within the
    horizon; None: every case counts."""


def _region_acc(filling: dict[int, Pane], pane: int, region: str) -> RegionAcc:
    """The region's cases so far in a filling pane, made empty on first use."""
    cases = filling.get(pane)
    if cases is None:
        cases = filling[pane] = {}
    acc = cases.get(region)
    if acc is None:
        acc = cases[region] = RegionAcc()
    return acc


class DetectionShard:
    """The topics of one shard: counting, early judgement and closing panes on the partitions' clocks."""

    def __init__(self, build: Callable[[str], TopicDetector], rules: ShardRules, partitions: Iterable[str] = ()):
        self.build = build
        self.rules = rules
        self._clocks = {name: _Clock() for name in partitions}
        self._topics: dict[str, _Topic] = {}
        self._open_from: int | None = None  # every pane before this one is closed
        self.failures: list[Failure] = []
        """Panes a detector raised on since the caller last emptied this list."""

    def offer(self, batch: ShardBatch, now: datetime) -> Judged:
        """Count a partition's cases, judge the filling panes they touched, close what every partition passed."""
        letters: list[DeadLetter] = []
        repeats: dict[str, int] = {}
        newest: dict[str, datetime] = {}
        touched: dict[str, set[str]] = {}
        count, partition = self._count, batch.partition
        for case in batch.cases:
            region = count(case, partition, letters, repeats)
            if region is None:
                continue
            topic = case.topic
            regions = touched.get(topic)
            if regions is None:
                touched[topic], newest[topic] = {region}, case.ts
                continue
            regions.add(region)
            if case.ts > newest[topic]:
                newest[topic] = case.ts
        clock = self._clocks.setdefault(batch.partition.key, _Clock())
        # Only a newer time restarts the clock's run: a partition sending records that do not move it (all
        # refused, say) must not pin its clock, and with it every pane, at its last good time.
        if batch.watermark is not None and (clock.newest is None or batch.watermark > clock.newest):
            clock.newest, clock.seen_at = batch.watermark, now
        clock.ended = batch.end  # a partition that ended may speak again (a file appended to, then resumed)
        verdicts = [v for topic, at in newest.items() if (v := self._early(topic, at, touched[topic]))]
        verdicts.extend(self.advance(now))
        return Judged(verdicts, letters, repeats or None)

    def advance(self, now: datetime) -> list[list[WindowVerdict]]:
        """Close every pane all partitions still going have passed by the allowed lateness.

        When every partition has ended, nothing closes here: the end of the input (`end`) closes the
        rest, so a run resumed on more input finds those panes still filling."""
        least = self._least_going(now)
        if least is None:
            return []
        return self._close_before(pane_index(least - self.rules.lateness, self.rules.slide))

    def end(self) -> list[list[WindowVerdict]]:
        """The input ended: close every pane still filling."""
        last = max(self._filling(), default=None)
        return [] if last is None else self._close_before(last + 1)

    def oldest_filling(self) -> datetime | None:
        """The start of the oldest pane still filling (None: none is)."""
        first = min(self._filling(), default=None)
        return None if first is None else pane_time(first, self.rules.slide)

    def next_close(self, now: datetime) -> datetime | None:
        """Live: the wall time at which the oldest filling pane will close, if nothing else arrives."""
        first = min(self._filling(), default=None)
        least = self._least_going(now) if self.rules.live else None
        if first is None or least is None:
            return None
        due = pane_time(first + 1, self.rules.slide) + self.rules.lateness
        return now + max(due - least, timedelta(0))

    def _filling(self) -> Iterator[int]:
        return (i for topic in self._topics.values() for i in topic.filling)

    def _least_going(self, now: datetime) -> datetime | None:
        """How far every partition still going has come: None while one has not spoken (in a replay), or when
        none is going (each has ended, or none is known)."""
        marks = [clock.mark(now, self.rules.live) for clock in self._clocks.values()]
        if any(mark is None for mark in marks):
            return None
        return min((mark for mark in cast(list[datetime], marks) if mark != _NEVER), default=None)

    def _count(self, case: CountedCase, partition: PartitionInfo, letters: list[DeadLetter],
               repeats: dict[str, int]) -> str | None:
        """Count one case (returning the region it counted under), or refuse it with a dead letter: a copy,
        or late. A customer's repeat is valid, so no dead letter: it is tallied in `repeats`, not counted. A
        region over the cap counts under the overflow bucket, with a dead letter naming it."""
        topic = self._topics.get(case.topic) or self._new(case.topic)
        if topic.seen is not None and case.case_id:
            counted = topic.seen.first_count(case.case_id, case.ts)
            if counted is not None:
                horizon = cast(tuple[timedelta, int], self.rules.dedup)[0]
                letters.append(DeadLetter("dedup", duplicate_reason(counted, horizon),
                                          partition.origin(case.position), case.raw))
                return None
        if case.late or (self._open_from is not None and case.pane < self._open_from):
            letters.append(DeadLetter("count_panes", self._late_reason(case), partition.origin(case.position),
                                      case.raw))
            return None
        if self._repeat(topic, case):
            repeats[case.topic] = repeats.get(case.topic, 0) + 1
            return None
        region = topic.cap.region_for(case.region)
        if region != case.region:
            letters.append(DeadLetter("cap_regions", capped_reason(case.topic, case.region, self.rules.max_regions),
                                      partition.origin(case.position), case.raw))
        _region_acc(topic.filling, case.pane, region).add(case.case_id, case.customer_id)
        return region

    @staticmethod
    def _repeat(topic: _Topic, case: CountedCase) -> bool:
        """Whether the case's customer already counted on its topic within the horizon. A repeat stays a reporter
        of its pane, so outreach does not warn them of what they told us, but only in a region the topic has
        counted in: it must neither take a capped region's place nor bring a region its detector never counted."""
        customers = topic.customers
        if customers is None or not case.customer_id or customers.first_count(case.customer_id, case.ts) is None:
            return False
        if case.region in topic.cap.known:
            reporters = _region_acc(topic.filling, case.pane, case.region).reporters
            if not reporters or reporters[-1] != case.customer_id:  # a flood from one account is one entry
                reporters.append(case.customer_id)
        return True

    def _late_reason(self, case: CountedCase) -> str:
        r = self.rules
        return (f"late: {case.ts.isoformat()} arrived after its {r.slide} pane of topic {case.topic!r} closed "
                f"(allowed lateness {r.lateness}); raise detection.allowed_lateness to count such records")

    def _new(self, name: str) -> _Topic:
        dedup, repeats = self.rules.dedup, self.rules.repeats
        topic = self._topics[name] = _Topic(self.build(name), SeenIds(*dedup) if dedup else None,
                                            RegionCap(self.rules.max_regions),
                                            customers=SeenIds(*repeats) if repeats else None)
        return topic

    def _early(self, name: str, decided_at: datetime, touched: set[str]) -> list[WindowVerdict]:
        topic = self._topics[name]
        filling = sorted(topic.filling.items())
        slide = self.rules.slide
        newest = filling[-1][0]
        try:
            spikes = topic.detector.early(cast(list[tuple[int, dict[str, PaneCases]]], filling), decided_at, touched)
        except Exception as exc:  # a fault in one detector must not stop the others
            self.failures.append(Failure(name, pane_time(newest, slide), exc))
            return []
        if not spikes:
            return []
        return [WindowVerdict(name, pane_time(newest, slide), pane_time(newest + 1, slide), tuple(spikes),
                              early=True)]

    def _close_before(self, boundary: int) -> list[list[WindowVerdict]]:
        if self._open_from is not None and boundary <= self._open_from:
            return []
        self._open_from = boundary
        verdicts: list[list[WindowVerdict]] = []
        for name, topic in self._topics.items():
            for index in sorted(i for i in topic.filling if i < boundary):
                try:
                    closed = topic.detector.process(index, freeze_pane(topic.filling.pop(index)))
                except Exception as exc:  # the topic keeps its state; its pane becomes a dead letter
                    self.failures.append(Failure(name, pane_time(index, self.rules.slide), exc))
                    continue
                if closed:
                    verdicts.append(closed)
        return verdicts
