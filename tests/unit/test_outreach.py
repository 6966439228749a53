"""Audience building, delivery through the ledger, and Outreach end to end (in process).

The only stand-in is `ScriptedSender`, an implementation of our own `Sender` protocol;
the renderer, customer index and ledger are the real in-process ones.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jinja2
import pytest

from forewarn.connectors.memory import InMemoryContactLog, InMemoryCustomerIndex, InMemoryIncidentStore, InMemoryLedger
from forewarn.connectors.sms import sms_segments
from forewarn.connectors.templates import JinjaRenderer
from forewarn.geo import Area
from forewarn.interfaces import Sender
from forewarn.outreach.audience import build_audience
from forewarn.outreach.delivery import ContactCap, Deliverer, RetryPolicy
from forewarn.outreach.planner import Outreach
from forewarn.outreach.preview import AudiencePreviewer, SmsCost, UnknownIncident
from forewarn.outreach.targeting import warning_segment
from forewarn.records import Channel, Customer, Incident, Message, MessageKey, SendResult

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

    def send(self, message: Message) -> SendResult:
        assert message.channel == self.channel
        self.sent.append(message)
        results = self.script.get(message.to)
        if results:
            return results.pop(0)
        return replace(OK, provider_id=f"P-{len(self.sent)}")


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def key(customer: str = "CU-1", kind: str = "warning") -> MessageKey:
    return MessageKey("INC-1", customer, kind)  # type: ignore[arg-type]


def sms(customer: str = "CU-1", to: str = "+15125550100") -> Message:
    return Message(key(customer), "sms", to, "hello")


def test_scripted_sender_implements_the_protocol() -> None:
    assert isinstance(ScriptedSender("sms"), Sender)


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


# --- Deliverer --------------------------------------------------------------------------------------


def test_second_delivery_is_a_duplicate() -> None:
    ledger, sender = InMemoryLedger(), ScriptedSender("sms")
    deliver = Deliverer(ledger, {"sms": sender}, sleep=Sleeps())
    assert deliver.deliver(sms()) == "sent"
    assert deliver.deliver(sms()) == "duplicate"
    assert deliver.deliver(replace(sms(), body="changed text")) == "duplicate"  # the key is what dedups
    assert len(sender.sent) == 1
    assert ledger.outcome(key())["status"] == "sent"  # type: ignore[index]
    assert ledger.recipients("INC-1", "warning") == {"CU-1"}
    # Another kind for the same customer is another message.
    assert deliver.deliver(Message(key(kind="resolved"), "sms", "+15125550100", "fixed")) == "sent"


def test_retryable_failure_is_retried_then_sent() -> None:
    ledger, sleeps = InMemoryLedger(), Sleeps()
    sender = ScriptedSender("sms", {"+15125550100": [BUSY, BUSY]})
    deliver = Deliverer(ledger, {"sms": sender}, RetryPolicy(attempts=3, backoff_seconds=0.5), sleep=sleeps)
    assert deliver.deliver(sms()) == "sent"
    assert len(sender.sent) == 3
    assert sleeps == [0.5, 1.0]
    assert ledger.recipients("INC-1", "warning") == {"CU-1"}


def test_retries_exhausted_defer_and_release_the_claim() -> None:
    ledger, sleeps = InMemoryLedger(), Sleeps()
    sender = ScriptedSender("sms", {"+15125550100": [BUSY, BUSY, BUSY]})
    deliver = Deliverer(ledger, {"sms": sender}, RetryPolicy(attempts=3, backoff_seconds=0.25), sleep=sleeps)
    assert deliver.deliver(sms()) == "deferred"
    assert len(sender.sent) == 3
    assert sleeps == [0.25, 0.5]
    assert ledger.outcome(key()) is None  # neither recorded nor still claimed
    assert ledger.recipients("INC-1", "warning") == set()
    # A later pass (the script has run out, so the provider is fine again) sends it, once.
    assert deliver.deliver(sms()) == "sent"
    assert deliver.deliver(sms()) == "duplicate"
    assert len(sender.sent) == 4


def test_non_retryable_failure_is_recorded_and_not_resent() -> None:
    ledger, sleeps = InMemoryLedger(), Sleeps()
    sender = ScriptedSender("sms", {"+15125550100": [INVALID]})
    deliver = Deliverer(ledger, {"sms": sender}, sleep=sleeps)
    assert deliver.deliver(sms()) == "failed"
    assert len(sender.sent) == 1
    assert sleeps == []
    outcome = ledger.outcome(key())
    assert isinstance(outcome, dict)
    assert (outcome["status"], outcome["reason"]) == ("failed", INVALID.reason)
    assert ledger.recipients("INC-1", "warning") == set()
    assert deliver.deliver(sms()) == "duplicate"
    assert len(sender.sent) == 1


def test_missing_sender_for_a_channel_is_an_error() -> None:
    deliver = Deliverer(InMemoryLedger(), {"sms": ScriptedSender("sms")}, sleep=Sleeps())
    with pytest.raises(ValueError, match="email"):
        deliver.deliver(Message(key(), "email", "a@example.com", "hi", "subject"))


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
        model = "R7000" if i % 2 else "X20"
        people.append(_customer(i, **fields, products=[{"model": model, "firmware": f"{model}-1"}]))
    return people


REPORTERS = frozenset(f"CU-{i:03d}" for i in range(6))
FAILS_FOR_GOOD = "+15125550012"  # CU-012: an invalid number
BUSY_ONCE = "+15125550013"  # CU-013: the provider is busy once


@pytest.fixture
def outreach_parts():
    index = InMemoryCustomerIndex()
    index.upsert(_base())
    ledger = InMemoryLedger()
    senders: dict[Channel, Sender] = {"sms": ScriptedSender("sms", {FAILS_FOR_GOOD: [INVALID], BUSY_ONCE: [BUSY]}),
               "email": ScriptedSender("email")}
    deliverer = Deliverer(ledger, senders, RetryPolicy(attempts=3, backoff_seconds=1.0), sleep=Sleeps())
    outreach = Outreach(index, deliverer, JinjaRenderer(TEMPLATES), max_audience=100)
    return outreach, ledger, senders


def _opened() -> Incident:
    first = datetime(2026, 11, 17, 13, 15, tzinfo=UTC)
    return Incident("INC-20261117T1315Z-no_internet-TX-453-3a55", "no_internet", REGION, "opened",
                    opened_at=first + timedelta(hours=1), first_window_start=first,
                    last_spike_end=first + timedelta(hours=1), observed=16, expected=0.35, spikes=1,
                    linked_cases=16, reporters=REPORTERS)


def _all_sent(senders) -> list[Message]:
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


def test_opened_incident_warns_the_audience_once(outreach_parts) -> None:
    outreach, ledger, senders = outreach_parts
    incident = _opened()
    report = outreach.handle(incident)

    # Region customers 6..19, minus CU-007 (opted out of sms): 13 recipients.
    assert report.held is None
    assert report.audience_size == 13
    assert report.excluded == {"already reported": 6, "opted out of sms": 1}
    assert dict(report.outcomes) == {"sent": 12, "failed": 1}
    assert dict(report.sent_by_channel) == {"sms": 9, "email": 3}

    messages = _all_sent(senders)
    delivered = {m.key.customer_id for m in messages if m.to != FAILS_FOR_GOOD}
    expected = {f"CU-{i:03d}" for i in range(6, 20)} - {"CU-007", "CU-012"}
    assert delivered == expected
    assert ledger.recipients(incident.id, "warning") == expected
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

    # The same event again (a replayed epoch): nothing new goes out.
    sent_before = len(messages)
    again = outreach.handle(incident)
    assert dict(again.outcomes) == {"duplicate": 13}
    assert len(_all_sent(senders)) == sent_before
    # Updates change nothing for customers.
    assert not outreach.handle(replace(incident, status="updated", spikes=2)).outcomes
    assert len(_all_sent(senders)) == sent_before


def test_resolved_incident_tells_only_those_warned(outreach_parts) -> None:
    outreach, ledger, senders = outreach_parts
    incident = _opened()
    outreach.handle(incident)
    warned = ledger.recipients(incident.id, "warning")
    for sender in senders.values():
        sender.sent.clear()

    resolved = replace(incident, status="resolved", resolved_at=datetime(2026, 11, 17, 18, 30, tzinfo=UTC))
    report = outreach.handle(resolved)
    messages = _all_sent(senders)
    assert {m.key.customer_id for m in messages} == warned
    assert "CU-012" not in warned  # never warned (invalid number): no all-clear either
    assert dict(report.outcomes) == {"sent": len(warned)}
    assert all(m.key.kind == "resolved" for m in messages)
    assert ledger.recipients(incident.id, "resolved") == warned
    _check_rendered(messages)
    for m in messages:
        assert "fixed" in m.body
        assert "12:30 PM CST, Nov 17" in m.body  # resolved_at in the customer's time zone
        if m.channel == "email":
            assert m.subject == "Fixed: the internet problem"

    # A second "resolved" (replay) sends nothing.
    assert dict(outreach.handle(resolved).outcomes) == {"duplicate": len(warned)}
    assert len(_all_sent(senders)) == len(messages)


def test_outreach_holds_an_audience_over_max(outreach_parts) -> None:
    outreach, ledger, senders = outreach_parts
    outreach.max_audience = 5
    report = outreach.handle(_opened())
    assert report.held is not None and report.audience_size == 0
    assert _all_sent(senders) == []
    assert ledger.recipients(_opened().id, "warning") == set()


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


def test_the_preview_of_an_incident_follows_the_planners_rule(outreach_parts) -> None:
    outreach, ledger, _ = outreach_parts
    outreach.store = store = InMemoryIncidentStore()
    incident = _opened()
    preview = AudiencePreviewer(outreach.index, outreach.renderer, sms_segments, 0.01, incidents=store, ledger=ledger)
    with pytest.raises(UnknownIncident, match=incident.id):
        preview.incident(incident.id)
    report = outreach.handle(incident)
    warned = ledger.recipients(incident.id, "warning")
    assert outreach.deliverer.delivered_to(incident.id, "warning") == warned
    seen = preview.incident(incident.id)
    # The segment the planner warned, and its audience: those warned are now "already contacted",
    # and only the send that failed for good (CU-012) would be tried again.
    assert seen.segment == warning_segment(report.incident) == {"region": REGION}
    assert seen.excluded["already contacted"] == len(warned) == report.outcomes["sent"]
    assert seen.excluded["already reported"] == report.excluded["already reported"]
    assert seen.size == report.audience_size - len(warned) == 1 and seen.sample == ["CU-012"]
    assert seen.area == incident.id and seen.sms == [SmsCost("en", "GSM-7", 1, 1)]


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
