"""Which record times a flow accepts: bounds checked per record before any windowing.

One record's timestamp must not be able to move a topic's event clock far ahead (every
later record of the topic would be late) nor reach dates whose pane arithmetic cannot be
represented. `TimeBounds` decides with the wall clock handed in (`now`); in a replay a
`StreamGate` per input partition follows the stream's own progress:

- never before `not_before`, and never within `EDGE` of the representable range;
- live (tailing): never more than `max_ahead` ahead of the wall clock (a record cannot come
  from the future) and never older than `max_age` behind it;
- replay: never more than `max_stream_ahead` ahead of the partition's running watermark,
  unless `jump_after` records in a row agree on the new time (the stream really jumped,
  e.g. after a gap): one outlier cannot push the clock, a real jump is followed. A replay
  never reads the wall clock: old data replays the same on any machine, whatever its clock.

>>> from datetime import UTC, datetime, timedelta
>>> bounds = TimeBounds(max_stream_ahead=timedelta(hours=1), jump_after=2)
>>> now, t = datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
>>> bounds.check(datetime(2100, 1, 1, tzinfo=UTC), now, live=True)[:45]
'time: 2100-01-01T00:00:00+00:00 is 26695 days'
>>> gate = bounds.gate()
>>> gate.offer(t, "a"), gate.offer(t + timedelta(minutes=1), "a2")
(([], []), (['a', 'a2'], []))
>>> gate.offer(t + timedelta(days=1), "outlier")
([], [])
>>> accepted, refused = gate.offer(t + timedelta(minutes=5), "b")
>>> accepted, [(item, reason[:40]) for item, reason in refused]
(['b'], [('outlier', 'time: 2026-11-17T00:00:00+00:00 is 23:59')])
>>> gate.offer(t + timedelta(hours=5), "after a gap"), gate.offer(t + timedelta(hours=5, minutes=1), "c")
(([], []), (['after a gap', 'c'], []))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

EDGE = timedelta(days=8)
"""Margin kept from datetime's limits (years 1 and 9999): panes, windows and weekly slots
add and subtract up to a week, and must never overflow whatever the configuration says."""

_MIN = datetime.min.replace(tzinfo=UTC) + EDGE
_MAX = datetime.max.replace(tzinfo=UTC) - EDGE


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """The accepted range of record times against the wall clock; `check` returns None or why not."""

    max_ahead: timedelta = timedelta(minutes=5)
    max_age: timedelta | None = timedelta(days=7)
    max_stream_ahead: timedelta = timedelta(hours=1)
    jump_after: int = 5
    not_before: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    def check(self, ts: datetime, now: datetime, live: bool) -> str | None:
        """None when `ts` may be counted as far as the calendar (and, `live`, the wall clock `now`) go."""
        floor = max(self.not_before, _MIN)
        if ts < floor:
            return (f"time: {ts.isoformat()} is before {floor.isoformat()}; a reset clock? "
                    "(detection.time_bounds.not_before)")
        if ts > _MAX:
            return f"time: {ts.isoformat()} is beyond the dates a pane can hold"
        if not live:
            return None
        ahead = ts - now  # both lie inside datetime's range, so this cannot overflow
        if ahead > self.max_ahead:
            return (f"time: {ts.isoformat()} is {ahead} ahead of the wall clock ({now.isoformat()}); "
                    f"more than detection.time_bounds.max_ahead {self.max_ahead}")
        if self.max_age is not None and -ahead > self.max_age:
            return (f"time: {ts.isoformat()} is {-ahead} old, more than detection.time_bounds.max_age "
                    f"{self.max_age}")
        return None

    def gate(self) -> StreamGate[Any]:
        """A new gate for one input partition of a replay."""
        return StreamGate(self.max_stream_ahead, self.jump_after)


T = TypeVar("T")


Passed = tuple[list[T], list[tuple[T, str]]]
"""Items accepted now (in order), and items refused now with the reason."""


@dataclass(slots=True)
class StreamGate(Generic[T]):
    """A partition's progress in a replay: items ahead of its watermark wait to be confirmed or refused.

    The watermark starts at the median of the partition's first `jump_after` items (so an
    outlier cannot be the first word either); until then they are held. Later, an item
    more than `max_ahead` ahead of the watermark is held. The next item within the bound
    shows the stream went on at its old time: the held ones were outliers and are
    refused. `jump_after` held items in a row that agree with each other (within
    `max_ahead` of the first) show the stream really jumped (a gap in the data): they are
    all accepted and the watermark moves. So nothing valid is lost to a gap, and one
    outlier never moves the clock. At most `jump_after - 1` items are held; `end`, when
    the input ends, decides on them. (In a partition with fewer than `jump_after` items
    in all, nothing can tell an outlier from the rest: all are accepted.)
    """

    max_ahead: timedelta
    jump_after: int
    watermark: datetime | None = None
    held: list[tuple[datetime, T]] = field(default_factory=list)

    def passes(self, ts: datetime) -> bool:
        """The common case in one comparison: nothing held and `ts` within bound of the watermark, so the
        item is accepted now (the watermark moves). False: `offer` decides."""
        mark = self.watermark
        if mark is None or self.held or ts - mark > self.max_ahead:
            return False
        if ts > mark:
            self.watermark = ts
        return True

    def offer(self, ts: datetime, item: T) -> Passed[T]:
        mark = self.watermark
        if mark is None:
            self.held.append((ts, item))
            return self._start() if len(self.held) >= self.jump_after else ([], [])
        refused: list[tuple[T, str]] = []
        if ts - mark <= self.max_ahead:
            refused = self._refuse_held()  # against the watermark they were held at
            self.watermark = max(mark, ts)
            return [item], refused
        if self.held and abs(ts - self.held[0][0]) > self.max_ahead:
            refused = self._refuse_held()  # a different run: the earlier one was no jump
        self.held.append((ts, item))
        if len(self.held) < self.jump_after:
            return [], refused
        accepted, self.held = self.held, []
        self.watermark = max(t for t, _ in accepted)
        return [i for _, i in accepted], refused

    def end(self) -> Passed[T]:
        """The input ended: decide on what is held (the stream will not say more).

        A partition too short to start its clock gives no evidence against any of its items:
        they are accepted. They reach the windows after every other record of the input (the
        end comes last), so they cannot make any record late. Items held against an
        established clock are refused: the stream did not follow them.
        """
        if self.watermark is None:
            held, self.held = self.held, []
            return [item for _, item in held], []
        return [], self._refuse_held()

    def _start(self) -> Passed[T]:
        """The first items: the watermark is their median; those too far ahead of it are refused."""
        held, self.held = self.held, []
        if not held:
            return [], []
        times = sorted(t for t, _ in held)
        median = times[(len(times) - 1) // 2]
        inside = [(t, i) for t, i in held if t - median <= self.max_ahead]
        self.watermark = max(t for t, _ in inside)
        return [i for _, i in inside], [(i, self._reason(t, median, "the median of its first records"))
                                        for t, i in held if t - median > self.max_ahead]

    def _refuse_held(self) -> list[tuple[T, str]]:
        """Refuse every held item: the stream did not follow it."""
        if not self.held:
            return []  # the usual case, once per record: no list built
        mark = self.watermark
        if mark is None:  # only the first items are held without a watermark: _start decides on them
            return []
        held, self.held = self.held, []
        return [(item, self._reason(ts, mark, f"{len(held)} of {self.jump_after} records in a row agreed"))
                for ts, item in held]

    def _reason(self, ts: datetime, mark: datetime, why: str) -> str:
        return (f"time: {ts.isoformat()} is {ts - mark} ahead of its stream (watermark {mark.isoformat()}), more "
                f"than detection.time_bounds.max_stream_ahead {self.max_ahead}; {why}")
