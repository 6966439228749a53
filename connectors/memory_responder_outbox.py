"""Responder notifications (PagerDuty, Slack) waiting to go, in process: the demo's twin of `redis_responder_outbox`.

Much simpler than the customer outbox: a handful of events per incident, each decided once by its id, taken
with a lease, then settled (sent, failed, expired) or retried at a later time. What it adds is **order within
a line**: the events of one incident and one target form a line, ordered by `decided_at`, then stage
(trigger < acknowledge < update < resolve), then `seq` (`line_order`). Only the first unsettled event of a
line is ever handed out, so PagerDuty never sees a resolve before its trigger went (or gave up), and Slack
posts arrive in stage order; other incidents and the other target are never held up. An event that was
already handed out before an earlier one of its line was decided cannot be called back; from then on the
earlier one goes first.

How: `due` holds only the events a take may hand out: the first unsettled event of each line (at its own
time: when it was decided, or the time its retry asked for; once leased, the lease's end, so a worker that
dies with a lease simply lets the event fall due again). The events behind it wait outside `due`; settling
(or retrying) the first puts whichever is first then in its place, and an earlier event decided late takes
the place of the one it goes before. A take checks the line once more and drops from `due` whatever is not
first (an event leased before an earlier one of its line was decided), so nothing else is ever handed out.
`attempts` counts hand-outs.

>>> from datetime import UTC, datetime, timedelta
>>> from forewarn.decisions import ResponderEvent
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> def event(stage):
...     return ResponderEvent("INC-1", stage, "pagerduty", {"event_action": stage}, at, at + timedelta(hours=1))
>>> outbox = InMemoryResponderOutbox()
>>> outbox.enqueue([event("resolve"), event("trigger")], at)
['INC-1|resolve|0|pagerduty', 'INC-1|trigger|0|pagerduty']
>>> [e.stage for e in outbox.take(10, at, lease=60)]
['trigger']
>>> outbox.settle("INC-1|trigger|0|pagerduty", "sent", at)
>>> [e.stage for e in outbox.take(10, at, lease=60)], outbox.pending()
(['resolve'], 1)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from forewarn.decisions import ResponderEvent
from forewarn.envelopes import epoch_ms

FINAL_STATES = frozenset({"sent", "failed", "expired"})
"""What `settle` accepts; an event in one of these is never handed out or changed again."""
STAGE_RANK = {"trigger": 0, "acknowledge": 1, "update": 2, "resolve": 3}
ORDER_LEN = 34
"""The length of `line_order`'s text: a line's member in Redis is that text followed by the event id."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OFFSET_US = 10**17  # year 1 to year 9999 in microseconds from 1970, made positive: 18 digits at most
_SEQ_LIMIT = 10**12


def line_order(event: ResponderEvent) -> str:
    """The event's place in its line as text that sorts the same way (Redis sorts a line's members as bytes):
    `decided_at` in microseconds, the stage's rank, then `seq`, all zero-padded.

    >>> from datetime import UTC, datetime, timedelta
    >>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> e = ResponderEvent("INC-1", "update", "slack", {}, at, at + timedelta(hours=1), seq=7)
    >>> line_order(e), len(line_order(e)) == ORDER_LEN
    ('101795183200000000|2|000000000007|', True)
    """
    if event.stage not in STAGE_RANK:
        raise ValueError(f"responder event {event.id}: unknown stage {event.stage!r}")
    if not 0 <= event.seq < _SEQ_LIMIT:
        raise ValueError(f"responder event {event.id}: seq must be between 0 and {_SEQ_LIMIT - 1}")
    if event.decided_at.utcoffset() is None:
        raise ValueError(f"responder event {event.id}: decided_at has no time zone")
    micros = (event.decided_at - _EPOCH) // timedelta(microseconds=1) + _OFFSET_US
    return f"{micros:018d}|{STAGE_RANK[event.stage]}|{event.seq:012d}|"


def check_final(state: str) -> None:
    if state not in FINAL_STATES:
        raise ValueError(f"a responder event settles as one of {sorted(FINAL_STATES)}, not {state!r}")


def lease_ms(lease: float) -> int:
    """A lease in milliseconds, at least one: a taken event is never due again within the same take."""
    return max(1, int(lease * 1000))


