"""Responders drive an incident: ack → update → resolve reach exactly the customers the warning reached (newcomers
get the warning, those who called since are left alone), each with an audit entry, through the budget."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from forewarn.connectors.memory import InMemoryContactLog
from forewarn.outreach.enqueue import ContactCap
from forewarn.outreach.gate import ApprovalError
from forewarn.outreach.lifecycle import Lifecycle
from forewarn.settings import PlaybookSettings
from tests.unit.test_decision_gate import delivered, parts
from tests.unit.test_outreach import ScriptedSender, _customer, _opened


def kinds_sent(senders: dict[str, ScriptedSender]) -> dict[str, set[str]]:
    sent: dict[str, set[str]] = {}
    for sender in senders.values():
        for message in sender.sent:
            sent.setdefault(message.key.kind, set()).add(message.key.customer_id)
    return sent


def test_ack_update_resolve_reach_exactly_the_warned_customers() -> None:
    p = parts()
    incident = _opened()
    p.outreach.handle(incident)
    courier, senders = delivered(p)
    warned = p.outbox.accepted(incident.id, "warning")
    assert len(warned) == 13
    life = Lifecycle(p.outreach)

    # one warned customer calls after the warning: linked, not messaged again; one customer joins the region
    p.outreach.store.save(replace(incident, reporters=incident.reporters | {"CU-008"}))  # type: ignore[union-attr]
    p.customers.upsert([_customer(99, timezone="America/Chicago")])
    p.clock.advance(timedelta(minutes=20))
    acked = life.ack(incident.id, "ana", "crew on site", eta=p.clock() + timedelta(hours=2))
    assert acked.excluded == {"opened a case after the warning": 1}
    assert dict(acked.outcomes) == {"enqueued": 12, "warned enqueued": 1, "warned duplicate": 12}
    courier.run()
    sent = kinds_sent(senders)
    assert sent["ack"] == warned - {"CU-008"}
    assert "CU-099" in sent["warning"] and "CU-099" not in sent["ack"]
    ack_sms = next(m for m in senders["sms"].sent if m.key.kind == "ack")
    assert "expected fixed by" in ack_sms.body and "crew on site" not in ack_sms.body  # the note is not for them

    p.clock.advance(timedelta(minutes=30))
    life.update(incident.id, "bo", eta=p.clock() + timedelta(hours=3))
    courier.run()
    assert kinds_sent(senders)["update-1"] == (warned | {"CU-099"}) - {"CU-008"}

    p.clock.advance(timedelta(hours=1))
    resolved = life.resolve(incident.id, "ana", "fibre spliced")
    courier.run()
    assert kinds_sent(senders)["resolved"] == warned | {"CU-099"}  # the all-clear the warning promised: CU-008 too
    assert resolved.incident.status == "resolved"
    decision = p.decisions.load(incident.id)
    assert decision is not None and (decision.stage, decision.open, decision.note) == ("resolved", False,
                                                                                      "fibre spliced")
    assert [(a.action, a.actor) for a in p.decisions.audit(incident.id)] == [("ack", "ana"), ("update", "bo"),
                                                                               ("resolve", "ana")]
    with pytest.raises(ApprovalError, match="resolved already"):
        life.update(incident.id, "bo")
    # the flow's own resolution later repeats nothing
    stored = p.outreach.store.load(incident.id)  # type: ignore[union-attr]
    assert stored is not None and stored.status == "resolved"
    assert dict(p.outreach.handle(replace(stored, resolved_at=p.clock())).outcomes) == {"duplicate": 14}


def test_customers_hear_at_most_five_updates_and_stages_spend_their_budget() -> None:
    p = parts(cap=ContactCap(InMemoryContactLog(), max_messages=3))
    incident = _opened()
    p.outreach.handle(incident)
    delivered(p)
    life = Lifecycle(p.outreach)
    reports = [life.update(incident.id, "ana") for _ in range(6)]
    # warning + 2 updates fill a daily budget of 3: the third update onwards is capped for everyone
    assert [dict(r.outcomes).get("enqueued", 0) for r in reports[:5]] == [13, 13, 0, 0, 0]
    assert reports[2].outcomes["capped"] == 13
    assert reports[5].held is not None and "at most 5" in reports[5].held


def test_an_incident_that_messages_nobody_tells_customers_nothing_at_its_stages() -> None:
    p = parts(PlaybookSettings(rules=({"tier": "observe"},)))  # type: ignore[arg-type]
    incident = _opened()
    p.outreach.handle(incident)
    report = Lifecycle(p.outreach).ack(incident.id, "ana")
    assert report.held == "no customer was messaged about this incident: responders only"
    assert p.outbox.decided(incident.id, "ack") == set()
    decision = p.decisions.load(incident.id)
    assert decision is not None and decision.stage == "identified"

