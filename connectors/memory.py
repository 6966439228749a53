"""In-process twins of the Redis parts for the embedded demo: no external service, no redis-py.

The customer index, incident store and contact log behave like the Redis ones (same
contract tests): attribute sets kept consistent on upsert, segments as AND of attribute
values, area searches by the same exact test. State lives in this process only (the outbox's
twin is `forewarn.connectors.memory_outbox`).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from forewarn.connectors.segments import Entry, check_segment, customer_entries, matches, segment_sets
from forewarn.interfaces import Segment
from forewarn.records import (
    INDEXED_ATTRIBUTES,
    Channel,
    ContactCard,
    Customer,
    Incident,
    normalize_phone,
)

if TYPE_CHECKING:  # shapely and numpy load only where areas are searched
    from forewarn.geo import Area


class InMemoryCustomerIndex:
    """`CustomerIndex` over dicts of customers and sets of ids per attribute value.

    `extra_traits` names customer or product fields indexed as traits beside the built-in ones.
    """

    def __init__(self, extra_traits: Sequence[str] = ()) -> None:
        self.extra_traits = tuple(extra_traits)
        self.traits = INDEXED_ATTRIBUTES + self.extra_traits
        self._customers: dict[str, Customer] = {}
        self._sets: dict[Entry, set[str]] = defaultdict(set)
        self._lock = threading.Lock()

    def upsert(self, customers: Iterable[Customer]) -> int:
        count = 0
        with self._lock:
            for customer in customers:
                old = self._customers.get(customer.id)
                before = customer_entries(old, self.extra_traits) if old is not None else set()
                after = customer_entries(customer, self.extra_traits)
                for entry in before - after:
                    members = self._sets[entry]
                    members.discard(customer.id)
                    if not members:
                        del self._sets[entry]
                for entry in after:
                    self._sets[entry].add(customer.id)
                self._customers[customer.id] = customer
                count += 1
        return count

    def get_many(self, ids: Sequence[str]) -> list[Customer | None]:
        with self._lock:
            return [self._customers.get(i) for i in ids]

    def size(self) -> int:
        return len(self._customers)

    def count(self, segment: Segment) -> int:
        check_segment(segment, self.traits)
        with self._lock:
            return len(self._matching(segment))

    def value_counts(self, attribute: str, values: Iterable[str]) -> dict[str, int]:
        check_segment({attribute: ""}, self.traits)
        with self._lock:
            return {v: len(self._sets.get((attribute, v), ())) for v in values}

    def attribute_counts(self, attribute: str) -> dict[str, int]:
        check_segment({attribute: ""}, self.traits)
        with self._lock:
            return {v: len(ids) for (a, v), ids in self._sets.items() if a == attribute and ids}

    def segment(self, segment: Segment) -> Iterator[Customer]:
        check_segment(segment, self.traits)
        with self._lock:
            found = [self._customers[i] for i in self._matching(segment)]
        return iter(found)

    def record_opt_out(self, customer_id: str, channel: Channel) -> bool:
        with self._lock:
            customer = self._customers.get(customer_id)
            if customer is None or customer.opted_out(channel):
                return False
            self._customers[customer_id] = customer.opting_out(channel)
            return True

    def record_opt_in(self, customer_id: str, channel: Channel) -> bool:
        """Opt a customer back in to `channel` (an inbound START); False when unknown or not opted out."""
        with self._lock:
            customer = self._customers.get(customer_id)
            if customer is None or not customer.opted_out(channel):
                return False
            self._customers[customer_id] = customer.opting_in(channel)
            return True

    def ids_by_phone(self, phone: str) -> list[str]:
        """The ids of the customers whose phone is `phone` (any spelling of the number), sorted: a scan,
        fine for the demo's sizes (an inbound STOP is rare)."""
        try:
            number = normalize_phone(phone)
        except ValueError:
            return []
        with self._lock:
            return sorted(c.id for c in self._customers.values() if c.phone == number)

    def contacts(self, segment: Segment) -> Iterator[ContactCard]:
        return (customer.card() for customer in self.segment(segment))

    def in_area(self, area: Area, segment: Segment | None = None, *, batch_size: int = 1_000) -> Iterator[Customer]:
        """Every customer in `area` (and in `segment`, when given): a scan of every located
        customer, `batch_size` at a time through the exact test of `Area`."""
        wanted = dict(segment or {})
        check_segment(wanted, self.traits)
        if area.is_empty:
            return iter(())
        with self._lock:
            located = [c for c in self._customers.values() if c.lat is not None and c.lon is not None
                       and (not wanted or matches(c, wanted, self.extra_traits))]
        return (c for start in range(0, len(located), batch_size)
                for c in area.filter(located[start:start + batch_size]))

    def _matching(self, segment: Segment) -> Collection[str]:
        entries = segment_sets(segment)
        if not entries:
            return list(self._customers)
        sets = sorted((self._sets.get(entry, set()) for entry in entries), key=len)
        return set(sets[0]).intersection(*sets[1:])


class InMemoryIncidentStore:
    """Incidents by id, in this process (the demo's and replay's store)."""

    def __init__(self) -> None:
        self._incidents: dict[str, bytes] = {}

    def save(self, incident: Incident) -> None:
        self._incidents[incident.id] = incident.to_record()

    def load(self, incident_id: str) -> Incident | None:
        raw = self._incidents.get(incident_id)
        return Incident.from_record(raw) if raw is not None else None


class InMemoryContactLog:
    """Message times per customer, in this process."""

    def __init__(self) -> None:
        self._times: dict[str, dict[str, datetime]] = {}

    def add(self, customer_id: str, at: datetime, key: str) -> None:
        self._times.setdefault(customer_id, {})[key] = at

    def count_since(self, customer_id: str, since: datetime) -> int:
        return sum(1 for at in self._times.get(customer_id, {}).values() if at >= since)

    def counts_since(self, customer_ids: Sequence[str], since: datetime) -> list[int]:
        return [self.count_since(customer_id, since) for customer_id in customer_ids]
