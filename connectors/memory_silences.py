"""Operators' silences in process (the demo's twin of `redis_silences`), and the rules both stores share.

A silence is kept until it has been over for `keep` (30 days by default), so `forewarn silence list
--all` can still show what muted an incident last week; `all()` drops the older ones as it reads.

>>> from datetime import UTC, datetime, timedelta
>>> from forewarn.decisions import Silence
>>> now = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> store = InMemorySilenceStore(clock=lambda: now)
>>> store.add(Silence("S-1", (("topic", "wifi_drops"),), now, now + timedelta(hours=4), "maintenance", "ana"))
>>> [s.id for s in store.active(now)], store.expire("S-1", now + timedelta(hours=1))
(['S-1'], True)
>>> store.active(now + timedelta(hours=2)), store.expire("S-1", now + timedelta(hours=2))
([], False)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from forewarn.decisions import Silence

KEEP = timedelta(days=30)
"""How long an ended silence stays listed before a store drops it."""


def check_silence(silence: Silence) -> None:
    """Refuse a silence a store could not compare or that could never be active (ValueError)."""
    for name in ("starts_at", "ends_at"):
        if getattr(silence, name).utcoffset() is None:
            raise ValueError(f"silence {silence.id}: {name} has no time zone")
    if silence.ends_at <= silence.starts_at:
        raise ValueError(f"silence {silence.id}: it ends ({silence.ends_at.isoformat()}) "
                         f"before it starts ({silence.starts_at.isoformat()})")
    if not silence.matchers:
        raise ValueError(f"silence {silence.id}: no matcher (it would silence every incident)")


def ended(silence: Silence, at: datetime) -> bool:
    """Whether the silence is over at `at` (an expired pending one too: its end is then before its start)."""
    return silence.ends_at <= at


def by_start(silences: Iterable[Silence]) -> list[Silence]:
    """The order every store lists in: by start, then by id so equal starts list the same way each time."""
    return sorted(silences, key=lambda s: (s.starts_at, s.id))


def ended_at(silence: Silence, at: datetime) -> Silence | None:
    """The silence rewritten to end at `at`, or None when it has already ended (nothing to expire)."""
    if at.utcoffset() is None:
        raise ValueError(f"expiring silence {silence.id}: {at.isoformat()} has no time zone")
    return None if ended(silence, at) else replace(silence, ends_at=at)


class InMemorySilenceStore:
    """`SilenceStore` over a dict by id; safe to share between threads. `add` replaces a silence of the same id."""

    def __init__(self, keep: timedelta = KEEP, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.keep = keep
        self.clock = clock
        self._silences: dict[str, Silence] = {}
        self._lock = threading.Lock()

    def add(self, silence: Silence) -> None:
        check_silence(silence)
        with self._lock:
            self._silences[silence.id] = silence

    def all(self) -> list[Silence]:
        """Every silence, by start; those that ended more than `keep` ago are dropped first."""
        horizon = self.clock() - self.keep
        with self._lock:
            for old in [s.id for s in self._silences.values() if ended(s, horizon)]:
                del self._silences[old]
            return by_start(self._silences.values())

    def active(self, at: datetime) -> list[Silence]:
        return [s for s in self.all() if s.active(at)]

    def expire(self, silence_id: str, at: datetime) -> bool:
        with self._lock:
            found = self._silences.get(silence_id)
            changed = None if found is None else ended_at(found, at)
            if changed is None:
                return False
            self._silences[silence_id] = changed
            return True
