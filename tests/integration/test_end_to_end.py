"""End to end: scenario cases on Kafka → the production flow → texts and emails that really arrive.

The production wiring (`flows.wiring.production_io`) runs against a real Kafka-protocol
broker, a real Redis, the Twilio stand-in and a real SMTP server. Who should have been
warned is computed here from the scenario's ground truth, independently of the code, and
compared with what the Twilio stand-in and the SMTP server actually received.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main

from forewarn.demo.scenario import GroundTruth, Scenario, generate
from forewarn.flows.delivery_parts import production_worker
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import production_io
from forewarn.records import Customer
from forewarn.settings import Settings
from tests.integration.helpers import (
    SMS_FROM,
    load_customers,
    make_settings,
    produce,
    read_topic,
    secrets_for,
    topic_names,
)
from tests.servers.kafka_broker import create_topics
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

pytestmark = pytest.mark.integration

NATIONAL = "*"
TRUTH_OF_TOPIC = {"no_internet": "regional_outage", "wifi_drops": "firmware_defect"}
"""Which injected incident an incident of a topic must belong to: anything else is a false alarm."""


@cache
def default_scenario() -> Scenario:
    """The demo's default scenario (seed 7, 20,000 customers, 50 regions, 3 days).

    Smaller customer bases (2,000 to 12,000) leave the firmware defect undetected with
    default detection settings: its injected cases scale with the customers while the
    background case volume does not.
    """
    return generate()


def run_flow(settings: Settings, twilio: TwilioStandin) -> None:
    """The flow decides (it only fills the Redis outbox); then a delivery worker sends until the outbox is empty."""
    run_main(build_flow(settings, production_io(settings, secrets_for(twilio))))
    deliver_all(settings, twilio)


def deliver_all(settings: Settings, twilio: TwilioStandin, timeout: float = 120.0) -> None:
    worker = production_worker(settings, secrets_for(twilio)).start()
    try:
        assert worker.drain(timeout), "the delivery worker did not empty the outbox"
    finally:
        worker.stop()


@dataclass(frozen=True)
class Received:
    """One message a server accepted, mapped back to a customer."""

    customer_id: str
    channel: str
    address: str
    kind: str  # "warning" or "resolved", from the text itself
    incident_id: str | None  # emails carry a reference; texts do not
    body: str
    message_id: str | None = None  # an email's Message-ID: a re-send after a crash carries the same one


def _sms_kind(body: str) -> str:
    if body.startswith("Forewarn update:"):
        return "resolved"
    if body.startswith(("Forewarn notice:", "Aviso de Forewarn:")):
        return "warning"
    raise AssertionError(f"cannot tell what this text is: {body!r}")


def _email_kind(subject: str) -> str:
    return "resolved" if subject.startswith("Fixed:") else "warning"


def received_messages(scenario_customers: Iterable[Customer], twilio: TwilioStandin,
                      smtp: SmtpServer) -> list[Received]:
    """What the Twilio stand-in and the SMTP server accepted, mapped to customers by address."""
    by_phone: dict[str, str] = {}
    by_email: dict[str, str] = {}
    for c in scenario_customers:
        if c.phone:
            by_phone[c.phone] = c.id
        if c.email:
            by_email[c.email.lower()] = c.id
    out: list[Received] = []
    for sms in list(twilio.messages):
        assert sms.to in by_phone, "a text went to a number that belongs to no customer"
        assert sms.from_ == SMS_FROM
        out.append(Received(by_phone[sms.to], "sms", sms.to, _sms_kind(sms.body), None, sms.body))
    for mail in list(smtp.messages):
        assert len(mail.rcpt_tos) == 1, "one email per recipient"
        to = mail.rcpt_tos[0].lower()
        assert to in by_email, "an email went to an address that belongs to no customer"
        body = mail.message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        reference = next((line.removeprefix("Reference:").strip() for line in text.splitlines()
                          if line.startswith("Reference:")), None)
        out.append(Received(by_email[to], "email", to, _email_kind(str(mail.message["Subject"])),
                            reference, text, str(mail.message["Message-ID"])))
    return out


# --- the independent expectation ------------------------------------------------------------


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def in_truth_segment(truth: GroundTruth, customer: Customer) -> bool:
    """Ground truth of who an injected incident hits, written out rather than asked of the code."""
    if truth.name == "regional_outage":
        return customer.region == truth.region
    if truth.name == "firmware_defect":
        return any(p.model == "R7000" and p.firmware == "2.1.7" for p in customer.products)
    raise AssertionError(f"no segment known for {truth.name}")


@dataclass(frozen=True)
class OpenedIncident:
    id: str
    topic: str
    region: str
    opened_at: datetime
    first_window_start: datetime


def opened_incidents(reports: list[dict[str, Any]]) -> list[OpenedIncident]:
    return [OpenedIncident(i["id"], i["key"]["topic"], i["key"]["region"], _ts(i["opened_at"]),
                           _ts(i["first_window_start"]))
            for i in (r["incident"] for r in reports) if i["status"] == "opened"]


def expected_audience(scenario: Scenario, truth: GroundTruth, incident: OpenedIncident) -> dict[str, str]:
    """customer id -> address on their preferred channel, for one opened incident.

    The segment's customers, minus those opted out of their preferred channel, minus
    those who filed a case on the incident's topic (within the segment) in the incident's
    detection window or the configured look-back before it,
    [first_window_start - reporter_lookback, opened_at): they called already, maybe about
    this very problem. Calls from before that (the day before, say) do not count.
    """
    since = incident.first_window_start - Settings().detection.reporter_lookback
    reporters = set()
    for event in scenario.events:
        if event["topic"] != incident.topic or not event.get("customer_id"):
            continue
        if truth.name == "regional_outage" and event["region"] != incident.region:
            continue
        if since <= _ts(event["ts"]) < incident.opened_at:
            reporters.add(event["customer_id"])
    audience = {}
    for c in scenario.customers:
        if not in_truth_segment(truth, c) or c.id in reporters:
            continue
        if getattr(c.opt_out, c.preferred_channel):
            continue
        address = c.phone if c.preferred_channel == "sms" else c.email
        if address:
            audience[c.id] = address.lower()
    return audience


# --- the test -------------------------------------------------------------------------------


def test_scenario_on_kafka_warns_exactly_the_customers_at_risk(
    kafka_broker: str, redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer
) -> None:
    scenario = default_scenario()
    topics = topic_names("e2e")
    create_topics(kafka_broker, topics.values())
    assert load_customers(redis_url, "fw", scenario.customers) == len(scenario.customers)
    cases = [e for e in scenario.events if e["type"] == "case"]
    sent = produce(kafka_broker, topics["cases"], (orjson.dumps(e) for e in cases))
    assert [r.value for r in read_topic(kafka_broker, topics["cases"])] == sent, "the broker changed the input"
    settings = make_settings(topics, kafka_broker, redis_url, twilio_standin, smtp_server)

    run_flow(settings, twilio_standin)

    reports = [r.json() for r in read_topic(kafka_broker, topics["incidents"])]
    letters = read_topic(kafka_broker, topics["dead_letters"])
    assert letters == [], f"good scenario records were dead-lettered: {[r.json() for r in letters[:3]]}"
    opened = opened_incidents(reports)
    resolved_ids = {r["incident"]["id"] for r in reports if r["incident"]["status"] == "resolved"}

    # Every incident belongs to an injected one; each injected one was detected.
    truths = {t.name: t for t in scenario.truths}
    for incident in opened:
        assert incident.topic in TRUTH_OF_TOPIC, f"false alarm: {incident}"
        truth = truths[TRUTH_OF_TOPIC[incident.topic]]
        assert incident.region == truth.region, f"{incident.id} is not the {truth.name} region"
        assert truth.start <= incident.opened_at <= truth.end, f"{incident.id} opened outside {truth.name}"
    assert {TRUTH_OF_TOPIC[i.topic] for i in opened} == {"regional_outage", "firmware_defect"}
    assert {i.id for i in opened} <= resolved_ids, "every incident resolves before the scenario ends"

    # The quiet control period raised nothing.
    control = truths["quiet_control"]
    for report in reports:
        incident = report["incident"]
        for when in ("first_window_start", "opened_at"):
            assert not control.start <= _ts(incident[when]) < control.end, f"control period fired: {incident}"

    # (a) the warned customers, channels and addresses are exactly the ones computed from the truth.
    expected: Counter[tuple[str, str]] = Counter()  # (customer, address) -> number of incidents
    expected_pairs: set[tuple[str, str]] = set()  # (incident, customer)
    for incident in opened:
        audience = expected_audience(scenario, truths[TRUTH_OF_TOPIC[incident.topic]], incident)
        assert audience, f"{incident.id} should warn somebody"
        expected.update(audience.items())
        expected_pairs.update((incident.id, c) for c in audience)
    received = received_messages(scenario.customers, twilio_standin, smtp_server)
    customers = {c.id: c for c in scenario.customers}
    for message in received:
        assert message.channel == customers[message.customer_id].preferred_channel, (
            f"{message.customer_id} was reached on {message.channel}, not their preferred channel")
    warnings = [m for m in received if m.kind == "warning"]
    got = Counter((m.customer_id, m.address) for m in warnings)
    assert set(got) == set(expected), (
        f"warned but not expected: {sorted(set(got) - set(expected))[:10]}; "
        f"expected but not warned: {sorted(set(expected) - set(got))[:10]}")

    # (b) nobody outside the audiences got anything; one warning per incident and customer.
    assert got == expected, "some customer got more (or fewer) warnings than incidents they belong to"
    audience_ids = {customer for customer, _ in expected}
    assert {m.customer_id for m in received} <= audience_ids
    email_warnings = Counter((m.incident_id, m.customer_id) for m in warnings if m.channel == "email")
    assert all(n == 1 for n in email_warnings.values())
    assert set(email_warnings) == {p for p in expected_pairs if customers[p[1]].preferred_channel == "email"}

    # (c) all-clear messages went only to warned customers, once per incident they were warned for.
    all_clear = [m for m in received if m.kind == "resolved"]
    assert all_clear, "resolved incidents send all-clear messages"
    assert Counter((m.customer_id, m.address) for m in all_clear) == got
    email_clear = Counter((m.incident_id, m.customer_id) for m in all_clear if m.channel == "email")
    assert all(n == 1 for n in email_clear.values()) and set(email_clear) == set(email_warnings)

    # (d) running again over the same topics sends nothing new: the outbox's decided marks remember.
    texts, emails = len(twilio_standin.messages), len(smtp_server.messages)
    run_flow(settings, twilio_standin)
    assert (len(twilio_standin.messages), len(smtp_server.messages)) == (texts, emails)
    rerun = [r.json() for r in read_topic(kafka_broker, topics["incidents"])]
    assert len(rerun) == 2 * len(reports), "the second run reports the same incident events again"
