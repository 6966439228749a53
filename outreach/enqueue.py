"""From recipients to decided messages in the outbox: cap → render → quiet hours → enqueue.

Shared by incident and hazard outreach. Nothing here talks to a provider: the outbox keeps each
message until a delivery worker sends it, and the report says how many were queued.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from forewarn.decisions import SeverityLevel, severity_at_least
from forewarn.envelopes import Envelope, message_id, reference
from forewarn.interfaces import ContactLog, Outbox, Rendered
from forewarn.outreach.audience import Recipient
from forewarn.outreach.policy import QuietHours
from forewarn.records import Channel, Customer, Message, MessageKey, MessageKind

Outcome = Literal["enqueued", "deferred", "duplicate", "capped", "held_out"]


@dataclass(kw_only=True)
class DeliveryTally:
    """The audience of one outreach pass and what became of it in the outbox."""

    audience_size: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    held: str | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    enqueued_by_channel: Counter[str] = field(default_factory=Counter)

    def count(self, outcome: Outcome, channel: str, n: int = 1) -> None:
        self.outcomes[outcome] += n
        if outcome in ("enqueued", "deferred"):
            self.enqueued_by_channel[channel] += n

    def tally(self) -> dict[str, Any]:
        return {"audience_size": self.audience_size, "excluded": self.excluded, "held": self.held,
                "outcomes": dict(self.outcomes), "enqueued_by_channel": dict(self.enqueued_by_channel)}


@dataclass(frozen=True)
class ContactCap:
    """Each customer's budget of warnings across incidents: at most `max_messages` within `window` (a day)
    and `per_week` within seven days; all-clears are never counted, and incidents of `bypass_from`
    severity or worse (safety) pass.

    >>> from datetime import UTC
    >>> from forewarn.connectors.memory import InMemoryContactLog
    >>> log, at = InMemoryContactLog(), datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> for days in (1, 2, 3):
    ...     log.add("CU-1", at - timedelta(days=days), f"INC-{days}|CU-1|warning")
    >>> cap = ContactCap(log, max_messages=2, per_week=3, bypass_from="critical")
    >>> cap.allowed(["CU-1", "CU-2"], at), cap.allowed(["CU-1"], at, severity="critical")
    ([False, True], [True])
    """

    log: ContactLog
    max_messages: int | None = None
    window: timedelta = timedelta(days=1)
    per_week: int | None = None
    bypass_from: SeverityLevel | None = None

    def allows(self, customer_id: str, at: datetime, severity: SeverityLevel | None = None) -> bool:
        return self.allowed([customer_id], at, severity)[0]

    def allowed(self, customer_ids: Sequence[str], at: datetime, severity: SeverityLevel | None = None) -> list[bool]:
        """`allows` for many customers, counted in batches (one pass per limit)."""
        verdicts = [True] * len(customer_ids)
        if severity is not None and self.bypass_from is not None and severity_at_least(severity, self.bypass_from):
            return verdicts
        for most, window in ((self.max_messages, self.window), (self.per_week, timedelta(days=7))):
            if most is None:
                continue
            counts = self.log.counts_since(customer_ids, at - window)
            verdicts = [ok and n < most for ok, n in zip(verdicts, counts, strict=True)]
        return verdicts

    @property
    def limits(self) -> bool:
        """Whether any limit is set (a cap without one need not count anything)."""
        return self.max_messages is not None or self.per_week is not None


RenderFor = Callable[[Customer, Channel], tuple[Rendered, str | None]]
"""Renders one customer's message on a channel: the text (and subject) and, for email, the HTML."""


