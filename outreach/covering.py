"""One message for a customer in two overlapping incidents, not two.

A customer in a new incident's audience whose warning of another open incident waits for their morning (quiet
hours) gets one warning that carries both: the new warning names the other incident's topic too, and the
waiting one is not sent. At send time the waiting one checks the warning that carries it: once that went, it is
settled `covered` (pointing to the incident that carried it); while that may still go, it waits; when that will
not go (held, silenced, expired, failed), it goes itself. So a customer gets one message, or at worst both,
never none. The covered incident's acknowledgement, updates and all-clear still reach the customer, as they
would have after its own warning. A warning that already went, or is about to, is not taken back: the new one
then goes through the customer's budget like any other. Safety news is never carried (critical incidents,
urgent topics, hazards), nor an incident silenced since, nor by a topic whose templates do not name it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from forewarn.decisions import Decision
from forewarn.interfaces import Outbox
from forewarn.settings import OutreachSettings


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
    topic_labels
        The company's words for topics: an incident on a topic without them (a hazard, an unlabelled topic) is
        never carried (the carrying warning could not name it).
    urgent_topics
        Topics whose news goes on its own, as critical incidents' does (safety).
    silenced
        The silence muting a decision now (`DecisionGate.silenced_now`): a silenced incident is not carried.
    carrier
        Whether a topic's warning templates name the incidents they carry (`also_labels`); a topic whose
        templates do not carries nothing.
    """

    outbox: Outbox
    open_decisions: Callable[[], Sequence[Decision]]
    topic_labels: Mapping[str, str] = field(default_factory=lambda: dict(OutreachSettings().topic_labels))
    urgent_topics: frozenset[str] = frozenset()
    silenced: Callable[[Decision], str | None] = lambda decision: None
    carrier: Callable[[str], bool] = lambda topic: True

    def carryable(self, decision: Decision) -> bool:
        return (decision.messages_customers and decision.topic in self.topic_labels
                and decision.topic not in self.urgent_topics and decision.severity != "critical"
                and self.silenced(decision) is None)

    def carried(self, incident_id: str, topic: str, customer_ids: Sequence[str]) -> Carried:
        if not self.carrier(topic):
            return Carried(incident_id, {})
        # a customer already decided this incident's warning (an earlier pass) got it without the others
        wanted = set(customer_ids) - self.outbox.decided(incident_id, "warning")
        found: dict[str, list[Decision]] = defaultdict(list)
        for decision in self.open_decisions():
            if decision.incident_id == incident_id or not self.carryable(decision):
                continue
            candidates = sorted(wanted & self.outbox.decided(decision.incident_id, "warning"))
            if not candidates:
                continue
            for customer_id in self.outbox.waiting(decision.incident_id, candidates):
                found[customer_id].append(decision)
        return Carried(incident_id, {c: tuple(ds) for c, ds in found.items()})
