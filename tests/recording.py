"""Test parts of our own interfaces: a `Sender` that keeps what would be sent, a clock the test moves, and a
courier that drives the real dispatch stages of a delivery worker in the test's own thread.

The flow only decides (`forewarn.outreach.enqueue.Enqueuer` puts envelopes in an outbox); a delivery
worker sends them (`forewarn.flows.deliver.DeliveryWorker` runs `forewarn.outreach.dispatch.Dispatcher`
on threads). `Courier` runs the same `Dispatcher` on the same outbox without the threads, so a test
says exactly when the workers run and how much time has passed: a retry goes when its backoff is over,
a message deferred to the morning goes in the morning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from forewarn.flows.delivery_parts import send_functions
from forewarn.interfaces import DeliveryQueue, Reconciler, Sender, Suppressions
from forewarn.outreach.breaker import Backoff, Breaker
from forewarn.outreach.dispatch import Channels, Dispatcher, OptOutRecorder
from forewarn.outreach.withhold import Withholding
from forewarn.records import Channel, Message, SendResult

T0 = datetime(2026, 11, 17, 14, 15, tzinfo=UTC)


class Outbox:
    """Keeps what would be sent on one channel; every send succeeds."""

    def __init__(self, channel: Channel) -> None:
        self.channel: Channel = channel
        self.sent: list[Message] = []
        self.html: list[str | None] = []

    def send(self, message: Message, *, status_callback: str | None = None, html: str | None = None) -> SendResult:
        self.sent.append(message)
        self.html.append(html)
        return SendResult(ok=True, provider_id=f"x-{len(self.sent)}")


class Clock:
    """Wall time for the enqueuer and the courier, moved by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


class Courier:
    """A delivery worker's dispatch stages over `queue`, run when the test calls `run`.

    The jitter is fixed at its ceiling (`rand` = 1), so a retry's backoff is exactly base × 2^(n-1).
    """

    def __init__(self, queue: DeliveryQueue, senders: Mapping[Channel, Sender], clock: Clock, *,
                 backoff: Backoff | None = None, breakers: dict[Channel, Breaker] | None = None,
                 reconcilers: Mapping[Channel, Reconciler] | None = None, suppressions: Suppressions | None = None,
                 opt_outs: OptOutRecorder | None = None, withholding: Withholding | None = None) -> None:
        self.queue = queue
        self.clock = clock
        self.channels: tuple[Channel, ...] = tuple(senders)
        self.dispatcher = Dispatcher(queue, Channels(send_functions(senders), dict(reconcilers or {}),
                                                     breakers if breakers is not None else {}),
                                     backoff, suppressions=suppressions, opt_outs=opt_outs, clock=clock,
                                     rand=lambda: 1.0, withholding=withholding)

    def run(self, rounds: int = 100) -> Counter[str]:
        """Move what is due into the queues, then hand every queued message to the dispatcher, until none is
        left at this moment; how many of each outcome."""
        outcomes: Counter[str] = Counter()
        for _ in range(rounds):
            self.queue.promote_due(self.clock())
            leases = [lease for channel in self.channels
                      for lease in self.queue.take(channel, "courier", 1_000, 0.001)]
            if not leases:
                return outcomes
            for lease in leases:
                outcomes[self.dispatcher.handle(lease)] += 1
        raise AssertionError(f"the outbox never emptied in {rounds} rounds: {outcomes}")

    def run_until_settled(self, step: timedelta, most: int = 1_000) -> Counter[str]:
        """`run`, then move the clock by `step` and run again while messages wait for a time (retries)."""
        outcomes = self.run()
        for _ in range(most):
            if self.queue.scheduled() == 0:
                return outcomes
            self.clock.advance(step)
            outcomes += self.run()
        raise AssertionError(f"messages still scheduled after {most} steps of {step}: {outcomes}")
