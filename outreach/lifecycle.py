"""The incident's whole life, driven by responders: acknowledge, update (an ETA), resolve.

Each stage is recorded on the incident's decision (with an audit entry naming the responder) and, when the
incident messages customers at all, reaches them: the customers the warning reached get the stage's own
message (`ack`, `update-N`) on their channel, through the same budget; customers who joined the audience
since get the warning first; a customer who opened a case after being warned is linked to the incident and
gets no acknowledgement or update (the all-clear still, as the warning promised). Resolving sends the
all-clear, as an automatic resolution does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from forewarn.decisions import Decision
from forewarn.outreach.gate import ApprovalError
from forewarn.outreach.planner import Outreach, OutreachReport
from forewarn.records import MAX_CUSTOMER_UPDATES, Incident, MessageKind


class Lifecycle:
    """Responders' verbs over an `Outreach` that has a decision gate and an incident store."""

    def __init__(self, outreach: Outreach) -> None:
        if outreach.gate is None or outreach.store is None:
            raise ApprovalError("the incident's life needs the decision and incident stores (a redis section)")
        self.outreach = outreach
        self.gate = outreach.gate
        self.store = outreach.store

    def ack(self, incident_id: str, actor: str, note: str = "", eta: datetime | None = None) -> OutreachReport:
        incident = self._incident(incident_id)  # first: an unknown id (a hazard's, say) changes nothing
        decision = self.gate.advance(incident_id, "ack", actor, note, eta)
        self.outreach.tell_responders(decision, incident, "acknowledge")
        return self._stage(incident, decision, "ack")

    def update(self, incident_id: str, actor: str, note: str = "", eta: datetime | None = None) -> OutreachReport:
        incident = self._incident(incident_id)
        decision = self.gate.advance(incident_id, "update", actor, note, eta)
        self.outreach.tell_responders(decision, incident, "update")
        if decision.updates > MAX_CUSTOMER_UPDATES:
            report = OutreachReport(incident, decision=decision)
            report.held = (f"update {decision.updates} of {incident_id}: customers get at most "
                           f"{MAX_CUSTOMER_UPDATES}; responders and the status feed still have it")
            return report
        kind: MessageKind = f"update-{decision.updates}"  # type: ignore[assignment]
        return self._stage(incident, decision, kind)

    def resolve(self, incident_id: str, actor: str, note: str = "") -> OutreachReport:
        """Resolved by a responder: the all-clear goes now (a later automatic resolution repeats nothing)."""
        incident = self._incident(incident_id)
        self.gate.advance(incident_id, "resolve", actor, note)
        now = self.gate.clock()
        return self.outreach.handle(replace(incident, status="resolved", resolved_at=now))

    def _stage(self, incident: Incident, decision: Decision, kind: MessageKind) -> OutreachReport:
        if (silence := self.gate.silenced_now(decision)) is not None:
            return OutreachReport(incident, decision=decision, held=f"silenced by {silence}: nobody is messaged")
        if not decision.messages_customers:
            report = OutreachReport(incident, decision=decision)
            report.held = "no customer was messaged about this incident: responders only"
            return report
        now = self.gate.clock()
        newcomers = self.outreach.warn_newcomers(incident, now)
        report = self.outreach.follow_up(incident, kind, now, decision)
        report.outcomes.update({f"warned {k}": v for k, v in newcomers.outcomes.items()})
        return report

    def _incident(self, incident_id: str) -> Incident:
        incident = self.store.load(incident_id)
        if incident is None:
            raise ApprovalError(f"{incident_id} is not in the incident store (kept 30 days; a hazard's stages follow "
                                "its alerts)")
        return incident
