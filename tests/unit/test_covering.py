"""Two overlapping incidents, one customer: one warning that names both, not two; the covered incident's stages and
all-clear still reach them; never none (a carried warning goes itself when the one carrying it will not); a warning
that already went or is about to is not taken back, and the budget decides the next."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import time, timedelta

from forewarn.connectors.memory import InMemoryContactLog
from forewarn.envelopes import message_id
from forewarn.outreach.enqueue import ContactCap
from forewarn.outreach.lifecycle import Lifecycle
from forewarn.outreach.policy import QuietHours
from forewarn.outreach.withhold import Withholding
from forewarn.records import Incident, Message, MessageKey, SendResult
from forewarn.settings import PlaybookSettings
from tests.recording import Courier
from tests.unit.test_decision_gate import Parts, delivered, parts
from tests.unit.test_outreach import ScriptedSender, _opened

NIGHT = QuietHours(time(21), time(9))
"""The incidents open at 08:15 in the customers' Chicago: their SMS waits for 09:00 (15:00 UTC)."""


def _tv() -> Incident:
    """The same customers' TV signal, opening five minutes after their internet outage."""
    first = _opened()
    return replace(first, id=first.id.replace("no_internet", "tv_signal"), topic="tv_signal")


def _sent(senders: dict[str, ScriptedSender], incident_id: str, kind: str) -> list[Message]:
    return [m for s in senders.values() for m in s.sent if m.key.incident_id == incident_id and m.key.kind == kind]


def _morning(p: Parts) -> tuple[Courier, dict[str, ScriptedSender]]:
    p.clock.advance(timedelta(minutes=55))  # 09:15 in Chicago: the night's SMS are due
    courier, senders = delivered(p)
    p.clock.advance(timedelta(seconds=10))  # a carried warning reached first waited 5 s for the one carrying it
    courier.run()
    return courier, senders


def _night(playbook: PlaybookSettings | None = None, **kwargs: object) -> Parts:
    return parts(playbook, quiet=NIGHT, **kwargs)  # type: ignore[arg-type]


def test_a_customer_in_two_overlapping_incidents_gets_one_warning_naming_both() -> None:
    p = _night()
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)  # deferred to the customers' morning
    report = p.outreach.handle(tv)
    assert dict(report.outcomes) == {"deferred": 10, "enqueued": 3}  # email goes at once, SMS waits
    sms = p.outbox.waiting(internet.id, sorted(p.outbox.decided(internet.id, "warning")))
    assert len(sms) == 10 and p.outbox.covered(internet.id) == {c: tv.id for c in sms}

    _, senders = _morning(p)
    warned = p.outbox.decided(internet.id, "warning")
    warnings = [m for s in senders.values() for m in s.sent if m.key.kind == "warning"]
    per_customer = Counter(m.key.customer_id for m in warnings)
    assert {c: per_customer[c] for c in sms} == dict.fromkeys(sms, 1)  # one warning each
    # email goes at once, day or night: each email customer got both warnings as they came (none is taken back)
    assert {c: per_customer[c] for c in warned - sms} == dict.fromkeys(warned - sms, 2)
    carrying = [m for m in warnings if m.key.customer_id in sms]
    assert {m.key.incident_id for m in carrying} == {tv.id}
    assert all("TV signal" in m.body and "internet" in m.body for m in carrying), [m.body for m in carrying]
    assert p.outbox.funnel(internet.id).get("covered") == 10
    assert not p.outbox.covered(tv.id)


def test_the_covered_incidents_stages_and_all_clear_reach_the_customers_it_was_carried_to() -> None:
    p = _night()
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    courier, senders = _morning(p)
    told = p.outbox.accepted(internet.id, "warning") | set(p.outbox.covered(internet.id))
    assert len(told) == 13
    life = Lifecycle(p.outreach)
    life.ack(internet.id, "ana")
    courier.run()
    life.resolve(internet.id, "ana")
    courier.run()
    assert {m.key.customer_id for m in _sent(senders, internet.id, "ack")} == told
    assert {m.key.customer_id for m in _sent(senders, internet.id, "resolved")} == told
    assert not _sent(senders, tv.id, "resolved")  # the TV problem is still open


