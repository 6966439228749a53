"""Circuit breakers and retry backoff for the delivery workers: time is always passed in.

A breaker opens after `failures` retryable failures in a row on its channel and pauses the channel
for `cooldown`; then one probe goes out (half-open): a success closes it, a failure opens it again
for twice as long (up to `max_cooldown`). While open, messages stay queued; none is lost.

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 11, 20, tzinfo=UTC)
>>> breaker = Breaker(failures=2, cooldown=timedelta(seconds=10))
>>> breaker.failed(t0), breaker.allows(t0)
(False, True)
>>> breaker.failed(t0), breaker.allows(t0), breaker.state(t0)
(True, False, 'open')
>>> breaker.allows(t0 + timedelta(seconds=10)), breaker.allows(t0 + timedelta(seconds=10))
(True, False)
>>> breaker.succeeded(); breaker.state(t0)
'closed'
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal


@dataclass
class Breaker:
    """One channel's circuit breaker (per worker process)."""

    failures: int = 5
    cooldown: timedelta = timedelta(seconds=30)
    max_cooldown: timedelta = timedelta(minutes=10)
    _in_a_row: int = 0
    _open_until: datetime | None = None
    _current: timedelta | None = None
    _probing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allows(self, now: datetime) -> bool:
        """Whether a message may try the provider now (once open: one probe after the cooldown)."""
        with self._lock:
            if self._open_until is None:
                return True
            if now < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def resting(self, now: datetime) -> bool:
        """Open, or half-open with its probe still out: no message should be taken for the provider now."""
        with self._lock:
            return self._open_until is not None and (now < self._open_until or self._probing)

    def state(self, now: datetime) -> Literal["closed", "open", "half-open"]:
        with self._lock:
            if self._open_until is None:
                return "closed"
            return "open" if now < self._open_until else "half-open"

    def reopens_at(self, now: datetime) -> datetime:
        with self._lock:
            return self._open_until if self._open_until and self._open_until > now else now

    def cancel_probe(self) -> None:
        """The probe `allows` granted never reached the provider: let the next message probe."""
        with self._lock:
            self._probing = False

    def succeeded(self) -> None:
        with self._lock:
            self._in_a_row, self._open_until, self._current, self._probing = 0, None, None, False

    def failed(self, now: datetime, hold: timedelta | None = None) -> bool:
        """Count a retryable failure; `hold` opens the breaker at once for that long (refused credentials).
        True when this failure opened (or reopened) it."""
        with self._lock:
            self._in_a_row += 1
            if hold is not None:
                self._current = hold
            elif self._probing:  # the probe failed: rest twice as long
                self._current = min(self.max_cooldown, self._current * 2) if self._current else self.cooldown
            elif self._open_until is not None or self._in_a_row < self.failures:
                # already open (a send that started before it opened failed too): neither longer nor again
                return False
            else:
                self._current = self.cooldown
            self._open_until, self._probing = now + self._current, False
            return True


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, at least what the provider asked for (Retry-After).

    >>> backoff = Backoff(timedelta(seconds=1), timedelta(seconds=60))
    >>> [backoff.wait(n, None, lambda: 1.0) for n in (1, 2, 3, 10)]
    [1.0, 2.0, 4.0, 60.0]
    >>> backoff.wait(1, 30.0, lambda: 0.0)
    30.0
    """

    base: timedelta = timedelta(seconds=1)
    most: timedelta = timedelta(minutes=5)

    def wait(self, attempts: int, retry_after: float | None, rand: object = random.random) -> float:
        """Seconds before attempt `attempts + 1`: between half and all of base × 2^(attempts-1)."""
        ceiling = min(self.most.total_seconds(), self.base.total_seconds() * 2 ** max(0, attempts - 1))
        jittered = ceiling * (0.5 + 0.5 * rand())  # type: ignore[operator]
        return max(jittered, retry_after or 0.0)