@dataclass
class _Entry:
    event: ResponderEvent
    order: str
    state: str = "queued"
    attempts: int = 0
    detail: str = ""
    ready: int = 0
    """Its own due time (decided, or retried to), epoch ms."""
    due: int | None = None
    """When a take may hand it out, epoch ms (`ready`, or its lease's end); None while it is not first in line."""


class InMemoryResponderOutbox:
    """`ResponderOutbox` over dicts; safe to share between threads. Nothing expires: a process's life is short."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lines: dict[tuple[str, str], dict[str, _Entry]] = {}
        """The unsettled events of each (incident, target), by id."""
        self._lock = threading.Lock()

    def enqueue(self, events: Sequence[ResponderEvent], now: datetime) -> list[str]:
        """Queue each event whose id was never seen, due at `now` once it is first in its line; the ids of
        those, in the order given."""
        orders = [line_order(event) for event in events]  # refuse a bad event before queuing any
        at = epoch_ms(now)
        new: list[str] = []
        with self._lock:
            for event, order in zip(events, orders, strict=True):
                if event.id in self._entries:
                    continue
                entry = self._entries[event.id] = _Entry(event, order, ready=at)
                line = self._lines.setdefault((event.incident_id, event.target), {})
                before = self._head(line)
                line[event.id] = entry
                if before is not None and self._head(line) is entry and before.state != "leased":
                    before.due = None  # an earlier event decided late goes first
                self._wake(line)
                new.append(event.id)
        return new

    def take(self, count: int, now: datetime, lease: float) -> list[ResponderEvent]:
        """Up to `count` events due at `now`, oldest due first, each the first unsettled event of its line;
        each is leased (due again at `now` + `lease` seconds) and counts one attempt."""
        if count <= 0:
            return []
        at = epoch_ms(now)
        taken: list[ResponderEvent] = []
        with self._lock:
            due = sorted((entry.due, event_id) for event_id, entry in self._entries.items()
                         if entry.due is not None and entry.due <= at)
            for _, event_id in due:
                if len(taken) >= count:
                    break
                entry = self._entries[event_id]
                if self._head(self._line(entry)) is not entry:
                    # leased before an earlier event of its line was decided: it waits for that one now
                    entry.state, entry.ready, entry.due = "retrying", at, None
                    continue
                entry.state, entry.attempts, entry.due = "leased", entry.attempts + 1, at + lease_ms(lease)
                taken.append(entry.event)
        return taken

    def settle(self, event_id: str, state: str, now: datetime, detail: str = "") -> None:
        """Record a final state (sent, failed, expired); the next event of its line becomes due at its own
        time. An unknown or already settled event is left as it is."""
        check_final(state)
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is None or entry.state in FINAL_STATES:
                return
            entry.state, entry.detail, entry.due = state, detail, None
            line = self._line(entry)
            del line[event_id]
            self._wake(line)

    def retry(self, event_id: str, due: datetime, now: datetime, detail: str = "") -> None:
        """Hand the event out again at `due` (its lease ends); an unknown or settled event is left as it is."""
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is None or entry.state in FINAL_STATES:
                return
            entry.state, entry.detail, entry.ready, entry.due = "retrying", detail, epoch_ms(due), None
            self._wake(self._line(entry))

    def state(self, event_id: str) -> dict[str, str]:
        with self._lock:
            entry = self._entries.get(event_id)
            if entry is None:
                return {}
            return {"state": entry.state, "attempts": str(entry.attempts), "detail": entry.detail}

    def pending(self) -> int:
        with self._lock:
            return sum(len(line) for line in self._lines.values())

    # -- lines (the caller holds the lock) -----------------------------------------------------------

    def _line(self, entry: _Entry) -> dict[str, _Entry]:
        return self._lines[(entry.event.incident_id, entry.event.target)]

    @staticmethod
    def _head(line: dict[str, _Entry]) -> _Entry | None:
        return min(line.values(), key=lambda e: e.order, default=None)

    def _wake(self, line: dict[str, _Entry]) -> None:
        """Make the line's first event due at its own time (a leased one keeps its lease's end)."""
        head = self._head(line)
        if head is not None and head.state != "leased":
            head.due = head.ready