def test_a_warning_that_already_went_or_is_about_to_is_not_taken_back() -> None:
    p = parts()  # no quiet hours: each warning is queued to go at once
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    assert p.outbox.covered(internet.id) == {}
    _, senders = delivered(p)
    assert len(_sent(senders, internet.id, "warning")) == len(_sent(senders, tv.id, "warning")) == 13
    assert not any("internet" in m.body for m in _sent(senders, tv.id, "warning"))


def test_the_daily_budget_counts_the_carrying_warning_once_and_caps_a_later_incident() -> None:
    log = InMemoryContactLog()
    p = _night(cap=ContactCap(log, max_messages=1))
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    carrying = p.outreach.handle(tv)  # replaces the waiting SMS: the budget is not spent twice for them
    assert dict(carrying.outcomes) == {"deferred": 10, "capped": 3}  # the emails went: their budget is spent
    sms = set(p.outbox.covered(internet.id))
    assert log.counts_since(sorted(sms), internet.opened_at) == [1] * 10
    _morning(p)
    billing = replace(internet, id=internet.id.replace("no_internet", "billing"), topic="billing")
    assert dict(p.outreach.handle(billing).outcomes) == {"capped": 13}  # a further message the same day: over


def test_a_customer_held_out_of_the_later_incident_keeps_the_earlier_warning() -> None:
    p = _night(holdout=0.4)
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    held = p.outbox.held_out(tv.id) - p.outbox.held_out(internet.id)
    assert held, "the seed must hold out someone of the later incident only"
    assert not held & set(p.outbox.covered(internet.id))
    _, senders = _morning(p)
    assert held <= {m.key.customer_id for m in _sent(senders, internet.id, "warning")}


def test_a_carried_warning_goes_itself_when_the_carrying_incident_is_held_even_after_it_was_covered() -> None:
    p = _night()
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    p.outreach.hold(tv.id, "ana", "not us")  # the TV warnings will be withheld: the internet ones must go
    _, senders = _morning(p)
    assert len(_sent(senders, internet.id, "warning")) == 13 and not _sent(senders, tv.id, "warning")


def test_at_send_time_a_carried_warning_waits_while_the_carrying_one_may_go_and_goes_when_it_will_not() -> None:
    p = _night()
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    one, other = sorted(p.outbox.covered(internet.id))[:2]
    withholding = Withholding(p.decisions, p.silences, p.outbox, clock=p.clock, ttl=0)
    assert withholding.carried_by(MessageKey(internet.id, one, "warning")) == ("wait", tv.id)  # TV's waits too
    p.clock.advance(timedelta(minutes=55))
    p.outbox.promote_due(p.clock())
    tv_sms = {lease.message_id: lease for lease in p.outbox.take("sms", "w", 100, 0)}
    for customer, fate in ((one, "sent"), (other, "withheld")):
        lease = tv_sms[message_id(MessageKey(tv.id, customer, "warning"), "sms")]
        p.outbox.begin(lease, p.clock())
        p.outbox.settle(lease, fate, p.clock(), SendResult(ok=fate == "sent", provider_id="SM1", reason=fate))
    assert withholding.carried_by(MessageKey(internet.id, one, "warning")) == ("covered", tv.id)
    assert withholding.carried_by(MessageKey(internet.id, other, "warning")) is None  # TV's will not go: it goes
    assert withholding.carried_by(MessageKey(internet.id, "CU-999", "warning")) is None


def test_safety_news_is_never_carried() -> None:
    p = _night(PlaybookSettings(topic_criticality={"no_internet": "critical"}, approval_from=None))
    internet, tv = _opened(), _tv()
    p.outreach.handle(internet)
    p.outreach.handle(tv)
    assert p.outbox.covered(internet.id) == {}
