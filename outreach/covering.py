"""One message for a customer in two overlapping incidents, not two.

A customer in a new incident's audience whose warning of another open incident has not gone yet (it waits for
their morning, for a worker, or was decided moments ago) gets one warning that carries both: the new warning
names the other incident's topic too, and the waiting one is not sent (at send time it is settled `covered`,
pointing to the incident that carried it). The covered incident's acknowledgement, updates and all-clear still
reach the customer, as they would have after its own warning. A warning that already went is not taken back:
the new one then goes through the customer's budget like any other.

A waiting warning that a worker begins in the second before it is covered still goes (the worker reads the
covering at most once a second): the customer then gets both, the second naming both topics; never none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from forewarn.decisions import Decision
from forewarn.interfaces import Outbox


@dataclass(frozen=True)
class Carried:
    """For each customer, the other open incidents whose waiting warnings this incident's warning carries."""

    incident_id: str
    others: Mapping[str, tuple[Decision, ...]]

    def topics(self, customer_id: str) -> tuple[str, ...]:
        return tuple(sorted({d.topic for d in self.others.get(customer_id, ())}))

    def record(self, outbox: Outbox, warned: set[str]) -> None:
        """Mark the carried warnings covered, for the customers whose warning of this incident was just decided
        (a customer capped, held out or on another channel got no warning: theirs still goes)."""
        by_incident: dict[str, dict[str, str]] = defaultdict(dict)
        for customer_id, decisions in self.others.items():
            if customer_id in warned:
                for decision in decisions:
                    by_incident[decision.incident_id][customer_id] = self.incident_id
        for other, covered_by in by_incident.items():
            outbox.cover(other, covered_by)


@dataclass
class Covering:
    """Finds the warnings of other open incidents that a new incident's warning can carry.

    Parameters
    ----------
    outbox
        Where the other incidents' warnings wait.
    open_decisions
        The open incidents (`DecisionStore.open_decisions`); only those that message customers are looked at.
    """

    outbox: Outbox
    open_decisions: Callable[[], Sequence[Decision]]

    def carried(self, incident_id: str, customer_ids: Sequence[str]) -> Carried:
        # a customer already decided this incident's warning (an earlier pass) got it without the others
        wanted = set(customer_ids) - self.outbox.decided(incident_id, "warning")
        found: dict[str, list[Decision]] = defaultdict(list)
        for decision in self.open_decisions():
            if decision.incident_id == incident_id or not decision.messages_customers:
                continue
            candidates = sorted(wanted & self.outbox.decided(decision.incident_id, "warning"))
            if not candidates:
                continue
            for customer_id in self.outbox.waiting(decision.incident_id, candidates):
                found[customer_id].append(decision)
        return Carried(incident_id, {c: tuple(ds) for c, ds in found.items()})
