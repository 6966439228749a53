"""What the outbox holds: a decided message with when it may go and until when it is worth sending.

The flow decides and enqueues envelopes; delivery workers send them (see `forewarn.interfaces.Outbox`
and `DeliveryQueue`). Every envelope has an id that names its message key and channel, so an SMS and
the email that replaces it when the SMS is undelivered are two messages of one decision.

>>> from datetime import UTC, datetime, timedelta
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> sms = Message(MessageKey("INC-1", "CU-42", "warning"), "sms", "+15125550100", "Outage near you.")
>>> envelope = Envelope(sms, decided_at=at, expires_at=at + timedelta(hours=6))
>>> envelope.id
'INC-1|CU-42|warning|sms'
>>> Envelope.from_json(envelope.to_json()) == envelope
True
>>> parse_message_id("INC-1|CU-42|warning|sms")
(MessageKey(incident_id='INC-1', customer_id='CU-42', kind='warning'), 'sms')
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

import orjson

from forewarn.records import Channel, Message, MessageKey, MessageKind, SendResult

MessageState = Literal[
    "enqueued",  # in the channel's stream, waiting for a worker
    "deferred",  # waiting for the recipient's morning (quiet hours)
    "sending",  # a worker is sending it; found so after a crash, the provider may have it
    "retrying",  # a retryable failure; scheduled again after a backoff
    "sent",  # the provider accepted it
    "delivered",  # the provider reports it reached the handset or the mail server
    "undelivered",  # the provider accepted it but could not deliver it
    "failed",  # a final error (or the provider reports a failure)
    "expired",  # its deadline passed before it could go
    "opted_out",  # the recipient opted out before it went
    "superseded",  # an all-clear came before the warning went: neither is sent
    "skipped",  # an all-clear for a warning that never reached the customer
    "withheld",  # the incident stopped messaging customers (held, silenced) after it was queued
    "covered",  # a warning of an overlapping incident carried this one's news to the customer
]
FINAL_STATES: frozenset[str] = frozenset({"sent", "delivered", "undelivered", "failed", "expired", "opted_out",
                                          "superseded", "skipped", "withheld", "covered"})
"""States after which a worker never sends the message again (a status callback may still move
sent → delivered/undelivered/failed)."""
ACCEPTED_STATES: frozenset[str] = frozenset({"sent", "delivered", "undelivered"})
"""The provider took the message."""
TOLD_STATES: frozenset[str] = ACCEPTED_STATES | {"covered"}
"""The customer heard the news: their warning went, or another incident's warning carried it (the all-clear
follows either)."""

FUNNEL = ("decided", "enqueued", "deferred", "sent", "delivered", "undelivered", "failed", "fallback", "expired",
          "opted_out", "superseded", "skipped", "withheld", "covered")
"""The incident report's funnel of its messages, in order."""


def id_part(text: str) -> str:
    """An incident or customer id as a part of a message id: `%` and `|` escaped, so ids may hold either.

    >>> id_part("CU|7"), id_part("50%")
    ('CU%7C7', '50%25')
    """
    return text.replace("%", "%25").replace("|", "%7C")


def _unescape(part: str) -> str:
    return part.replace("%7C", "|").replace("%25", "%")


WAITING_STATES = frozenset({"deferred"})
"""A message waiting for the customer's morning: another incident's warning may carry its news."""
PENDING_STATES = frozenset({"enqueued", "deferred", "sending", "retrying"})
"""A message that may still go (or be going)."""

Fate = Literal["told", "pending", "not told"]


def fate_of(states: Sequence[str]) -> Fate | None:
    """What became of a customer's warning, from the states of its SMS and email messages (an SMS's fallback
    is its email): told when either went, pending while either may still go; None when none was decided.

    >>> fate_of(["failed", "sent"]), fate_of(["failed", "enqueued"]), fate_of(["withheld"]), fate_of([])
    ('told', 'pending', 'not told', None)
    """
    if not states:
        return None
    if any(s in ACCEPTED_STATES for s in states):
        return "told"
    return "pending" if any(s in PENDING_STATES for s in states) else "not told"


def warning_ids(incident_id: str, customer_id: str) -> tuple[str, str]:
    """The ids of the customer's warning of the incident, by SMS and by email (it has at most one of them)."""
    key = MessageKey(incident_id, customer_id, "warning")
    return message_id(key, "sms"), message_id(key, "email")


def message_id(key: MessageKey, channel: Channel) -> str:
    """`INCIDENT|CUSTOMER|KIND|CHANNEL`, the ids escaped (`id_part`).

    >>> message_id(MessageKey("INC-1", "CU|7", "warning"), "sms")
    'INC-1|CU%7C7|warning|sms'
    >>> parse_message_id(_)[0].customer_id
    'CU|7'
    """
    return f"{id_part(key.incident_id)}|{id_part(key.customer_id)}|{key.kind}|{channel}"