@dataclass
class Enqueuer:
    """Turns one pass's recipients into envelopes and decides them in the outbox.

    Parameters
    ----------
    outbox
        Where decided messages wait for a delivery worker.
    deadline
        How long after its decision (or its quiet-hours morning) a message is still worth sending.
    quiet
        Recipients' local night: an SMS then waits for their morning, unless the pass is urgent.
    cap
        The per-customer daily cap on warnings.
    clock
        Wall time, for deadlines.
    """

    outbox: Outbox
    channels: tuple[Channel, ...] = ("sms", "email")
    """The channels a worker sends on: a recipient preferring another is left out (counted), never queued to wait
    for a sender that does not exist; an SMS gets an email fallback only when email is one of them."""
    deadline: timedelta = timedelta(hours=6)
    quiet: QuietHours | None = None
    cap: ContactCap | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    after_enqueue: Callable[[], object] | None = None
    """Called after each pass. A replay sets it to wait for its in-process worker: replayed days pass in
    seconds, and an all-clear decided before the warnings went would drop them (as it should live, when the
    problem is fixed before they could go)."""

    def enqueue(self, tally: DeliveryTally, incident_id: str, kind: MessageKind, recipients: Sequence[Recipient[Any]],
                render: RenderFor, decided_at: datetime, urgent: bool = False,
                severity: SeverityLevel | None = None, uncapped: Collection[str] = ()) -> set[str]:
        """Decide the recipients' messages; return the customers whose message was new (not decided before).
        `uncapped` customers pass the budget: their message replaces one it already counted."""
        recipients = self._capped(tally, kind, self._on_channels(tally, recipients), decided_at, severity, uncapped)
        now = self.clock()
        envelopes = [self._envelope(incident_id, kind, r, render, decided_at, now, urgent) for r in recipients]
        new = set(self.outbox.enqueue(envelopes, now))
        fresh: set[str] = set()
        for envelope in envelopes:
            if envelope.id not in new:
                tally.count("duplicate", envelope.channel)
                continue
            fresh.add(envelope.key.customer_id)
            deferred = envelope.not_before is not None and envelope.not_before > now and not urgent
            tally.count("deferred" if deferred else "enqueued", envelope.channel)
            if self.cap is not None and kind != "resolved" and envelope.key.customer_id not in uncapped:
                self.cap.log.add(envelope.key.customer_id, decided_at, str(envelope.key))
        if self.after_enqueue is not None:
            self.after_enqueue()
        return fresh

    def _on_channels(self, tally: DeliveryTally, recipients: Sequence[Recipient[Any]]) -> Sequence[Recipient[Any]]:
        kept = [r for r in recipients if r.channel in self.channels]
        for recipient in recipients:
            if recipient.channel not in self.channels:
                reason = f"{recipient.channel} not in outreach.channels"
                tally.excluded[reason] = tally.excluded.get(reason, 0) + 1
        return kept

    def _capped(self, tally: DeliveryTally, kind: MessageKind, recipients: Sequence[Recipient[Any]],
                at: datetime, severity: SeverityLevel | None, uncapped: Collection[str]) -> Sequence[Recipient[Any]]:
        if self.cap is None or kind == "resolved" or not recipients:
            return recipients
        allowed = self.cap.allowed([r.customer.id for r in recipients], at, severity)
        allowed = [ok or r.customer.id in uncapped for r, ok in zip(recipients, allowed, strict=True)]
        for recipient, ok in zip(recipients, allowed, strict=True):
            if not ok:
                tally.count("capped", recipient.channel)
        return [r for r, ok in zip(recipients, allowed, strict=True) if ok]

    def _envelope(self, incident_id: str, kind: MessageKind, recipient: Recipient[Any], render: RenderFor,
                  decided_at: datetime, now: datetime, urgent: bool) -> Envelope:
        customer: Customer = recipient.customer
        key = MessageKey(incident_id, customer.id, kind)
        not_before = None
        if self.quiet is not None and recipient.channel == "sms" and not urgent:
            # judged at the decision's own time, so a replay decides as the live flow did
            not_before = self.quiet.ends_after(customer, decided_at)
        start = max(now, not_before) if not_before else now
        expires = start + self.deadline
        fallback = None
        email = customer.contact("email")
        if recipient.channel == "sms" and email is not None and "email" in self.channels:
            fallback = self._built(key, "email", email, render(customer, "email"), decided_at, expires)
        return self._built(key, recipient.channel, recipient.address, render(customer, recipient.channel),
                           decided_at, expires, not_before, fallback, urgent)

    @staticmethod
    def _built(key: MessageKey, channel: Channel, address: str, rendered: tuple[Rendered, str | None],
               decided_at: datetime, expires: datetime, not_before: datetime | None = None,
               fallback: Envelope | None = None, urgent: bool = False) -> Envelope:
        text, html = rendered
        body = f"{text.body} Ref {reference(message_id(key, channel))}" if channel == "sms" else text.body
        return Envelope(Message(key, channel, address, body, text.subject), decided_at, expires, not_before,
                        html if channel == "email" else None, fallback, urgent)
