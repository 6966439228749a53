"""Counting a case once: the ids already counted, remembered for a horizon of event time.

A case redelivered (a producer's retry, a file replayed twice, a topic re-read) carries the
id it had the first time. `SeenIds` remembers when each id was counted; a case whose id was
counted within `horizon` of its own time is a duplicate. Memory stays bounded two ways:
ids older than `horizon` behind the newest time seen are forgotten, and at most `max_ids`
are kept (the oldest counted are forgotten first, so a flood of fresh ids cannot grow it).
An id forgotten by the cap counts again if redelivered: the cap trades memory for recall.

Per-key state of a stateful step (deep-copied at snapshots, pickled by recovery): a plain
dict of id -> time, no closures.

>>> from datetime import UTC, datetime, timedelta
>>> t = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> seen = SeenIds(timedelta(days=1), max_ids=2)
>>> seen.first_count("C-1", t), seen.first_count("C-1", t + timedelta(hours=1))
(None, datetime.datetime(2026, 11, 20, 14, 0, tzinfo=datetime.timezone.utc))
>>> seen.first_count("C-1", t + timedelta(days=2))  # beyond the horizon: a new case
>>> duplicate_reason(t, timedelta(days=1))
'duplicate: case id already counted at 2026-11-20T14:00:00+00:00 (within detection.dedup_horizon 1d)'
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from forewarn.durations import format_duration

_FIRST = datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class SeenIds:
    """The case ids counted within `horizon` (at most `max_ids`), each with the event time it was counted at."""

    horizon: timedelta
    max_ids: int
    seen: OrderedDict[str, datetime] = field(default_factory=OrderedDict)
    """id -> counted at, in the order counted (the front is forgotten first). Ordered, not a plain dict:
    a dict that keeps losing its front makes finding the front slower with every deletion."""
    latest: datetime | None = None
    """The newest event time seen: what "older than the horizon" is measured from."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SeenIds:
        # Ids and datetimes are immutable: copying the dict is a deep copy, at a fraction of deepcopy's cost.
        return SeenIds(self.horizon, self.max_ids, self.seen.copy(), self.latest)

    def __post_init__(self) -> None:
        if not isinstance(self.seen, OrderedDict):  # state snapshotted before the order was kept this way
            self.seen = OrderedDict(self.seen)

    def first_count(self, case_id: str, ts: datetime) -> datetime | None:
        """None when the case counts (it is remembered now); else when its id was already counted."""
        self._forget_before(ts)
        counted = self.seen.get(case_id)
        if counted is not None and abs(ts - counted) <= self.horizon:
            return counted
        self.seen[case_id] = ts
        self.seen.move_to_end(case_id)  # counted again: it moves to the back
        while len(self.seen) > self.max_ids:
            self.seen.popitem(last=False)
        return None

    def _forget_before(self, ts: datetime) -> None:
        """Forget, from the front, ids counted more than `horizon` before the newest time seen."""
        if self.latest is None or ts > self.latest:
            self.latest = ts
        try:
            cutoff = self.latest - self.horizon
        except OverflowError:  # a time near year 1: nothing is that old
            cutoff = _FIRST
        seen = self.seen
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= cutoff:
                break  # later ids counted out of order stay until they reach the front (the cap bounds them)
            seen.popitem(last=False)


def duplicate_reason(counted: datetime, horizon: timedelta) -> str:
    """Why a case is a dead letter rather than counted a second time."""
    return (f"duplicate: case id already counted at {counted.isoformat()} "
            f"(within detection.dedup_horizon {format_duration(horizon)})")
