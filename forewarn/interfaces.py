"""The small interfaces outreach logic is handed; `connectors/` implements them.

Outreach code depends only on these protocols, so the same logic runs against the
in-process index of the demo and the Redis index of production, and tests hand it
real connectors rather than patched ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from forewarn.decisions import AuditEntry, Decision, ResponderEvent, Silence
from forewarn.envelopes import Begun, Envelope, Fate, Lease
from forewarn.records import Channel, ContactCard, Customer, Incident, Message, MessageKind, SendResult

if TYPE_CHECKING:  # shapely and numpy load only where areas are searched
    from forewarn.geo import Area

Segment = Mapping[str, str]
"""Attribute name to required value, combined with AND; for example {"model": "R7000"}.

Product attributes match on any of the customer's products, except that a model and a
firmware named together must be on the same product."""


@runtime_checkable
class CustomerIndex(Protocol):
    """Customers with their traits, queryable by segment."""

    traits: tuple[str, ...]
    """The attributes a segment may name: the built-in ones, then the configured extra traits."""

    def upsert(self, customers: Iterable[Customer]) -> int:
        """Insert or replace customers, keeping attribute sets consistent; return how many."""
        ...

    def get_many(self, ids: Sequence[str]) -> list[Customer | None]:
        """The customers with these ids, None where unknown, in the same order."""
        ...

    def size(self) -> int:
        """How many customers the index holds."""
        ...

    def count(self, segment: Segment) -> int:
        """How many customers match `segment` (all when it is empty), from the index's own sets."""
        ...

    def value_counts(self, attribute: str, values: Iterable[str]) -> dict[str, int]:
        """How many customers carry each value of `attribute` (from the index's own sets)."""
        ...

    def attribute_counts(self, attribute: str) -> dict[str, int]:
        """Every value of `attribute` with how many customers carry it."""
        ...

    def segment(self, segment: Segment) -> Iterator[Customer]:
        """Every customer matching all the attribute values of `segment`."""
        ...

    def contacts(self, segment: Segment) -> Iterator[ContactCard]:
        """How to reach every customer of `segment`: the same customers as `segment()`, read lighter."""
        ...

    def in_area(self, area: Area, segment: Segment | None = None, *, batch_size: int = 1_000) -> Iterator[Customer]:
        """Every customer whose own lat/lon lies in `area` (and who matches `segment`, when given), each once.

        In the area means `Area.contains` (see `forewarn.geo`): on a polygon's edge counts as
        inside, a circle by great-circle distance, and customers without a location or beyond
        ±`GEO_MAX_LAT` are never in one; an empty area holds nobody. `segment` matches as in
        `segment()`. Customers are read `batch_size` at a time; an unknown attribute in
        `segment` raises ValueError before any is read.
        """
        ...

    def record_opt_out(self, customer_id: str, channel: Channel) -> bool:
        """Mark a customer opted out of `channel` (a provider said so); False when unknown or already so."""
        ...


@runtime_checkable
class Sender(Protocol):
    """Delivers a message on one channel; never raises for a delivery failure."""

    channel: Channel

    def send(self, message: Message, *, status_callback: str | None = None, html: str | None = None) -> SendResult:
        """Send `message`; `status_callback` is where an SMS provider reports its fate, `html` an email's HTML
        part (each sender ignores what its channel has no use for)."""
        ...


class Renderer(Protocol):
    """Renders the text of one message kind for one topic, channel and language."""

    def render(self, topic: str, kind: MessageKind, channel: Channel, context: Mapping[str, object],
               family: str = "default") -> Rendered:
        """`family` names the fallback templates: "default" for incidents, "hazard" for hazard alerts."""
        ...

    def render_html(self, topic: str, kind: MessageKind, context: Mapping[str, object],
                    family: str = "default") -> str | None:
        """The HTML part of an email, or None to send text only."""
        ...


class Rendered(NamedTuple):
    subject: str | None
    body: str


class IncidentStore(Protocol):
    """Incidents as outreach last saw them, so a responder can preview or audit one by id."""

    def save(self, incident: Incident) -> None:
        ...

    def load(self, incident_id: str) -> Incident | None:
        ...


