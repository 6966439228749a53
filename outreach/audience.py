"""Who to tell: the segment's customers minus those who already called or opted out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from forewarn.interfaces import CustomerIndex, Segment
from forewarn.records import Channel, Customer, Reachable

R = TypeVar("R", bound=Reachable)
"""A full `Customer` when messages follow, a `ContactCard` when only counting (the preview)."""


@dataclass(frozen=True)
class Recipient(Generic[R]):
    customer: R
    channel: Channel
    address: str


@dataclass
class Audience(Generic[R]):
    """The recipients of one incident, with how many were left out and why."""

    segment: dict[str, str]
    recipients: list[Recipient[R]] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)
    held: str | None = None

    def by_channel(self) -> dict[str, int]:
        return dict(Counter(r.channel for r in self.recipients))


def build_audience(segment: Segment, index: CustomerIndex, reporters: frozenset[str],
                   max_audience: int) -> Audience[Customer]:
    """Customers of `segment` on their preferred channel, without those who called or opted out.

    `reporters` are the customers who already opened a case on the incident's key, in
    its window or the look-back before it: they need no warning that they "need not call".

    An empty segment would mean everyone: such an audience, and one larger than
    `max_audience`, is held for a responder instead of sent.

    >>> from forewarn.connectors.memory import InMemoryCustomerIndex
    >>> index = InMemoryCustomerIndex()
    >>> _ = index.upsert([
    ...     Customer(id="A", region="R1", phone="+15125550100"),
    ...     Customer(id="B", region="R1", phone="+15125550101", opt_out={"sms": True}),
    ...     Customer(id="C", region="R1", email="c@example.com", preferred_channel="email"),
    ...     Customer(id="D", region="R2", phone="+15125550102")])
    >>> audience = build_audience({"region": "R1"}, index, frozenset({"C"}), max_audience=100)
    >>> [r.customer.id for r in audience.recipients], sorted(audience.excluded.items())
    (['A'], [('already reported', 1), ('opted out of sms', 1)])
    """
    if not segment:
        return Audience({}, held="no segment isolated: a responder must choose who to warn")
    return audience_of(index.segment(segment), dict(segment), reporters, max_audience)


def audience_of(candidates: Iterable[R], segment: dict[str, str], reporters: frozenset[str],
                max_audience: int, contacted: frozenset[str] = frozenset()) -> Audience[R]:
    """The recipients among `candidates` (a segment's or an area's customers), with exclusions counted.

    Quiet hours do not shrink an audience: a message decided in a recipient's night waits in the
    outbox for their morning (`forewarn.outreach.enqueue`).
    """
    audience: Audience[R] = Audience(segment)
    for customer in candidates:
        if customer.id in reporters:
            audience.excluded["already reported"] += 1
            continue
        if customer.id in contacted:
            audience.excluded["already contacted"] += 1
            continue
        channel = customer.preferred_channel
        address = customer.contact(channel)
        if address is None:
            reason = f"opted out of {channel}" if customer.opted_out(channel) else f"no {channel} address"
            audience.excluded[reason] += 1
            continue
        audience.recipients.append(Recipient(customer, channel, address))
    if len(audience.recipients) > max_audience:
        audience.held = (f"audience of {len(audience.recipients)} exceeds max_audience {max_audience}: "
                         "raise outreach.max_audience or narrow the segment")
        audience.excluded["held: over max_audience"] += len(audience.recipients)
        audience.recipients = []
    return audience
