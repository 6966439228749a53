"""The decision gate between an incident's audience and its messages: tier, silences, inhibition, approval.

Outreach asks the gate before it warns anyone. The gate judges the incident (`playbook.decide`),
keeps the verdict in the decision store, and says whether one-to-one messages may go now; when they
may not, it says why in words an operator can act on. `approve` and `hold` are the operator's verbs:
each leaves an audit entry, and an approval lets outreach warn the audience as it stands then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from forewarn.decisions import MESSAGING_TIERS, AuditAction, AuditEntry, Decision, at_least
from forewarn.hazards import HazardIncident
from forewarn.interfaces import CustomerIndex, DecisionStore, SilenceStore
from forewarn.outreach.playbook import decide, decide_hazard
from forewarn.outreach.silencing import silencing
from forewarn.records import Incident
from forewarn.settings import PlaybookSettings


class ApprovalError(ValueError):
    """An approve or hold that cannot be done (unknown incident, already resolved, nothing to approve)."""


@dataclass
class DecisionGate:
    """Judges opened incidents and gates their one-to-one messages.

    Parameters
    ----------
    settings
        The playbook: rules, approval level, criticality, reach thresholds, inhibition rules.
    decisions
        Where verdicts and the audit trail are kept (`forewarn incidents` reads them).
    index
        The customer index, for the size of the customer base.
    silences
        Operators' silences; None: nothing is silenced.
    clock
        Wall time for audit entries (decisions take the incident's own time, so replays agree).
    """

    settings: PlaybookSettings
    decisions: DecisionStore
    index: CustomerIndex
    silences: SilenceStore | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def judge(self, incident: Incident, recipients: Sequence[Any], excluded: dict[str, int],
              keep: bool = True) -> Decision:
        """Decide an opened incident from its audience (recipients plus those held over max_audience, plus
        those who already called) and keep the verdict; an earlier verdict's approval is kept."""
        regions = {r.customer.region for r in recipients}
        touched = len(recipients) + excluded.get("held: over max_audience", 0) + excluded.get("already reported", 0)
        at = incident.opened_at
        # a silence added since the incident opened counts when it is judged again (an approval, a stage)
        now = max(at, self.clock())
        silences = self.silences.active(now) if self.silences is not None else ()
        decision = decide(incident, touched=touched, regions=max(len(regions), 1), base=self.index.size(),
                          settings=self.settings, at=at, silences=silences, silence_at=now,
                          open_decisions=self.decisions.open_decisions())
        return self._keep(decision) if keep else decision

    def judge_hazard(self, incident: HazardIncident, recipients: Sequence[Any]) -> Decision:
        """Decide a hazard (opened or updated: a wider area may change its reach) and keep the verdict."""
        regions = sorted({r.customer.region for r in recipients})
        now = max(incident.first_sent, self.clock())
        silences = self.silences.active(now) if self.silences is not None else ()
        fresh = decide_hazard(incident, touched=len(recipients), regions=regions, base=self.index.size(),
                              settings=self.settings, at=incident.first_sent, silences=silences, silence_at=now)
        # a wider path is no reason to say less: warnings queued under the louder tier still go
        return self._keep(fresh, never_quieter=True)

    def _keep(self, fresh: Decision, never_quieter: bool = False) -> Decision:
        """Save a fresh verdict atomically, keeping what operators and responders did since (approval, stage,
        ETA, note, updates, closure): a replayed or re-judged event undoes none of it; `never_quieter` keeps an
        earlier louder tier too."""
        def merge(earlier: Decision | None) -> Decision:
            if earlier is None:
                return fresh
            tier = earlier.tier if never_quieter and not at_least(fresh.tier, earlier.tier) else fresh.tier
            merged = replace(fresh, tier=tier, stage=earlier.stage, eta=earlier.eta, note=earlier.note,
                             updated_at=earlier.updated_at, updates=earlier.updates, open=earlier.open)
            return merged.with_approval(earlier.approval) if earlier.approval in ("approved", "held") else merged

        kept = self.decisions.change(fresh.incident_id, merge)
        assert kept is not None  # merge always gives one
        return kept

    def closed(self, incident_id: str) -> Decision | None:
        """The incident resolved: its decision is closed (and returned; None when there is none)."""
        return self.decisions.change(
            incident_id, lambda d: replace(d, open=False, stage="resolved") if d is not None and d.open else d)

    def act(self, incident_id: str, action: AuditAction, actor: str, note: str = "") -> Decision:
        """Approve or hold an incident's one-to-one messages, with an audit entry naming the actor."""
        def approve_or_hold(decision: Decision | None) -> Decision:
            decision = self._open_one(incident_id, decision, action)
            if decision.tier == "observe":
                raise ApprovalError(f"{incident_id} is tier observe: it tells responders only, so there is nothing "
                                    f"to {action}")
            return decision.with_approval("approved" if action == "approve" else "held")

        decided = self.decisions.change(incident_id, approve_or_hold)
        assert decided is not None
        self.decisions.add_audit(AuditEntry(incident_id, action, actor, self.clock(), note))
        return decided

    def advance(self, incident_id: str, action: AuditAction, actor: str, note: str = "",
                eta: datetime | None = None) -> Decision:
        """A responder's step in the incident's life (ack, update, resolve), with an audit entry; the update
        count is taken in the same atomic step, so two updates at once are two updates."""
        if eta is not None and eta.tzinfo is None:
            raise ApprovalError("an ETA needs a time zone")
        now = self.clock()

        def step(decision: Decision | None) -> Decision:
            decision = self._open_one(incident_id, decision, action)
            stage = {"ack": "identified", "resolve": "resolved"}.get(action, decision.stage)
            return replace(decision, stage=stage, eta=eta or decision.eta, note=note or decision.note,  # type: ignore[arg-type]
                           updated_at=now, updates=decision.updates + (action == "update"), open=action != "resolve")

        advanced = self.decisions.change(incident_id, step)
        assert advanced is not None
        self.decisions.add_audit(AuditEntry(incident_id, action, actor, now, note))
        return advanced

    @staticmethod
    def _open_one(incident_id: str, decision: Decision | None, action: str) -> Decision:
        if decision is None:
            raise ApprovalError(f"no decision for {incident_id}: see `forewarn incidents` for the ids")
        if not decision.open:
            raise ApprovalError(f"{incident_id} is resolved already: there is nothing left to {action}")
        return decision

    def silenced_now(self, decision: Decision) -> str | None:
        """The id of a silence active now that matches the incident (one added after it opened counts)."""
        if self.silences is None:
            return None
        now = self.clock()
        found = silencing(self.silences.active(now), dict(decision.labels), now)
        return found.id if found is not None else None

    def responders_only(self, incident: Incident, why: str) -> Decision:
        """An incident customers are not told about (no words for it, or no place): decided as `observe`, so
        the responders still hear of it, and kept."""
        fresh = self.judge(incident, [], {"already reported": len(incident.reporters)}, keep=False)
        return self._keep(replace(fresh, tier="observe", approval="not_needed",
                                  severity_reasons=(*fresh.severity_reasons, why)))


def why_not(decision: Decision) -> str:
    """Why an incident's customers are not messaged, and what an operator can do about it."""
    if decision.silenced_by:
        return f"silenced by {decision.silenced_by}: see `forewarn silence list`"
    if decision.inhibited_by:
        return f"inhibited by the open incident {decision.inhibited_by}, which explains it"
    if not decision.open:
        return "resolved already: nobody is warned about it any more"
    if decision.tier not in MESSAGING_TIERS:
        return (f"tier {decision.tier} ({decision.severity} severity, {decision.reach} reach): no one-to-one "
                "message by the playbook")
    if decision.approval == "pending":
        return f"tier {decision.tier} waits for approval: forewarn approve {decision.incident_id}"
    return f"held by an operator: forewarn approve {decision.incident_id} to send"
