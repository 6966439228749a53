"""The delivery worker's loop: drain the outbox with bounded concurrency per channel, paced per sender.

One reader thread per channel takes leases from the outbox (never more than it has free slots and,
when the channel is paced, rate slots for), paces them through the shared rate limiter, and hands
each to a pool of that channel's size; a slow or dead provider on one channel never holds up the
other. A housekeeping thread moves due messages (quiet hours, retries) back into the queues and
reclaims messages a crashed worker left unsettled. Any number of workers share one outbox.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from forewarn.envelopes import Lease
from forewarn.interfaces import DeliveryQueue, RateLimiter
from forewarn.outreach.dispatch import Dispatcher
from forewarn.records import Channel

log = logging.getLogger(__name__)


def consumer_name() -> str:
    """A name unique to this worker process among the consumers of the outbox's groups."""
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 10_000}"


@dataclass(frozen=True)
class Pace:
    """A sender identity's shared rate (messages per second); None: unpaced."""

    identity: str
    rate: float | None


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: Mapping[Channel, int]
    batch: int = 100
    reclaim_after: float = 60.0
    housekeeping_every: float = 0.5
    block: float = 0.5


class DeliveryWorker:
    """Drains `queue` through `dispatcher` until `stop()`; `run()` blocks, `start()` runs it in threads."""

    def __init__(self, queue: DeliveryQueue, dispatcher: Dispatcher, options: WorkerOptions,
                 paces: Mapping[Channel, Pace] | None = None, limiter: RateLimiter | None = None,
                 consumer: str | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.queue = queue
        self.dispatcher = dispatcher
        self.options = options
        self.paces = dict(paces or {})
        self.limiter = limiter
        self.consumer = consumer or consumer_name()
        self.clock = clock
        self.channels: tuple[Channel, ...] = tuple(c for c in options.concurrency if c in dispatcher.channels.send)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pools = {c: ThreadPoolExecutor(options.concurrency[c], thread_name_prefix=f"deliver-{c}")
                       for c in self.channels}
        self._slots = {c: threading.BoundedSemaphore(options.concurrency[c]) for c in self.channels}
        self._in_flight = 0
        self._held: dict[tuple[str, int, str], Lease] = {}  # by (channel, shard, entry): the leases this worker holds
        self._reclaimed: dict[Channel, deque[Lease]] = {c: deque() for c in self.channels}
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> DeliveryWorker:
        targets: list[tuple[str, Callable[[], None]]] = [("deliver-housekeeping", self._housekeeping)]
        targets += [(f"deliver-read-{c}", lambda c=c: self._read(c)) for c in self.channels]  # type: ignore[misc]
        for name, target in targets:
            thread = threading.Thread(target=self._guard(target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def run(self) -> None:
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        for pool in self._pools.values():
            pool.shutdown(wait=True)

    def idle(self) -> bool:
        """Nothing queued, leased or in flight (deferred messages may still wait for their time)."""
        with self._lock:
            busy = self._in_flight
        return busy == 0 and all(self.queue.backlog(c) == 0 for c in self.channels)

    def drain(self, timeout: float = 60.0, settle_for: float = 0.2, soon: timedelta = timedelta(seconds=60)) -> bool:
        """Wait until the queues are empty, nothing is in flight and nothing is scheduled within `soon` (demo,
        replay, tests); a message deferred to a customer's morning stays in the outbox for a live worker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._drained(soon):
                time.sleep(settle_for)  # a retry or fallback may be just about to be queued
                if self._drained(soon):
                    return True
            time.sleep(0.05)
        return False

    def _drained(self, soon: timedelta) -> bool:
        return self.idle() and self.queue.scheduled(before=self.clock() + soon) == 0

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            while not self._stop.is_set():
                try:
                    target()
                    return
                except Exception:  # a Redis blip must not end the worker: log, wait, go on
                    log.exception("delivery worker loop failed; retrying in 1s")
                    self._stop.wait(1.0)
        return guarded

    # -- the loops ---------------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        """Never paces and never sends: a rate wait or a slow provider must not hold up the promotions, the
        reclaims, or the touches that keep this worker's slow sends from being reclaimed by another."""
        while not self._stop.is_set():
            with self._lock:
                held = list(self._held.values())
            if held:
                self.queue.touch(held, self.consumer)
            self.queue.promote_due(self.clock())
            for channel in self.channels:
                with self._lock:
                    free = self._free(channel) - len(self._reclaimed[channel])
                if free > 0:
                    reclaimed = self.queue.reclaim(channel, self.consumer, self.options.reclaim_after, free)
                    # a lease of ours still being handled (a slow send) is not handed out a second time
                    self._hold([lease for lease in reclaimed if not self._holds(lease)], self._reclaimed[channel])
            self._stop.wait(self.options.housekeeping_every)

    def _read(self, channel: Channel) -> None:
        breaker = self.dispatcher.channels.breaker(channel)
        while not self._stop.is_set():
            now = self.clock()
            if breaker.resting(now):  # leave the messages in the stream while the provider rests
                self._stop.wait(min(1.0, max(0.05, (breaker.reopens_at(now) - now).total_seconds())))
                continue
            free = self._free(channel)
            if free == 0:
                self._stop.wait(0.01)
                continue
            pace = self.paces.get(channel)
            count = min(self.options.batch, free, max(1, int(pace.rate)) if pace and pace.rate else free)
            if breaker.state(now) != "closed":
                count = 1  # half-open: one message probes the provider
            leases = self._take_reclaimed(channel, count)
            if not leases:
                leases = self._hold(self.queue.take(channel, self.consumer, count, self.options.block))
            self._dispatch(leases, channel)

    def _take_reclaimed(self, channel: Channel, count: int) -> list[Lease]:
        with self._lock:
            waiting = self._reclaimed[channel]
            return [waiting.popleft() for _ in range(min(count, len(waiting)))]

    def _hold(self, leases: list[Lease], into: deque[Lease] | None = None) -> list[Lease]:
        with self._lock:
            self._held.update(((lease.channel, lease.shard, lease.entry_id), lease) for lease in leases)
            if into is not None:
                into.extend(leases)
        return leases

    def _dispatch(self, leases: list[Lease], channel: Channel) -> None:
        """Pace and hand each lease to the channel's pool; once stopping, put the rest back untried."""
        pace = self.paces.get(channel)
        submitted = 0
        try:
            for lease in leases:
                if not self._wait_for_slot(pace):
                    now = self.clock()
                    for rest in leases[submitted:]:
                        self.queue.release(rest, now, now, "the worker stopped before sending it")
                    return
                self._submit(lease)
                submitted += 1
        finally:
            for rest in leases[submitted:]:  # not handed to the pool: reclaimable again (here too)
                self._let_go(rest)

    def _holds(self, lease: Lease) -> bool:
        with self._lock:
            return (lease.channel, lease.shard, lease.entry_id) in self._held

    def _let_go(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop((lease.channel, lease.shard, lease.entry_id), None)

    def _wait_for_slot(self, pace: Pace | None) -> bool:
        """Wait for the pace's next slot; False when the worker stops first."""
        if pace is None or pace.rate is None or self.limiter is None:
            return True
        while not self._stop.is_set():
            wait = self.limiter.acquire(pace.identity, pace.rate, time.time())
            if wait <= 0:
                return True
            time.sleep(wait)
        return False

    def _free(self, channel: Channel) -> int:
        return self._slots[channel]._value  # type: ignore[attr-defined]  # a peek; acquire is what bounds

    def _submit(self, lease: Lease) -> None:
        self._slots[lease.channel].acquire()
        with self._lock:
            self._in_flight += 1
        self._pools[lease.channel].submit(self._handle, lease)

    def _handle(self, lease: Lease) -> None:
        try:
            self.dispatcher.handle(lease)
        except Exception:  # the lease stays pending: another worker (or this one) reclaims it later
            log.exception("delivery of one message failed unexpectedly; it will be reclaimed")
        finally:
            with self._lock:
                self._in_flight -= 1
                self._held.pop((lease.channel, lease.shard, lease.entry_id), None)
            self._slots[lease.channel].release()