def reference(mid: str) -> str:
    """A short tag of one message, written at the end of its SMS: the provider's log then tells it apart from
    any other message with the same words to the same number, so a reconcile never mistakes one for the other.

    >>> reference("INC-1|CU-42|warning|sms")
    'NHO2L2BN'
    """
    return base64.b32encode(hashlib.blake2b(mid.encode(), digest_size=5).digest()).decode()


def falls_back(state: str, result: SendResult | None) -> bool:
    """Whether an SMS settled in `state` goes to the customer's email instead (once): a final failure or a
    passed deadline does; an opted-out recipient does not.

    >>> falls_back("failed", SendResult(ok=False, reason="21211")), falls_back("sent", None)
    (True, False)
    """
    return state in ("failed", "expired") and not (result is not None and result.opted_out)


def parse_message_id(text: str) -> tuple[MessageKey, Channel]:
    """The key and channel of a message id; ValueError for anything else (ids arrive from the web)."""
    parts = text.split("|")
    incident, customer, kind, channel = parts if len(parts) == 4 else ("", "", "", "")
    if not incident or not customer or kind not in get_args(MessageKind) or channel not in get_args(Channel):
        raise ValueError("not a message id (INCIDENT|CUSTOMER|KIND|CHANNEL)")
    return MessageKey(_unescape(incident), _unescape(customer), cast(MessageKind, kind)), cast(Channel, channel)


@dataclass(frozen=True)
class Envelope:
    """One decided message as the outbox keeps it.

    Parameters
    ----------
    message
        The rendered message: key, channel, address, body (and subject for email).
    decided_at
        When the flow decided it (the incident's own time).
    expires_at
        Wall time after which it is not worth sending any more: recorded "expired" instead.
    not_before
        Quiet hours: the recipient's morning; None sends at once.
    html
        The HTML part of an email (the text part is `message.body`).
    fallback
        The email that replaces this SMS when the provider reports it undelivered or failed.
    urgent
        Severity overrides quiet hours.
    """

    message: Message
    decided_at: datetime
    expires_at: datetime
    not_before: datetime | None = None
    html: str | None = None
    fallback: Envelope | None = None
    urgent: bool = False

    @property
    def id(self) -> str:
        return message_id(self.message.key, self.message.channel)

    @property
    def key(self) -> MessageKey:
        return self.message.key

    @property
    def channel(self) -> Channel:
        return self.message.channel

    def to_dict(self) -> dict[str, Any]:
        """Plain data; times stay datetimes (orjson writes them as RFC 3339), see `to_json`."""
        return {"message": self.message.to_dict(), "decided_at": self.decided_at, "expires_at": self.expires_at,
                "not_before": self.not_before, "html": self.html,
                "fallback": self.fallback.to_dict() if self.fallback else None, "urgent": self.urgent}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Envelope:
        m = doc["message"]
        message = Message(MessageKey(m["incident_id"], m["customer_id"], m["kind"]), m["channel"], m["to"],
                          m["body"], m.get("subject"))
        not_before = doc.get("not_before")
        fallback = doc.get("fallback")
        return cls(message, datetime.fromisoformat(doc["decided_at"]), datetime.fromisoformat(doc["expires_at"]),
                   datetime.fromisoformat(not_before) if not_before else None, doc.get("html"),
                   cls.from_dict(fallback) if fallback else None, bool(doc.get("urgent")))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.from_dict(orjson.loads(raw))


@dataclass(frozen=True)
class Lease:
    """One stream entry a worker took: what to acknowledge once the message is settled."""

    channel: Channel
    shard: int
    entry_id: str
    message_id: str
    deliveries: int = 1
    """How many times the stream handed this entry out (above 1: reclaimed from a silent worker)."""


Verdict = Literal["send", "reconcile", "done", "wait", "supersede", "skip"]


@dataclass(frozen=True)
class Begun:
    """What `DeliveryQueue.begin` found for a lease.

    - send: nobody tried it yet (or the last try surely did not reach the provider): send it;
    - reconcile: an earlier try may have reached the provider: look it up before sending again;
    - done: already settled (a duplicate entry, or settled by another worker): acknowledge only;
    - wait: an all-clear whose warning is queued, retrying or being sent: try again shortly;
    - supersede / skip: an all-clear while its warning waits for the customer's morning (both are
      dropped) / for a warning that never reached the customer: settled as such, nothing sent.
    """

    verdict: Verdict
    envelope: Envelope | None = None
    attempts: int = 0
    first_attempt_at: datetime | None = None


def from_epoch_ms(ms: int | float) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(ms / 1000, UTC)


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
