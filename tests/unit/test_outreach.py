"""Audience building, the outbox's decide-once rule, a worker's dispatch, and Outreach end to end (in process).

The only stand-in is `ScriptedSender`, an implementation of our own `Sender` protocol; the
renderer, customer index and outbox are the real in-process ones, and messages are sent by the
real dispatch stages of a delivery worker (`tests.recording.Courier`), on a clock the test moves.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple

import jinja2
import pytest

from forewarn.connectors.memory import InMemoryContactLog, InMemoryCustomerIndex, InMemoryIncidentStore
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.sms import sms_segments
from forewarn.connectors.templates import JinjaRenderer
from forewarn.envelopes import Envelope
from forewarn.geo import Area
from forewarn.interfaces import DeliveryQueue, Outbox, Sender
from forewarn.outreach.audience import build_audience
from forewarn.outreach.breaker import Backoff
from forewarn.outreach.enqueue import ContactCap, Enqueuer
from forewarn.outreach.planner import Outreach
from forewarn.outreach.policy import QuietHours
from forewarn.outreach.preview import AudiencePreviewer, SmsCost, UnknownIncident
from forewarn.outreach.targeting import warning_segment
from forewarn.records import Channel, Customer, Incident, Message, MessageKey, SendResult
from tests.recording import T0, Clock, Courier

TEMPLATES = Path(__file__).resolve().parents[2] / "config" / "templates"
REGION = "TX-453"
TEMPLATE_SYNTAX = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")

OK = SendResult(ok=True, provider_id="P-ok")
BUSY = SendResult(ok=False, retryable=True, reason="429 too many requests")
INVALID = SendResult(ok=False, retryable=False, reason="21211 invalid 'To' number")


class ScriptedSender:
    """A `Sender` whose results are scripted per address; unscripted sends succeed."""

    def __init__(self, channel: Channel, script: dict[str, list[SendResult]] | None = None):
        self.channel = channel
        self.script = {to: list(results) for to, results in (script or {}).items()}
        self.sent: list[Message] = []
        self.html: list[str | None] = []

    def send(self, message: Message, *, status_callback: str | None = None, html: str | None = None) -> SendResult:
        assert message.channel == self.channel
        self.sent.append(message)
        self.html.append(html)
        results = self.script.get(message.to)
        if results:
            return results.pop(0)
        return replace(OK, provider_id=f"P-{len(self.sent)}")


def key(customer: str = "CU-1", kind: str = "warning") -> MessageKey:
    return MessageKey("INC-1", customer, kind)  # type: ignore[arg-type]


def envelope(customer: str = "CU-1", kind: str = "warning", body: str = "hello", channel: Channel = "sms",
             deadline: timedelta = timedelta(hours=6)) -> Envelope:
    to = "+15125550100" if channel == "sms" else "a@example.com"
    subject = "subject" if channel == "email" else None
    return Envelope(Message(key(customer, kind), channel, to, body, subject), T0, T0 + deadline)


ID = "INC-1|CU-1|warning|sms"


def test_scripted_sender_implements_the_protocol_and_the_outbox_both_sides() -> None:
    assert isinstance(ScriptedSender("sms"), Sender)
    assert isinstance(InMemoryOutbox(), Outbox) and isinstance(InMemoryOutbox(), DeliveryQueue)


# --- build_audience ---------------------------------------------------------------------------------


def _customer(i: int, region: str = REGION, **fields) -> Customer:
    base = {"id": f"CU-{i:03d}", "region": region, "phone": f"+1512555{i:04d}", "email": f"c{i:03d}@example.com"}
    return Customer.model_validate(base | fields)


@pytest.fixture
def small_index() -> InMemoryCustomerIndex:
    index = InMemoryCustomerIndex()
    index.upsert([
        _customer(1), _customer(2), _customer(3),                            # plain sms customers
        _customer(4, opt_out={"sms": True}),                                 # opted out of their channel
        _customer(5, preferred_channel="email", opt_out={"sms": True}),      # reachable by email
        _customer(6, preferred_channel="email", email=None),                 # no address for their channel
        _customer(7, phone=None),                                            # no phone, prefers sms
        _customer(8, region="CA-037"),                                       # outside the segment
    ])
    return index


def test_audience_excludes_reporters_opt_outs_and_missing_addresses(small_index) -> None:
    audience = build_audience({"region": REGION}, small_index, frozenset({"CU-001"}), max_audience=100)
    assert audience.held is None
    assert sorted((r.customer.id, r.channel, r.address) for r in audience.recipients) == [
        ("CU-002", "sms", "+15125550002"),
        ("CU-003", "sms", "+15125550003"),
        ("CU-005", "email", "c005@example.com"),
    ]
    assert dict(audience.excluded) == {
        "already reported": 1,
        "opted out of sms": 1,
        "no email address": 1,
        "no sms address": 1,
    }
    assert audience.by_channel() == {"sms": 2, "email": 1}
    assert audience.segment == {"region": REGION}


def test_audience_over_max_is_held(small_index) -> None:
    audience = build_audience({"region": REGION}, small_index, frozenset(), max_audience=3)
    assert audience.recipients == []
    assert audience.held is not None and "max_audience" in audience.held
    assert audience.excluded["held: over max_audience"] == 4
    # At the limit it is not held.
    assert len(build_audience({"region": REGION}, small_index, frozenset(), max_audience=4).recipients) == 4


def test_empty_segment_is_held_not_sent_to_everyone(small_index) -> None:
    audience = build_audience({}, small_index, frozenset(), max_audience=1_000)
    assert audience.recipients == []
    assert audience.held is not None and "segment" in audience.held


def test_segment_is_an_and_of_attributes(small_index) -> None:
    small_index.upsert([_customer(9, products=[{"model": "R7000", "firmware": "2.1.7"}]),
                        _customer(10, region="CA-037", products=[{"model": "R7000", "firmware": "2.1.7"}])])
    audience = build_audience({"region": REGION, "model": "R7000"}, small_index, frozenset(), max_audience=10)
    assert [r.customer.id for r in audience.recipients] == ["CU-009"]


# --- the outbox decides once; a worker sends, retries inside the deadline, records -------------------


def test_a_message_is_decided_once_whatever_the_number_of_enqueues() -> None:
    outbox, clock, sender = InMemoryOutbox(), Clock(), ScriptedSender("sms")
    courier = Courier(outbox, {"sms": sender}, clock)
    assert outbox.enqueue([envelope()], clock()) == [ID]
    assert outbox.enqueue([envelope()], clock()) == []
    assert outbox.enqueue([envelope(body="changed text")], clock()) == []  # the key is what dedups
    assert outbox.enqueue([envelope(channel="email")], clock()) == []  # one message per key, on one channel
    assert courier.run() == {"sent": 1}
    assert outbox.enqueue([envelope()], clock()) == []  # sent: never decided again
    assert courier.run() == {}
    assert [m.body for m in sender.sent] == ["hello"]
    assert outbox.state(ID)["state"] == "sent" and outbox.state(ID)["provider_id"] == "P-1"
    assert outbox.decided("INC-1", "warning") == outbox.accepted("INC-1", "warning") == {"CU-1"}
    # Another kind for the same customer is another message.
    assert outbox.enqueue([envelope(kind="resolved", body="fixed")], clock()) == ["INC-1|CU-1|resolved|sms"]
    assert courier.run() == {"sent": 1}
    assert outbox.accepted("INC-1", "resolved") == {"CU-1"}


def test_a_retryable_failure_is_retried_after_its_backoff_then_sent_once() -> None:
    outbox, clock = InMemoryOutbox(), Clock()
    sender = ScriptedSender("sms", {"+15125550100": [BUSY, BUSY]})
    courier = Courier(outbox, {"sms": sender}, clock, backoff=Backoff(timedelta(seconds=0.5), timedelta(minutes=1)))
    outbox.enqueue([envelope()], clock())
    assert courier.run() == {"retrying": 1} and outbox.scheduled() == 1
    # Nothing sleeps: the message waits in the outbox for its backoff (0.5 s, then 1 s), not a moment less.
    clock.advance(timedelta(seconds=0.49))
    assert courier.run() == {}
    clock.advance(timedelta(seconds=0.01))
    assert courier.run() == {"retrying": 1}
    clock.advance(timedelta(seconds=0.99))
    assert courier.run() == {}
    clock.advance(timedelta(seconds=0.01))
    assert courier.run() == {"sent": 1}
    assert len(sender.sent) == 3 and outbox.scheduled() == 0
    assert outbox.accepted("INC-1", "warning") == {"CU-1"} and outbox.state(ID)["attempts"] == "3"
    states = [e["state"] for e in outbox.history("INC-1", "CU-1")[ID]]
    assert states == ["decided", "enqueued"] + ["sending", "retrying"] * 2 + ["sending", "sent"]


def test_a_retry_waits_at_least_what_the_provider_asked() -> None:
    outbox, clock = InMemoryOutbox(), Clock()
    slow_down = SendResult(ok=False, retryable=True, retry_after=30.0, reason="429 Retry-After: 30")
    sender = ScriptedSender("sms", {"+15125550100": [slow_down]})
    courier = Courier(outbox, {"sms": sender}, clock, backoff=Backoff(timedelta(seconds=1), timedelta(minutes=1)))
    outbox.enqueue([envelope()], clock())
    assert courier.run() == {"retrying": 1}
    clock.advance(timedelta(seconds=29))
    assert courier.run() == {}
    clock.advance(timedelta(seconds=1))
    assert courier.run() == {"sent": 1} and len(sender.sent) == 2


def test_a_provider_busy_past_the_deadline_expires_the_message_and_a_replay_sends_nothing() -> None:
    outbox, clock = InMemoryOutbox(), Clock()
    sender = ScriptedSender("sms", {"+15125550100": [BUSY] * 100})
    courier = Courier(outbox, {"sms": sender}, clock, backoff=Backoff(timedelta(seconds=1), timedelta(minutes=1)))
    outbox.enqueue([envelope(deadline=timedelta(seconds=10))], clock())
    # Tries at 0, 1, 3 and 7 s; the next would be at 15 s, past the 10 s deadline: expired, not retried forever.
    assert courier.run_until_settled(timedelta(seconds=1)) == {"retrying": 3, "expired": 1}
    assert len(sender.sent) == 4
    state = outbox.state(ID)
    assert state["state"] == "expired" and "deadline" in state["reason"] and "429" in state["reason"]
    assert outbox.accepted("INC-1", "warning") == set() and outbox.decided("INC-1", "warning") == {"CU-1"}
    assert outbox.funnel("INC-1") == {"decided": 1, "enqueued": 1, "expired": 1}
    # The decision stands: a replayed epoch queues nothing, and nothing more is sent.
    assert outbox.enqueue([envelope(deadline=timedelta(seconds=10))], clock()) == []
    assert courier.run() == {} and len(sender.sent) == 4


def test_a_final_failure_is_recorded_and_not_resent() -> None:
    outbox, clock = InMemoryOutbox(), Clock()
    sender = ScriptedSender("sms", {"+15125550100": [INVALID]})
    courier = Courier(outbox, {"sms": sender}, clock)
    outbox.enqueue([envelope()], clock())
    assert courier.run() == {"failed": 1}
    assert len(sender.sent) == 1 and outbox.scheduled() == 0  # no retry is even scheduled
    state = outbox.state(ID)
    assert (state["state"], state["reason"]) == ("failed", INVALID.reason)
    assert outbox.accepted("INC-1", "warning") == set()
    assert outbox.enqueue([envelope()], clock()) == []
    assert courier.run() == {} and len(sender.sent) == 1


def test_a_worker_without_a_sender_for_a_channel_leaves_its_messages_queued() -> None:
    outbox, clock = InMemoryOutbox(), Clock()
    sms, email = ScriptedSender("sms"), ScriptedSender("email")
    outbox.enqueue([envelope(channel="email"), envelope("CU-2")], clock())
    assert Courier(outbox, {"sms": sms}, clock).run() == {"sent": 1}
    assert outbox.backlog("email") == 1 and outbox.state("INC-1|CU-1|warning|email")["state"] == "enqueued"
    assert Courier(outbox, {"email": email}, clock).run() == {"sent": 1}  # a worker that has one sends it
    assert [m.to for m in email.sent] == ["a@example.com"] and outbox.backlog("email") == 0


# --- Outreach end to end ------------------------------------------------------------------------------


def _base() -> list[Customer]:
    """20 customers in REGION (0-5 reported the outage) and 40 elsewhere."""
    people = []
    for i in range(60):
        fields: dict = {"timezone": "America/Chicago"}
        if i >= 20:
            fields = {"region": "CA-037", "timezone": "America/Los_Angeles"}
        if i in (8, 9, 10):
            fields["preferred_channel"] = "email"
        if i == 7:
            fields["opt_out"] = {"sms": True}
        if i == 11:
            fields["language"] = "es"
        if i == 12:
            fields["email"] = None  # its number is invalid too: nothing can reach it
        model = "R7000" if i % 2 else "X20"
        people.append(_customer(i, **fields, products=[{"model": model, "firmware": f"{model}-1"}]))
    return people


REPORTERS = frozenset(f"CU-{i:03d}" for i in range(6))
FAILS_FOR_GOOD = "+15125550012"  # CU-012: an invalid number, and no email to fall back to
BUSY_ONCE = "+15125550013"  # CU-013: the provider is busy once
SECOND = timedelta(seconds=1)


class Parts(NamedTuple):
    outreach: Outreach
    outbox: InMemoryOutbox
    senders: dict[Channel, ScriptedSender]
    courier: Courier


@pytest.fixture
def parts() -> Parts:
    index = InMemoryCustomerIndex()
    index.upsert(_base())
    outbox, clock = InMemoryOutbox(), Clock(_opened().opened_at)
    senders: dict[Channel, ScriptedSender] = {
        "sms": ScriptedSender("sms", {FAILS_FOR_GOOD: [INVALID], BUSY_ONCE: [BUSY]}), "email": ScriptedSender("email")}
    outreach = Outreach(index, Enqueuer(outbox, clock=clock), JinjaRenderer(TEMPLATES), max_audience=100)
    return Parts(outreach, outbox, senders, Courier(outbox, senders, clock, backoff=Backoff(SECOND, 60 * SECOND)))


def _opened() -> Incident:
    first = datetime(2026, 11, 17, 13, 15, tzinfo=UTC)
    return Incident("INC-20261117T1315Z-no_internet-TX-453-3a55", "no_internet", REGION, "opened",
                    opened_at=first + timedelta(hours=1), first_window_start=first,
                    last_spike_end=first + timedelta(hours=1), observed=16, expected=0.35, spikes=1,
                    linked_cases=16, reporters=REPORTERS)


def _all_sent(senders: dict[Channel, ScriptedSender]) -> list[Message]:
    return [m for s in senders.values() for m in s.sent]


def _check_rendered(messages: list[Message]) -> None:
    for m in messages:
        assert m.body and not TEMPLATE_SYNTAX.search(m.body), m.body
        if m.channel == "email":
            assert m.subject and not TEMPLATE_SYNTAX.search(m.subject)
            assert not m.body.startswith("Subject:")
        else:
            assert m.subject is None
            assert len(m.body) <= 320


def test_opened_incident_warns_the_audience_once(parts: Parts) -> None:
    outreach, outbox, senders, courier = parts
    incident = _opened()
    report = outreach.handle(incident)

    # Region customers 6..19, minus CU-007 (opted out of sms): 13 recipients, decided and queued at once.
    assert report.held is None
    assert report.audience_size == 13
    assert report.excluded == {"already reported": 6, "opted out of sms": 1}
    assert dict(report.outcomes) == {"enqueued": 13}
    assert dict(report.enqueued_by_channel) == {"sms": 10, "email": 3}
    assert _all_sent(senders) == []  # the flow decides; nothing is sent until a worker runs
    decided = {f"CU-{i:03d}" for i in range(6, 20)} - {"CU-007"}
    assert outbox.decided(incident.id, "warning") == decided

    # A worker: one invalid number fails for good, one busy provider is retried a second later.
    assert courier.run() == {"sent": 11, "failed": 1, "retrying": 1}
    assert courier.run_until_settled(SECOND) == {"sent": 1}
    messages = _all_sent(senders)
    delivered = {m.key.customer_id for m in messages if m.to != FAILS_FOR_GOOD}
    expected = decided - {"CU-012"}
    assert delivered == expected
    assert outbox.accepted(incident.id, "warning") == expected
    assert outbox.funnel(incident.id) == {"decided": 13, "enqueued": 13, "sent": 12, "failed": 1}
    assert not REPORTERS & {m.key.customer_id for m in messages}
    assert sum(m.to == BUSY_ONCE for m in messages) == 2  # retried once
    assert all(m.key.kind == "warning" and m.key.incident_id == incident.id for m in messages)

    _check_rendered(messages)
    texts = [m for m in messages if m.channel == "sms"]
    english = [m for m in texts if m.key.customer_id != "CU-011"]
    spanish = [m for m in texts if m.key.customer_id == "CU-011"]
    assert all("internet outage in your area" in m.body for m in english)  # the topic's own SMS template
    assert spanish and all(m.body.startswith("Aviso de Forewarn") for m in spanish)  # language before topic
    # the first window's start in the customer's zone, in their language's style
    assert english and all("7:15 AM CST, Nov 17" in m.body for m in english)
    assert all("7:15 CST, 17 nov" in m.body for m in spanish)
    assert all(sms_segments(m.body)[0] == "GSM-7" for m in english)  # no UCS-2 space from the date format
    emails = [m for m in messages if m.channel == "email"]
    assert {m.to for m in emails} == {"c008@example.com", "c009@example.com", "c010@example.com"}
    for m in emails:
        assert m.subject == "We are working on internet problems that may affect you"  # the label, not the key
        assert "in your area" in m.body and incident.id in m.body
    assert all(html and incident.id in html for html in senders["email"].html)  # with its HTML part
    assert senders["sms"].html == [None] * len(texts)

    # The same event again (a replayed epoch): nothing new is decided, nothing new goes out.
    sent_before = len(messages)
    again = outreach.handle(incident)
    assert dict(again.outcomes) == {"duplicate": 13} and not again.enqueued_by_channel
    assert courier.run() == {}
    assert len(_all_sent(senders)) == sent_before
    # Updates change nothing for customers.
    assert not outreach.handle(replace(incident, status="updated", spikes=2)).outcomes
    assert courier.run() == {}
    assert len(_all_sent(senders)) == sent_before


def test_resolved_incident_tells_only_those_warned(parts: Parts) -> None:
    outreach, outbox, senders, courier = parts
    incident = _opened()
    outreach.handle(incident)
    courier.run_until_settled(SECOND)
    warned = outbox.accepted(incident.id, "warning")
    assert "CU-012" not in warned and len(warned) == 12  # never warned (invalid number): no all-clear either
    for sender in senders.values():
        sender.sent.clear()

    resolved = replace(incident, status="resolved", resolved_at=datetime(2026, 11, 17, 18, 30, tzinfo=UTC))
    report = outreach.handle(resolved)
    # Every customer decided a warning gets an all-clear decided; the worker skips the one never reached.
    assert report.audience_size == 13 and dict(report.outcomes) == {"enqueued": 13}
    assert courier.run() == {"sent": len(warned), "skipped": 1}
    messages = _all_sent(senders)
    assert {m.key.customer_id for m in messages} == warned
    assert all(m.key.kind == "resolved" for m in messages)
    assert outbox.accepted(incident.id, "resolved") == warned
    skipped = outbox.history(incident.id, "CU-012")[f"{incident.id}|CU-012|resolved|sms"]
    assert skipped[-1]["state"] == "skipped"
    _check_rendered(messages)
    for m in messages:
        assert "fixed" in m.body
        assert "12:30 PM CST, Nov 17" in m.body  # resolved_at in the customer's time zone
        if m.channel == "email":
            assert m.subject == "Fixed: the internet problem"

    # A second "resolved" (replay) sends nothing.
    assert dict(outreach.handle(resolved).outcomes) == {"duplicate": 13}
    assert courier.run() == {}
    assert len(_all_sent(senders)) == len(messages)


def test_an_all_clear_judges_quiet_hours_when_the_incident_resolved_not_when_it_opened(parts: Parts) -> None:
    _, outbox, _, _ = parts
    index = InMemoryCustomerIndex()
    index.upsert(_base())
    clock = Clock(_opened().opened_at)
    outreach = Outreach(index, Enqueuer(outbox, clock=clock, quiet=QuietHours(time(21), time(8))),
                        JinjaRenderer(TEMPLATES), max_audience=100)
    incident = _opened()  # opened 08:15 in Chicago: the warnings go at once
    assert dict(outreach.handle(incident).outcomes) == {"enqueued": 13}
    resolved_at = datetime(2026, 11, 18, 4, tzinfo=UTC)  # 22:00 in Chicago: the SMS all-clears wait for 08:00
    clock.advance(resolved_at - clock())
    report = outreach.handle(replace(incident, status="resolved", resolved_at=resolved_at))
    assert dict(report.outcomes) == {"deferred": 10, "enqueued": 3}  # the emails are not held back
    morning = datetime(2026, 11, 18, 14, tzinfo=UTC)
    assert outbox.scheduled(before=morning - SECOND) == 0
    assert outbox.scheduled(before=morning) == 10


def test_outreach_holds_an_audience_over_max(parts: Parts) -> None:
    outreach, outbox, senders, courier = parts
    outreach.max_audience = 5
    report = outreach.handle(_opened())
    assert report.held is not None and report.audience_size == 0 and not report.outcomes
    assert outbox.decided(_opened().id, "warning") == set()
    assert courier.run() == {}
    assert _all_sent(senders) == []


def test_hazard_messages_never_fall_back_to_an_incident_template(tmp_path: Path) -> None:
    # A Spanish incident template exists, a Spanish hazard one does not: the hazard text must be
    # the English hazard template, not the incident one (whose variables a hazard lacks).
    (tmp_path / "default.warning.sms.es.j2").write_text("Incidente {{ since_local }}")
    (tmp_path / "hazard.warning.sms.j2").write_text("{{ event }} in your area")
    renderer = JinjaRenderer(tmp_path)
    context = {"event": "High Wind Warning", "language": "es"}
    rendered = renderer.render("hazard", "warning", "sms", context, family="hazard")
    assert rendered.body == "High Wind Warning in your area"
    with pytest.raises(jinja2.UndefinedError):
        renderer.render("hazard", "warning", "sms", context)  # the incident family: the Spanish default wins


def test_the_preview_of_an_incident_follows_the_planners_rule(parts: Parts) -> None:
    outreach, outbox, _, courier = parts
    outreach.store = store = InMemoryIncidentStore()
    incident = _opened()
    preview = AudiencePreviewer(outreach.index, outreach.renderer, sms_segments, 0.01, incidents=store, outbox=outbox)
    with pytest.raises(UnknownIncident, match=incident.id):
        preview.incident(incident.id)
    report = outreach.handle(incident)
    courier.run_until_settled(SECOND)
    decided = outbox.decided(incident.id, "warning")
    assert outreach.enqueuer.outbox.decided(incident.id, "warning") == decided
    # A customer who joins the region after the warnings were decided: the only one outreach would add.
    outreach.index.upsert([_customer(99, timezone="America/Chicago")])
    seen = preview.incident(incident.id)
    # The segment the planner warned, and its audience: every customer decided a warning is "already
    # contacted", the one whose send failed for good (CU-012) too: the planner never decides a key twice.
    assert seen.segment == warning_segment(report.incident) == {"region": REGION}
    assert "CU-012" in decided and "CU-012" not in outbox.accepted(incident.id, "warning")
    assert seen.excluded["already contacted"] == len(decided) == report.outcomes["enqueued"]
    assert seen.excluded["already reported"] == report.excluded["already reported"]
    assert seen.size == 1 and seen.sample == ["CU-099"]
    assert seen.area == incident.id and seen.sms == [SmsCost("en", "GSM-7", 1, 1)]
    # ... and what outreach does agrees: a replay decides that customer only.
    assert dict(outreach.handle(incident).outcomes) == {"duplicate": 13, "enqueued": 1}


def test_the_preview_of_a_segment_in_an_area_counts_the_capped() -> None:
    index = InMemoryCustomerIndex()
    index.upsert([_customer(i, lat=30.37 if i % 4 == 3 else 30.27, lon=-97.74, language=("en", "es")[i % 2],
                            products=[{"model": "R7000" if i < 8 else "X20", "firmware": "1"}]) for i in range(10)])
    log = InMemoryContactLog()
    at = datetime(2026, 11, 17, 14, tzinfo=UTC)
    log.add("CU-000", at - timedelta(hours=2), "INC-old|CU-000|warning")
    preview = AudiencePreviewer(index, JinjaRenderer(TEMPLATES), lambda body: ("GSM-7", 2), 0.5,
                                cap=ContactCap(log, 1), clock=lambda: at)
    seen = preview.segment({"model": "R7000"}, Area(circles=[(30.27, -97.74, 5.0)]), "circle.json", "no_internet")
    # CU-000..007 own an R7000; CU-003 and CU-007 are 11 km north; CU-000 had its warning today.
    assert seen.excluded == {"capped": 1} and seen.size == 5 and seen.area == "circle.json"
    assert sorted(seen.sample) == ["CU-001", "CU-002", "CU-004", "CU-005", "CU-006"]
    assert seen.sms == [SmsCost("en", "GSM-7", 2, 3), SmsCost("es", "GSM-7", 2, 2)] and seen.sms_cost == 5.0
    assert preview.segment({"model": "R7000"}).size == 7  # no area: the whole segment, less the capped
    with pytest.raises(ValueError, match="give a segment"):
        preview.segment({})
