"""Which record times a flow accepts: bounds checked per record before any windowing.

One record's timestamp must not be able to move a topic's event clock far ahead (every
later record of the topic would be late) nor reach dates whose pane arithmetic cannot be
represented. `TimeBounds` decides with the wall clock handed in (`now`); in a replay a
`StreamGate` per input partition follows the stream's own progress:

- never before `not_before`, and never within `EDGE` of the representable range;
- live (tailing): never more than `max_ahead` ahead of the wall clock (a record cannot come
  from the future) and never older than `max_age` behind it;
- replay: never more than `max_stream_ahead` ahead of the partition's running watermark,
  unless the `jump_after - 1` records after it go on from its time (the stream really moved
  on: a gap in the data, or a sparse stream whose records lie hours apart) instead of coming
  back below it: one outlier cannot push the clock, a real jump is followed. A replay never
  reads the wall clock: old data replays the same on any machine, whatever its clock.

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

from collections.abc import Callable
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


_GATE_FIELDS = ("max_ahead", "jump_after", "watermark", "held", "support")


@dataclass(slots=True)
class StreamGate(Generic[T]):
    """A partition's progress in a replay: items ahead of its watermark wait for the records after them.

    An item more than `max_ahead` ahead of the watermark (or any item before the clock has
    started) is held. Each later record either contradicts it, coming back more than
    `max_ahead` before it (the stream went on at its old time: the held item was an outlier
    and is refused), or supports it. An item that `jump_after - 1` later records supported is
    accepted and moves the watermark, and the held items now within bound of it follow. So a
    real jump (a gap in the data) is followed, a sparse stream whose records lie hours apart
    loses nothing (each is supported by the ones after it), and one outlier never moves the
    clock: the records after it come back. A record already far behind the watermark (late,
    and dead-lettered as such) says nothing about what is held. When the input ends, held
    items that a later record supported are accepted, with those then within bound of the
    watermark; an item no record followed is refused, unless the clock never started (then
    nothing told an outlier from the rest, and all are accepted). Accepted items reach the
    windows in time order, so releasing them never makes one late. What a supporter is, is
    loose by design (sparse streams move on by hours): rising bogus times (2100, 2300, ...)
    add up to a jump as a real gap does; `not_before` and the calendar's edges still hold.
    """

    max_ahead: timedelta
    jump_after: int
    watermark: datetime | None = None
    held: list[tuple[datetime, T]] = field(default_factory=list)
    support: list[int] = field(default_factory=list)
    """Per held item, how many later records supported it."""

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _GATE_FIELDS}

    def __setstate__(self, state: Any) -> None:
        """A gate snapshotted before `support` (pickled as (None, its slots)) restores with none counted."""
        if isinstance(state, tuple):
            state = state[1]
        for name in _GATE_FIELDS[:4]:
            setattr(self, name, state[name])
        self.support = list(state.get("support", [0] * len(self.held)))

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
        refused = self._judge_held(ts) if self.held else []
        mark = self.watermark
        accepted: list[tuple[datetime, T]] = []
        if mark is not None and ts - mark <= self.max_ahead:
            accepted.append((ts, item))
            self.watermark = max(mark, ts)
        else:
            self.held.append((ts, item))
            self.support.append(0)
        accepted += self._release_all(self.jump_after - 1)
        return _in_time_order(accepted), refused

    def end(self) -> Passed[T]:
        """The input ended: decide on what is held (the stream will not say more)."""
        if self.watermark is None:
            held, self.held, self.support = self.held, [], []
            return _in_time_order(held), []
        accepted = self._release_all(1)
        refused = [(item, self._reason(t, "no later record supported it")) for t, item in self.held]
        self.held, self.support = [], []
        return _in_time_order(accepted), refused

    def _judge_held(self, ts: datetime) -> list[tuple[T, str]]:
        """A record at `ts` refuses the held items it came back below and supports the rest."""
        mark = self.watermark
        if mark is not None and mark - ts > self.max_ahead:
            return []  # late behind the clock: it speaks for nothing held
        outliers = self._take(lambda t, _: t - ts > self.max_ahead)
        self.support = [n + 1 for n in self.support]
        return [(item, self._reason(t, f"a later record came back to {ts.isoformat()}")) for t, item in outliers]

    def _release_all(self, enough: int) -> list[tuple[datetime, T]]:
        """Release held items supported `enough` times, and those the moved watermark then covers, until none."""
        accepted: list[tuple[datetime, T]] = []
        while released := self._take(lambda t, n: n >= enough or (
                self.watermark is not None and t - self.watermark <= self.max_ahead)):
            accepted += released
            newest = max(t for t, _ in released)
            self.watermark = newest if self.watermark is None else max(self.watermark, newest)
        return accepted

    def _take(self, chosen: Callable[[datetime, int], bool]) -> list[tuple[datetime, T]]:
        """Take out the held items `chosen(time, support)` picks, in arrival order; the rest stay with theirs."""
        if not self.held:
            return []  # the usual case, once per record: no list built
        out: list[tuple[datetime, T]] = []
        kept: list[tuple[datetime, T]] = []
        support: list[int] = []
        for pair, n in zip(self.held, self.support, strict=True):
            if chosen(pair[0], n):
                out.append(pair)
            else:
                kept.append(pair)
                support.append(n)
        if out:
            self.held, self.support = kept, support
        return out

    def _reason(self, ts: datetime, why: str) -> str:
        mark = self.watermark
        where = ("is ahead of its stream's first records" if mark is None
                 else f"is {ts - mark} ahead of its stream (watermark {mark.isoformat()})")
        return (f"time: {ts.isoformat()} {where}, more than detection.time_bounds.max_stream_ahead "
                f"{self.max_ahead}; {why}")


def _in_time_order(pairs: list[tuple[datetime, T]]) -> list[T]:
    return [item for _, item in sorted(pairs, key=lambda pair: pair[0])]
