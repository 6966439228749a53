"""The notification pipeline: dedup against the ledger, send with retries, record.

The ledger is consulted before every send and written after it, so replaying the
same input, or a restart that re-emits an epoch, never sends a message twice.

A provider that refuses our credentials halts its channel for the rest of the run: the
message is released (not recorded), and later ones on that channel are deferred unattempted,
so a restart with fixed credentials sends them all.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from forewarn.interfaces import ContactLog, Ledger, Sender
from forewarn.records import Channel, Message, MessageKind, SendResult

log = logging.getLogger(__name__)

Outcome = Literal["sent", "duplicate", "failed", "deferred", "capped"]


@dataclass(kw_only=True)
class DeliveryTally:
    """The audience and delivery outcomes of one outreach pass, shared by every kind of report."""

    audience_size: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    held: str | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    sent_by_channel: Counter[str] = field(default_factory=Counter)

    def count(self, outcome: Outcome, channel: str) -> None:
        self.outcomes[outcome] += 1
        if outcome == "sent":
            self.sent_by_channel[channel] += 1

    def tally(self) -> dict[str, Any]:
        return {"audience_size": self.audience_size, "excluded": self.excluded, "held": self.held,
                "outcomes": dict(self.outcomes), "sent_by_channel": dict(self.sent_by_channel)}


@dataclass(frozen=True)
class RetryPolicy:
    """Retry retryable failures `attempts` times in all, doubling the wait each time."""

    attempts: int = 3
    backoff_seconds: float = 0.5

    def waits(self) -> list[float]:
        return [self.backoff_seconds * 2**i for i in range(self.attempts - 1)]


@dataclass(frozen=True)
class ContactCap:
    """At most `max_messages` warnings per customer within `window`; all-clears are never capped."""

    log: ContactLog
    max_messages: int
    window: timedelta = timedelta(days=1)

    def allows(self, customer_id: str, at: datetime) -> bool:
        return self.log.count_since(customer_id, at - self.window) < self.max_messages

    def allowed(self, customer_ids: Sequence[str], at: datetime) -> list[bool]:
        """`allows` for many customers, counted in batches."""
        return [n < self.max_messages for n in self.log.counts_since(customer_ids, at - self.window)]


class OptOutRecorder(Protocol):
    """Where a provider's "this recipient unsubscribed" is written back (the customer index)."""

    def record_opt_out(self, customer_id: str, channel: Channel) -> bool: ...


class Deliverer:
    """Delivers messages once each, whatever the number of times it is asked.

    >>> from forewarn.connectors.memory import InMemoryLedger
    >>> from forewarn.records import MessageKey
    >>> class Echo:
    ...     channel = "sms"
    ...     def send(self, message): return SendResult(ok=True, provider_id="x")
    >>> deliver = Deliverer(InMemoryLedger(), {"sms": Echo()})
    >>> msg = Message(MessageKey("INC-1", "CU-1", "warning"), "sms", "+15125550100", "hi")
    >>> deliver.deliver(msg), deliver.deliver(msg)
    ('sent', 'duplicate')
    """

    def __init__(self, ledger: Ledger, senders: Mapping[Channel, Sender], retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, cap: ContactCap | None = None,
                 opt_outs: OptOutRecorder | None = None):
        self.ledger = ledger
        self.senders = dict(senders)
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.cap = cap
        self.opt_outs = opt_outs
        self.halted: dict[Channel, str] = {}
        """Channels whose provider refused our credentials this run, with the reason."""

    def deliver(self, message: Message, at: datetime | None = None) -> Outcome:
        """Dedup → cap → send with retries → record (and an opt-out the provider reports, when
        `opt_outs` is given). `at` is the incident's time, for the cap."""
        sender = self.senders.get(message.channel)
        if sender is None:
            raise ValueError(f"no sender configured for channel {message.channel!r}: add it under outreach.channels")
        if message.channel in self.halted:
            return "deferred"  # not even claimed: the next run, with fixed credentials, sends it
        if not self.ledger.claim(message.key):
            return "duplicate"
        if self._over_cap(message, at):
            self.ledger.release(message.key)  # not sent: a later pass may send it once the cap allows
            return "capped"
        result = self._send_with_retries(sender, message)
        if result.halts_channel:
            self.ledger.release(message.key)
            self._halt(message.channel, result.reason)
            return "deferred"
        if result.ok or not result.retryable:
            self.ledger.record(message.key, message.channel, result)
            if result.ok and self.cap is not None and at is not None and message.key.kind == "warning":
                self.cap.log.add(message.key.customer_id, at, str(message.key))
            if not result.ok:
                log.warning("send failed for %s on %s: %s", message.key, message.channel, result.reason)
            if result.opted_out and self.opt_outs is not None:
                # The provider knows the customer said STOP: the index must know too, so previews and
                # later incidents count them as opted out instead of failing at the provider again.
                self.opt_outs.record_opt_out(message.key.customer_id, message.channel)
            return "sent" if result.ok else "failed"
        # Retries exhausted on a passing failure: free the claim so a later run can send.
        self.ledger.release(message.key)
        log.warning("send deferred for %s on %s: %s", message.key, message.channel, result.reason)
        return "deferred"

    def _halt(self, channel: Channel, reason: str) -> None:
        self.halted[channel] = reason
        # Once per run and channel: the fix is the operator's, one clear line beats one per customer.
        log.error("%s channel halted for this run: %s; its messages are kept and go out after a restart",
                  channel, reason)

    def delivered_to(self, incident_id: str, kind: MessageKind) -> set[str]:
        """The customers this pipeline's ledger records as sent `kind` for the incident (whoever sent it):
        the customers an all-clear or a cancellation goes back to."""
        return self.ledger.recipients(incident_id, kind)

    def _over_cap(self, message: Message, at: datetime | None) -> bool:
        if self.cap is None or at is None or message.key.kind != "warning":
            return False
        return not self.cap.allows(message.key.customer_id, at)

    def _send_with_retries(self, sender: Sender, message: Message) -> SendResult:
        result = sender.send(message)
        for wait in self.retry.waits():
            if result.ok or not result.retryable or result.halts_channel:
                break
            self.sleep(wait)
            result = sender.send(message)
        return result
