"""The small interfaces outreach logic is handed; `connectors/` implements them.

Outreach code depends only on these protocols, so the same logic runs against the
in-process index of the demo and the Redis index of production, and tests hand it
real connectors rather than patched ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from forewarn.records import Channel, ContactCard, Customer, Incident, Message, MessageKey, MessageKind, SendResult

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
class Ledger(Protocol):
    """The log of what was sent; checked before every send so nothing goes out twice."""

    def claim(self, key: MessageKey) -> bool:
        """Reserve `key` for sending; False when it was already sent or is being sent."""
        ...

    def release(self, key: MessageKey) -> None:
        """Give up a claim after a retryable failure, so a later attempt may send."""
        ...

    def record(self, key: MessageKey, channel: Channel, outcome: SendResult) -> None:
        """Record the final outcome of a claimed key."""
        ...

    def recipients(self, incident_id: str, kind: MessageKind) -> set[str]:
        """Customers who were sent a message of `kind` for the incident."""
        ...


@runtime_checkable
class Sender(Protocol):
    """Delivers a message on one channel; never raises for a delivery failure."""

    channel: Channel

    def send(self, message: Message) -> SendResult:
        ...


class Renderer(Protocol):
    """Renders the text of one message kind for one topic, channel and language."""

    def render(self, topic: str, kind: MessageKind, channel: Channel, context: Mapping[str, object],
               family: str = "default") -> Rendered:
        """`family` names the fallback templates: "default" for incidents, "hazard" for hazard alerts."""
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


class ContactLog(Protocol):
    """When each customer was last messaged, for caps: by the incident's own time, so replays agree."""

    def add(self, customer_id: str, at: datetime, key: str) -> None:
        ...

    def count_since(self, customer_id: str, since: datetime) -> int:
        ...

    def counts_since(self, customer_ids: Sequence[str], since: datetime) -> list[int]:
        """`count_since` for many customers at once (one round trip per batch, not per customer)."""
        ...
