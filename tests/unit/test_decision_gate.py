"""The decision gate in outreach: tiers gate messages, approval sends to the audience as it stands then, silences
and inhibition mute, and the budget holds across incidents (all with the in-process twins of the stores)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import NamedTuple

import pytest

from forewarn.connectors.memory import InMemoryContactLog, InMemoryCustomerIndex, InMemoryIncidentStore
from forewarn.connectors.memory_decisions import InMemoryDecisionStore
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.memory_silences import InMemorySilenceStore
from forewarn.connectors.templates import JinjaRenderer
from forewarn.decisions import Silence
from forewarn.outreach.covering import Covering
from forewarn.outreach.enqueue import ContactCap, Enqueuer
from forewarn.outreach.gate import ApprovalError, DecisionGate
from forewarn.outreach.planner import Outreach
from forewarn.outreach.policy import QuietHours
from forewarn.outreach.withhold import Withholding
from forewarn.records import Incident
from forewarn.settings import InhibitRule, PlaybookSettings
from tests.recording import Clock, Courier
from tests.unit.test_outreach import REGION, TEMPLATES, ScriptedSender, _base, _customer, _opened

ELSEWHERE = [_customer(i, region="WA-033") for i in range(1_000, 2_000)]


class Parts(NamedTuple):
    outreach: Outreach
    outbox: InMemoryOutbox
    decisions: InMemoryDecisionStore
    silences: InMemorySilenceStore
    customers: InMemoryCustomerIndex
    clock: Clock


def parts(playbook: PlaybookSettings | None = None, cap: ContactCap | None = None, holdout: float = 0.0,
          quiet: QuietHours | None = None) -> Parts:
    """Outreach with a gate; nobody held out unless `holdout` says so (the holdout has its own tests)."""
    index = InMemoryCustomerIndex()
    index.upsert(_base() + ELSEWHERE)  # a base of 1,060: the incident's 19 are a local reach
    outbox, decisions, silences = InMemoryOutbox(), InMemoryDecisionStore(), InMemorySilenceStore()
    clock = Clock(_opened().opened_at + timedelta(minutes=5))
    settings = (playbook or PlaybookSettings()).model_copy(update={"holdout_share": holdout})
    gate = DecisionGate(settings, decisions, index, silences, clock=clock)
    enqueuer = Enqueuer(outbox, cap=cap, clock=clock, quiet=quiet)
    outreach = Outreach(index, enqueuer, JinjaRenderer(TEMPLATES), max_audience=100, store=InMemoryIncidentStore(),
                        gate=gate, covering=Covering(outbox, decisions.open_decisions))
    return Parts(outreach, outbox, decisions, silences, index, clock)


def delivered(p: Parts) -> tuple[Courier, dict[str, ScriptedSender]]:
    senders = {"sms": ScriptedSender("sms"), "email": ScriptedSender("email")}
    withholding = Withholding(p.decisions, p.silences, p.outbox, clock=p.clock, ttl=0)
    courier = Courier(p.outbox, senders, p.clock, withholding=withholding)  # type: ignore[arg-type]
    courier.run()
    return courier, senders


def queued(outbox: InMemoryOutbox, incident: Incident) -> set[str]:
    return outbox.decided(incident.id, "warning")


def test_an_incident_that_waits_for_approval_messages_nobody_until_approved_then_its_audience_as_it_is() -> None:
    p = parts(PlaybookSettings(approval_from="notify"))
    incident = _opened()
    report = p.outreach.handle(incident)
    assert report.decision is not None and report.decision.approval == "pending"
    assert report.held == f"tier notify waits for approval: forewarn approve {incident.id}"
    assert queued(p.outbox, incident) == set() and not report.outcomes
    assert [d.incident_id for d in p.decisions.open_decisions()] == [incident.id]

    p.customers.upsert([_customer(99, timezone="America/Chicago")])  # joined the region since the decision
    p.clock.advance(timedelta(minutes=30))
    approved = p.outreach.approve(incident.id, "ana", "checked with the NOC")
    assert approved.held is None
    warned = queued(p.outbox, incident)
    assert "CU-099" in warned and len(warned) == 14  # the 13 of the decision, and the newcomer
    audit = p.decisions.audit(incident.id)
    assert [(a.action, a.actor, a.note, a.at) for a in audit] == [("approve", "ana", "checked with the NOC",
                                                                    p.clock())]
    decision = p.decisions.load(incident.id)
    assert decision is not None and decision.approval == "approved"

    again = p.outreach.handle(incident)  # the opened event replayed: the approval stands, nothing twice
    assert dict(again.outcomes) == {"duplicate": 14}


def test_a_hold_keeps_customers_out_until_an_approval() -> None:
    p = parts(PlaybookSettings(approval_from="notify"))
    incident = _opened()
    p.outreach.handle(incident)
    p.outreach.hold(incident.id, "bo", "false alarm?")
    assert p.outreach.handle(incident).held == f"held by an operator: forewarn approve {incident.id} to send"
    assert queued(p.outbox, incident) == set()
    p.outreach.approve(incident.id, "ana")
    assert len(queued(p.outbox, incident)) == 13
    assert [(a.action, a.actor) for a in p.decisions.audit(incident.id)] == [("hold", "bo"), ("approve", "ana")]


def test_approval_is_refused_for_unknown_resolved_or_silent_incidents() -> None:
    p = parts(PlaybookSettings(approval_from="notify"))
    with pytest.raises(ApprovalError, match="INC-404 is not in the incident store"):
        p.outreach.approve("INC-404", "ana")
    assert p.decisions.audit("INC-404") == []  # refused before anything was recorded
    incident = _opened()
    p.outreach.handle(incident)
    p.outreach.handle(replace(incident, status="resolved", resolved_at=incident.opened_at + timedelta(hours=2)))
    with pytest.raises(ApprovalError, match="is resolved"):
        p.outreach.approve(incident.id, "ana")
    assert p.decisions.audit(incident.id) == []

    observer = parts(PlaybookSettings(rules=({"tier": "observe"},)))  # type: ignore[arg-type]
    observer.outreach.handle(incident)
    with pytest.raises(ApprovalError, match="tier observe: it tells responders only"):
        observer.outreach.approve(incident.id, "ana")


@pytest.mark.parametrize("tier", ["observe", "publish"])
def test_quiet_tiers_message_nobody_but_are_recorded(tier: str) -> None:
    p = parts(PlaybookSettings(rules=({"tier": tier},)))  # type: ignore[arg-type]
    report = p.outreach.handle(_opened())
    assert report.held is not None and report.held.startswith(f"tier {tier} (high severity, ")
    assert queued(p.outbox, _opened()) == set()
    decision = p.decisions.load(_opened().id)
    assert decision is not None and decision.tier == tier and decision.audience == 19  # 13 + 6 who called


def test_a_matching_silence_mutes_the_incident_and_an_expired_one_does_not() -> None:
    p = parts()
    incident = _opened()
    start = incident.opened_at - timedelta(hours=1)
    p.silences.add(Silence("S-1", (("topic", "no_internet"), ("region", REGION)), start, start + timedelta(hours=4),
                           "planned maintenance", "ana", start))
    p.silences.add(Silence("S-2", (("topic", "no_internet"), ("region", "CA-037")), start, start + timedelta(hours=4),
                           "elsewhere", "ana", start))
    report = p.outreach.handle(incident)
    assert report.held == "silenced by S-1: see `forewarn silence list`"
    assert queued(p.outbox, incident) == set()
    decision = p.decisions.load(incident.id)
    assert decision is not None and decision.silenced_by == "S-1" and decision.tier == "notify"

    later = replace(incident, id="INC-later", opened_at=incident.opened_at + timedelta(hours=4))
    assert p.outreach.handle(later).held is None  # S-1 ended at the incident's time
    assert len(queued(p.outbox, later)) == 13


def test_an_open_outage_inhibits_wifi_drops_in_its_region_until_it_resolves() -> None:
    p = parts(PlaybookSettings(inhibit=(InhibitRule(source_topics=("no_internet",), target_topics=("wifi_drops",)),)))
    outage = _opened()
    p.outreach.handle(outage)
    wifi = replace(outage, id="INC-wifi", topic="wifi_drops", opened_at=outage.opened_at + timedelta(minutes=30))
    report = p.outreach.handle(wifi)
    assert report.held == f"inhibited by the open incident {outage.id}, which explains it"
    assert queued(p.outbox, wifi) == set()
    p.outreach.handle(replace(outage, status="resolved", resolved_at=outage.opened_at + timedelta(hours=1)))
    after = replace(wifi, id="INC-wifi-2", opened_at=outage.opened_at + timedelta(hours=2))
    assert p.outreach.handle(after).held is None
    assert len(queued(p.outbox, after)) == 13


def test_the_weekly_budget_holds_across_incidents_and_safety_passes() -> None:
    p = parts(PlaybookSettings(topic_criticality={"gas_leak": "critical"}, approval_from=None),
              cap=ContactCap(InMemoryContactLog(), max_messages=None, per_week=2, bypass_from="critical"))
    first = _opened()
    for day in range(3):  # three incidents on three days: the third is over the weekly budget
        incident = replace(first, id=f"INC-{day}", opened_at=first.opened_at + timedelta(days=day))
        report = p.outreach.handle(incident)
        delivered(p)  # each day's warnings went (else the next day's would carry them: test_covering)
    assert dict(report.outcomes) == {"capped": 13}
    labels = dict(p.outreach.topic_labels, gas_leak="gas")
    p.outreach.topic_labels = labels
    safety = replace(first, id="INC-gas", topic="gas_leak", opened_at=first.opened_at + timedelta(days=3))
    assert dict(p.outreach.handle(safety).outcomes) == {"enqueued": 13}


def test_a_silence_added_after_the_incident_opened_mutes_its_approval_and_its_stages() -> None:
    from forewarn.outreach.lifecycle import Lifecycle

    p = parts(PlaybookSettings(approval_from="notify"))
    incident = _opened()
    p.outreach.handle(incident)
    now = p.clock()
    p.silences.add(Silence("S-late", (("region", REGION),), now, now + timedelta(hours=4), "maintenance", "ana", now))
    p.clock.advance(timedelta(minutes=10))
    report = p.outreach.approve(incident.id, "ana")
    assert report.held == "silenced by S-late: see `forewarn silence list`"
    assert queued(p.outbox, incident) == set()
    acked = Lifecycle(p.outreach).ack(incident.id, "bo")
    assert acked.held == "silenced by S-late: nobody is messaged"
    assert p.outbox.decided(incident.id, "ack") == set()


def test_a_replayed_opening_of_a_resolved_incident_warns_nobody() -> None:
    p = parts()
    incident = _opened()
    p.outreach.handle(incident)
    p.outreach.handle(replace(incident, status="resolved", resolved_at=incident.opened_at + timedelta(hours=1)))
    p.customers.upsert([_customer(98, timezone="America/Chicago")])  # joined since: must not hear of a fixed problem
    replayed = p.outreach.handle(incident)
    assert replayed.held == "resolved already: nobody is warned about it any more"
    assert "CU-098" not in queued(p.outbox, incident)
    decision = p.decisions.load(incident.id)
    assert decision is not None and not decision.open


def test_an_incident_customers_cannot_be_told_about_is_still_decided_for_the_responders() -> None:
    p = parts()
    unlabelled = replace(_opened(), id="INC-odd", topic="odd_topic")
    report = p.outreach.handle(unlabelled)
    assert report.held is not None and "has no label" in report.held
    decision = p.decisions.load("INC-odd")
    assert decision is not None and decision.tier == "observe" and "has no label" in decision.severity_reasons[-1]
    with pytest.raises(ApprovalError, match="tells responders only"):
        p.outreach.approve("INC-odd", "ana")


def test_a_publish_tier_can_wait_for_approval_too() -> None:
    p = parts(PlaybookSettings(rules=({"tier": "publish"},), approval_from="publish"))  # type: ignore[arg-type]
    incident = _opened()
    assert p.outreach.handle(incident).decision.approval == "pending"  # type: ignore[union-attr]
    p.outreach.approve(incident.id, "ana")
    decision = p.decisions.load(incident.id)
    assert decision is not None and decision.approval == "approved"
    assert queued(p.outbox, incident) == set()  # approved for the status feed; publish messages nobody