class DecisionStore(Protocol):
    """The decision layer's verdicts and audit trail, by incident; what `forewarn incidents` lists."""

    def save(self, decision: Decision) -> None:
        """Keep (or replace) the decision of its incident."""
        ...

    def load(self, incident_id: str) -> Decision | None:
        ...

    def change(self, incident_id: str, apply: Callable[[Decision | None], Decision | None]) -> Decision | None:
        """Read, change and save one decision atomically (the flow and an operator may act at once); `apply`
        may run more than once and may raise to change nothing; None from it saves nothing."""
        ...

    def recent(self, limit: int = 100) -> list[Decision]:
        """The newest decisions first, by when they were decided."""
        ...

    def open_decisions(self) -> list[Decision]:
        """Decisions of incidents not yet resolved (inhibition looks at these)."""
        ...

    def add_audit(self, entry: AuditEntry) -> None:
        ...

    def audit(self, incident_id: str) -> list[AuditEntry]:
        """Every approve and hold of the incident, oldest first."""
        ...


class SilenceStore(Protocol):
    """Operators' silences: incidents matching one are recorded and reported, but nobody is messaged."""

    def add(self, silence: Silence) -> None:
        ...

    def all(self) -> list[Silence]:
        """Every silence not yet deleted (expired ones too, until they are dropped), by start."""
        ...

    def active(self, at: datetime) -> list[Silence]:
        ...

    def expire(self, silence_id: str, at: datetime) -> bool:
        """End a silence at `at`; False when there is no such silence or it has already ended."""
        ...


class ResponderSender(Protocol):
    """Sends one responder notification (PagerDuty, Slack): ok, or a failure saying whether to retry."""

    def send(self, event: ResponderEvent) -> SendResult:
        ...


@runtime_checkable
class ResponderOutbox(Protocol):
    """Responder notifications waiting to go, each decided once by its id; any number of workers share it.

    A taken event is leased: until it is settled or retried it is not handed out again, and a lease that
    runs out (its worker died) makes the event due again.
    """

    def enqueue(self, events: Sequence[ResponderEvent], now: datetime) -> list[str]:
        """Decide and queue; the ids of the events that were new."""
        ...

    def take(self, count: int, now: datetime, lease: float) -> list[ResponderEvent]:
        """Up to `count` events due at `now`, each leased for `lease` seconds."""
        ...

    def settle(self, event_id: str, state: str, now: datetime, detail: str = "") -> None:
        """A final state: sent, failed, expired."""
        ...

    def retry(self, event_id: str, due: datetime, now: datetime, detail: str = "") -> None:
        ...

    def state(self, event_id: str) -> dict[str, str]:
        """state, attempts and the last detail of one event ({} when unknown)."""
        ...

    def pending(self) -> int:
        """Events not yet settled (due now or later, or leased)."""
        ...


class ContactLog(Protocol):
    """When each customer was last messaged, for caps: by the incident's own time, so replays agree."""

    def add(self, customer_id: str, at: datetime, key: str) -> None:
        ...

    def count_since(self, customer_id: str, since: datetime) -> int:
        ...

    def counts_since(self, customer_ids: Sequence[str], since: datetime) -> list[int]:
        """`count_since` for many customers at once (one round trip per batch, not per customer)."""
        ...


