"""One message through the delivery stages: begin → reconcile → deadline → opt-out → send → settle.

A worker (`forewarn.flows.deliver`) takes leases from the outbox and hands each to `Dispatcher.handle`,
which never sleeps: a retryable failure is rescheduled in the outbox with a backoff, a paused
channel puts its message back untried, and the outbox's states make every step safe to repeat after
a crash. The stages, in order:

1. the channel's breaker is open → put back untried, due when it may probe;
2. `begin` (in the outbox, atomically): settled already → nothing; an all-clear whose warning never
   went → superseded or skipped; an earlier try may have reached the provider → reconcile;
3. reconcile: the provider's own log has it → sent, without sending again (first: a message the
   provider took is recorded sent even when its deadline or an opt-out came after that try);
4. past its deadline → expired;
5. the incident no longer messages customers (held or silenced since it was queued) → withheld; a warning an
   overlapping incident's warning carries → covered once that one went (waiting while it may still go);
   the address said STOP (or unsubscribed), or the customer opted out in the index since → opted out;
6. send, then: accepted → sent; final error → failed (an opt-out is written back); retryable → retry
   at backoff, or expired when the backoff passes the deadline; refused credentials → the breaker
   holds the channel, the message goes back untried.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from forewarn.envelopes import Envelope, Lease
from forewarn.interfaces import DeliveryQueue, Reconciler, Suppressions
from forewarn.outreach.breaker import Backoff, Breaker
from forewarn.outreach.withhold import Withholding
from forewarn.records import Channel, Customer, SendResult

log = logging.getLogger(__name__)

Outcome = Literal["sent", "reconciled", "failed", "retrying", "expired", "opted_out", "paused", "done", "waiting",
                  "superseded", "skipped", "withheld", "covered"]

CHANNEL_HOLD = timedelta(minutes=5)
"""How long refused credentials pause a channel before one probe tries again."""
WAIT_FOR_WARNING = timedelta(seconds=5)
"""How long an all-clear waits, each time, while its warning is queued, retrying or being sent."""


class SendEnvelope(Protocol):
    """How a worker sends one envelope on a channel (the seam to Twilio, SMTP or an outbox file)."""

    def __call__(self, envelope: Envelope, status_callback: str | None) -> SendResult: ...


class OptOutRecorder(Protocol):
    """The customer index as the dispatcher sees it: an opt-out read before each send, and written back."""

    def record_opt_out(self, customer_id: str, channel: Channel) -> bool: ...

    def get_many(self, ids: Sequence[str]) -> Sequence[Customer | None]: ...


@dataclass
class Channels:
    """What a worker sends with, per channel: the send function, the lookup for reconciling, the breaker."""

    send: Mapping[Channel, SendEnvelope]
    reconcilers: Mapping[Channel, Reconciler] = field(default_factory=dict)
    breakers: dict[Channel, Breaker] = field(default_factory=dict)

    def breaker(self, channel: Channel) -> Breaker:
        return self.breakers.setdefault(channel, Breaker())


class Dispatcher:
    """Settles one leased message per `handle` call; every outcome is counted in `counts`.

    Parameters
    ----------
    queue
        The outbox's delivering side.
    channels
        Send functions, reconcilers and breakers by channel.
    backoff
        Retry waits.
    suppressions
        Addresses that said STOP; None: nobody is suppressed.
    opt_outs
        The customer index: an opt-out made after the decision is honoured, and a provider's "unsubscribed"
        is written back.
    status_callback
        The status-callback URL for a message id (SMS); None asks for none.
    clock, rand
        Injected time and randomness.
    """

    def __init__(self, queue: DeliveryQueue, channels: Channels, backoff: Backoff | None = None, *,
                 suppressions: Suppressions | None = None, opt_outs: OptOutRecorder | None = None,
                 status_callback: Callable[[str], str | None] | None = None,
                 withholding: Withholding | None = None,
                 clock: Callable[[], datetime], rand: Callable[[], float] = random.random) -> None:
        self.queue = queue
        self.channels = channels
        self.backoff = backoff or Backoff()
        self.suppressions = suppressions
        self.opt_outs = opt_outs
        self.status_callback = status_callback
        self.withholding = withholding
        self.clock = clock
        self.rand = rand
        self.on_outcome: Callable[[Channel, Outcome], None] = lambda channel, outcome: None

    def handle(self, lease: Lease) -> Outcome:
        outcome = self._handle(lease)
        self.on_outcome(lease.channel, outcome)
        return outcome

    def _handle(self, lease: Lease) -> Outcome:
        now = self.clock()
        breaker = self.channels.breaker(lease.channel)
        if not breaker.allows(now):
            self.queue.release(lease, breaker.reopens_at(now), now, f"{lease.channel} paused: breaker open")
            return "paused"
        try:
            outcome = self._before_send(lease, now)
            if isinstance(outcome, str):
                breaker.cancel_probe()  # nothing reached the provider: the next message probes instead
                return outcome
            envelope, attempts = outcome
            return self._send(lease, envelope, attempts, breaker)
        except BaseException:
            # an unexpected error (the lease stays pending and is reclaimed): a probe it held must not
            # keep the channel shut for good
            breaker.cancel_probe()
            raise

    def _before_send(self, lease: Lease, now: datetime) -> Outcome | tuple[Envelope, int]:
        begun = self.queue.begin(lease, now)
        if begun.verdict == "wait":
            self.queue.release(lease, now + WAIT_FOR_WARNING, now, "waiting for the warning being sent", quiet=True)
            return "waiting"
        if begun.envelope is None:
            return {"supersede": "superseded", "skip": "skipped"}.get(begun.verdict, "done")  # type: ignore[return-value]
        envelope = begun.envelope
        # an earlier try may have reached the provider: its log is the truth, whatever came since
        if begun.verdict == "reconcile" and (found := self._reconcile(lease, envelope, begun.first_attempt_at)):
            return found
        if now >= envelope.expires_at:
            self.queue.settle(lease, "expired", now, SendResult(ok=False, reason="deadline passed before it went"))
            return "expired"
        if self.withholding is not None and (why := self.withholding.reason(envelope.key.incident_id,
                                                                             envelope.key.kind)) is not None:
            self.queue.settle(lease, "withheld", now, SendResult(ok=False, reason=why))
            return "withheld"
        if self.withholding is not None and (carried := self.withholding.carried_by(envelope.key)) is not None:
            verdict, by = carried
            if verdict == "wait":
                self.queue.release(lease, now + WAIT_FOR_WARNING, now, f"waiting for the warning of {by} carrying it",
                                   quiet=True)
                return "waiting"
            self.queue.settle(lease, "covered", now, SendResult(ok=False, reason=f"carried by the warning of {by}"))
            return "covered"
        if self._opted_out(envelope):
            self.queue.settle(lease, "opted_out", now, SendResult(ok=False, reason="the recipient opted out"))
            return "opted_out"
        return envelope, begun.attempts

    def _opted_out(self, envelope: Envelope) -> bool:
        """STOP or an unsubscribe for the address, or an opt-out in the index that came after the decision."""
        if self.suppressions is not None and self.suppressions.is_suppressed(envelope.channel, envelope.message.to):
            return True
        if self.opt_outs is None:
            return False
        customer = self.opt_outs.get_many([envelope.key.customer_id])[0]
        return customer is not None and customer.opted_out(envelope.channel)

    def _reconcile(self, lease: Lease, envelope: Envelope, since: datetime | None) -> Outcome | None:
        reconciler = self.channels.reconcilers.get(envelope.channel)
        if reconciler is None or since is None:
            return None  # email: at-least-once, with the same Message-ID
        found = reconciler.find_sent(envelope.message, since)  # the lookup allows for clock skew itself
        if found is None:
            return None
        now = self.clock()
        if found.ok:
            self.queue.settle(lease, "sent", now, SendResult(ok=True, provider_id=found.provider_id,
                                                             reason="found in the provider's log"))
            return "reconciled"
        # The lookup itself failed: we cannot know, so we do not send; the message stays uncertain.
        due = now + timedelta(seconds=self.backoff.wait(1, None, self.rand))
        if due >= envelope.expires_at:
            self.queue.settle(lease, "expired", now, SendResult(
                ok=False, reason=f"deadline passed; the provider's log could not be read: {found.reason}"))
            return "expired"
        self.queue.retry(lease, due, now, SendResult(ok=False, retryable=True, uncertain=True, reason=found.reason))
        return "retrying"

    def _send(self, lease: Lease, envelope: Envelope, attempts: int, breaker: Breaker) -> Outcome:
        callback = self.status_callback(envelope.id) if self.status_callback and envelope.channel == "sms" else None
        result = self.channels.send[envelope.channel](envelope, callback)
        now = self.clock()
        if result.ok:
            breaker.succeeded()
            self.queue.settle(lease, "sent", now, result)
            return "sent"
        if result.halts_channel:
            if breaker.failed(now, hold=CHANNEL_HOLD):
                log.error("%s channel paused: %s; its messages wait in the outbox", envelope.channel, result.reason)
            self.queue.release(lease, breaker.reopens_at(now), now, result.reason)
            return "paused"
        if not result.retryable:
            breaker.succeeded()  # the provider answered: it is up
            self.queue.settle(lease, "failed", now, result)
            self._write_back_opt_out(envelope, result)
            log.warning("send failed for %s on %s: %s", envelope.key, envelope.channel, result.reason)
            return "failed"
        if breaker.failed(now):
            log.warning("%s breaker open after repeated failures (%s); messages wait", envelope.channel,
                        result.reason)
        due = now + timedelta(seconds=self.backoff.wait(attempts, result.retry_after, self.rand))
        if due >= envelope.expires_at:
            self.queue.settle(lease, "expired", now, SendResult(ok=False, reason=f"deadline: {result.reason}"))
            return "expired"
        self.queue.retry(lease, due, now, result)
        return "retrying"

    def _write_back_opt_out(self, envelope: Envelope, result: SendResult) -> None:
        if not result.opted_out:
            return
        if self.suppressions is not None:
            self.suppressions.suppress(envelope.channel, envelope.message.to)
        if self.opt_outs is not None:
            self.opt_outs.record_opt_out(envelope.key.customer_id, envelope.channel)
