"""Two overlapping incidents, one customer: one warning that names both, not two; the covered incident's stages and
all-clear still reach them; a warning that already went is not taken back, and the budget decides the next."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from forewarn.connectors.memory import InMemoryContactLog
from forewarn.outreach.enqueue import ContactCap
from forewarn.outreach.lifecycle import Lifecycle
from forewarn.records import Incident, Message
from tests.unit.test_decision_gate import delivered, parts
from tests.unit.test_outreach import ScriptedSender, _opened


def _tv() -> Incident:
    """The same customers' TV signal, opening five minutes after their internet outage."""
    first = _opened()
    return replace(first, id=first.id.replace("no_internet", "tv_signal"), topic="tv_signal")


def _sent(senders: dict[str, ScriptedSender], incident_id: str, kind: str) -> list[Message]:
    return [m for s in senders.values() for m in s.sent if m.key.incident_id == incident_id and m.key.kind == kind]


def test_a_customer_in_two_overlapping_incidents_gets_one_warning_naming_both() -> None:
    p = parts()
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)  # decided; no worker has sent it yet
    report = p.outreach.handle(tv)
    assert dict(report.outcomes) == {"enqueued": 13}
    warned = p.outbox.decided(internet.id, "warning")
    assert len(warned) == 13 and p.outbox.covered(internet.id) == {c: tv.id for c in warned}

    _, senders = delivered(p)
    warnings = [m for s in senders.values() for m in s.sent if m.key.kind == "warning"]
    assert Counter(m.key.customer_id for m in warnings) == Counter(warned)  # one each
    assert {m.key.incident_id for m in warnings} == {tv.id}
    assert all("TV signal" in m.body and "internet" in m.body for m in warnings), [m.body for m in warnings]
    assert p.outbox.funnel(internet.id).get("covered") == 13
    assert not p.outbox.covered(tv.id)


def test_the_covered_incidents_stages_and_all_clear_reach_the_customers_it_was_carried_to() -> None:
    p = parts()
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    courier, senders = delivered(p)
    carried = set(p.outbox.covered(internet.id))
    life = Lifecycle(p.outreach)
    life.ack(internet.id, "ana")
    courier.run()
    life.resolve(internet.id, "ana")
    courier.run()
    assert {m.key.customer_id for m in _sent(senders, internet.id, "ack")} == carried
    assert {m.key.customer_id for m in _sent(senders, internet.id, "resolved")} == carried
    assert not _sent(senders, tv.id, "resolved")  # the TV problem is still open


def test_a_warning_that_already_went_is_not_taken_back_and_the_next_is_its_own_message() -> None:
    p = parts()
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    courier, senders = delivered(p)
    p.outreach.handle(tv)
    courier.run()
    assert p.outbox.covered(internet.id) == {}
    assert len(_sent(senders, internet.id, "warning")) == len(_sent(senders, tv.id, "warning")) == 13
    assert not any("internet" in m.body for m in _sent(senders, tv.id, "warning"))


def test_the_daily_budget_counts_the_carrying_warning_once_and_caps_a_later_incident() -> None:
    log = InMemoryContactLog()
    p = parts(cap=ContactCap(log, max_messages=1))
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    carrying = p.outreach.handle(tv)  # replaces the waiting warning: the budget is not spent twice
    assert dict(carrying.outcomes) == {"enqueued": 13}
    assert log.counts_since(sorted(p.outbox.decided(tv.id, "warning")), internet.opened_at) == [1] * 13
    delivered(p)
    billing = replace(internet, id=internet.id.replace("no_internet", "billing"), topic="billing")
    assert dict(p.outreach.handle(billing).outcomes) == {"capped": 13}  # a third message the same day: over


def test_a_customer_held_out_of_the_later_incident_keeps_the_earlier_warning() -> None:
    p = parts(holdout=0.4)
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    held = p.outbox.held_out(tv.id) - p.outbox.held_out(internet.id)
    assert held, "the seed must hold out someone of the later incident only"
    assert not held & set(p.outbox.covered(internet.id))
    _, senders = delivered(p)
    assert held <= {m.key.customer_id for m in _sent(senders, internet.id, "warning")}


def test_a_carried_warning_goes_after_all_when_the_carrying_incident_is_held() -> None:
    p = parts()
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    p.outreach.hold(tv.id, "ana", "not us")  # the TV warning will be withheld: the internet one must go
    _, senders = delivered(p)
    assert len(_sent(senders, internet.id, "warning")) == 13 and not _sent(senders, tv.id, "warning")