@runtime_checkable
class Outbox(Protocol):
    """The deciding side of delivery: messages are decided once and queued; nothing is sent here.

    A message key (incident, customer, kind) is decided at most once, whatever the number of times
    `enqueue` is called with it (a replayed epoch, a restart): the decided mark and the queue entry
    are written together.
    """

    def enqueue(self, envelopes: Sequence[Envelope], now: datetime) -> list[str]:
        """Decide and queue `envelopes` (deferred ones wait for their `not_before`); return the ids of
        those that were new (a key decided before is skipped)."""
        ...

    def hold_out(self, incident_id: str, customer_ids: Sequence[str]) -> None:
        """Record customers of the incident's audience who are deliberately not messaged (the holdout)."""
        ...

    def held_out(self, incident_id: str) -> set[str]:
        ...

    def waiting(self, incident_id: str, customer_ids: Sequence[str]) -> set[str]:
        """Those of `customer_ids` whose warning of the incident waits for their morning: another incident's
        warning can still carry it."""
        ...

    def warning_fate(self, incident_id: str, customer_id: str) -> Fate | None:
        """Whether the customer's warning of the incident went, may still go, or will not (`fate_of`)."""
        ...

    def cover(self, incident_id: str, covered_by: Mapping[str, str]) -> None:
        """Record customers (→ the incident whose warning carries this one's) not to be warned separately."""
        ...

    def covered(self, incident_id: str) -> dict[str, str]:
        """Customers whose warning of the incident another incident's warning carries, with that incident."""
        ...

    def decided(self, incident_id: str, kind: MessageKind) -> set[str]:
        """Customers decided a message of `kind` for the incident (whatever became of it)."""
        ...

    def accepted(self, incident_id: str, kind: MessageKind) -> set[str]:
        """Customers whose message of `kind` for the incident a provider accepted."""
        ...

    def funnel(self, incident_id: str) -> dict[str, int]:
        """How many of the incident's messages reached each stage (`forewarn.envelopes.FUNNEL`)."""
        ...

    def history(self, incident_id: str, customer_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every state each message of the pair went through, by message id, oldest first."""
        ...


@runtime_checkable
class DeliveryQueue(Protocol):
    """The delivering side: workers take, send, and settle messages; shared by any number of workers."""

    def promote_due(self, now: datetime, limit: int = 1_000) -> int:
        """Move deferred and retrying messages whose time has come into their channel's queue."""
        ...

    def take(self, channel: Channel, consumer: str, count: int, block: float) -> list[Lease]:
        """Up to `count` new messages of `channel` for `consumer`, waiting up to `block` seconds."""
        ...

    def reclaim(self, channel: Channel, consumer: str, idle: float, count: int) -> list[Lease]:
        """Messages another consumer took and left unsettled for `idle` seconds (it crashed)."""
        ...

    def touch(self, leases: Sequence[Lease], consumer: str) -> None:
        """Reset the idle time of leases `consumer` is still handling, so no other worker reclaims a slow send."""
        ...

    def begin(self, lease: Lease, now: datetime) -> Begun:
        """Mark the message as being sent and say what to do with it."""
        ...

    def settle(self, lease: Lease, state: str, now: datetime, result: SendResult | None = None) -> None:
        """Record a final state (sent, failed, expired, opted_out, superseded, skipped) and let the entry go; a
        failed or expired SMS with an email fallback queues the fallback once (`envelopes.falls_back`)."""
        ...

    def retry(self, lease: Lease, due: datetime, now: datetime, result: SendResult) -> None:
        """Schedule the message again at `due` after a retryable failure, and let the entry go."""
        ...

    def release(self, lease: Lease, due: datetime, now: datetime, reason: str, *, quiet: bool = False) -> None:
        """Put a message back untried (its channel is paused): queued again at `due`, no attempt counted; `quiet`
        writes no history event (an all-clear waiting for its warning asks every few seconds)."""
        ...

    def record_status(self, message_id: str, status: str, now: datetime, detail: str = "") -> bool:
        """A provider's later word on a sent message (delivered, undelivered, failed); an undelivered or
        failed SMS with an email fallback queues the fallback once. False for an unknown message."""
        ...

    def backlog(self, channel: Channel) -> int:
        """Messages of `channel` waiting in the queue (not deferred)."""
        ...

    def scheduled(self, before: datetime | None = None) -> int:
        """Messages waiting for a time (quiet hours, a retry, a paused channel); only those due by `before`
        when given."""
        ...


@runtime_checkable
class Suppressions(Protocol):
    """Addresses that said STOP (or unsubscribed): checked before every send."""

    def suppress(self, channel: Channel, address: str) -> bool:
        ...

    def allow(self, channel: Channel, address: str) -> bool:
        ...

    def is_suppressed(self, channel: Channel, address: str) -> bool:
        ...


@runtime_checkable
class RateLimiter(Protocol):
    """A shared pace per sender identity: every worker asks before each send."""

    def acquire(self, identity: str, rate: float, now: float) -> float:
        """Take one slot at `rate` per second: 0 when granted now, else the seconds to wait before asking again."""
        ...


@runtime_checkable
class Reconciler(Protocol):
    """A sender that can look a message up in the provider's own log (SMS through Twilio)."""

    def find_sent(self, message: Message, since: datetime) -> SendResult | None:
        """The provider's record of `message` created at or after `since`, as a SendResult (ok, with its
        id); None when the provider has no such message; a failed result when the lookup failed."""
        ...
