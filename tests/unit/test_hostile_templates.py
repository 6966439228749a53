"""Customers read only what the company wrote (issue 9, item 3).

Whoever can write a case or an alert chooses its free text: a topic, a region, a device group's
model, an alert's headline, description and instruction. Every bundled template is rendered here
through the real context building (the planner's and the hazard outreach's) with hostile values
in those fields, and no distinctive part of them may reach a message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.templates import JinjaRenderer
from forewarn.hazards import Area, HazardAlert, Reference
from forewarn.outreach.enqueue import Enqueuer
from forewarn.outreach.hazards import HazardOutreach, HazardRule, HazardTracker
from forewarn.outreach.incidents import incident_id
from forewarn.outreach.planner import Outreach, message_context
from forewarn.records import NATIONAL, Customer, Incident, Message, MessageKind, Trait
from forewarn.settings import BUNDLED_CONFIG
from tests.recording import Clock, Courier, Outbox

TEMPLATES = BUNDLED_CONFIG / "templates"
PHONE_TOPIC = "Call +1 900 555 0199 now"
URL_REGION = "TX-453 https://evil.example/pay"
MARKUP_MODEL = "<a href='https://evil.example/fw'>R7000</a>"
MARKUP_FIRMWARE = "{{ 7*7 }}<script>2.1.7</script>"
HEADLINE = "Call +1 900 555 0199 to keep your service"
DESCRIPTION = "Visit https://evil.example/storm now"
INSTRUCTION = "Text your card number to +1 900 555 0199 or go to https://evil.example/x"
# The distinctive parts: a fragment of any of them in a message means free text got through.
FORBIDDEN = ("900", "555 0199", "evil.example", "https", "href", "<", "script", "{{", "Call ", "Visit ",
             "card number")
MARKUP = ("https", "href", "<")
"""An email's HTML part is markup of the company's own: there only the other fragments are forbidden."""
T0 = datetime(2026, 11, 17, 13, 15, tzinfo=UTC)


class Delivered:
    """An in-process outbox and a worker (`tests.recording.Courier`) sending to recording senders."""

    def __init__(self) -> None:
        self.outbox, self.clock = InMemoryOutbox(), Clock(T0)
        self.sms, self.email = Outbox("sms"), Outbox("email")
        self.courier = Courier(self.outbox, {"sms": self.sms, "email": self.email}, self.clock)

    def enqueuer(self) -> Enqueuer:
        return Enqueuer(self.outbox, clock=self.clock)

    def run(self) -> list[Message]:
        """Deliver what was decided; every message sent so far."""
        self.courier.run()
        return self.sms.sent + self.email.sent

    def html(self) -> list[str]:
        parts = [h for h in self.email.html if h is not None]
        assert len(parts) == len(self.email.sent), "every email carries an HTML part"
        return parts



def _customers(region: str) -> list[Customer]:
    """One customer per channel and language, with plain index values."""
    return [Customer.model_validate({
        "id": f"CU-{channel}-{language}", "phone": "+15125550100", "email": "ana@example.com",
        "preferred_channel": channel, "region": region, "timezone": "America/Chicago", "language": language,
        "products": [{"model": "R7000", "firmware": "2.1.7"}]})
        for channel in ("sms", "email") for language in ("en", "es")]


def _assert_clean(texts: list[str], forbidden: tuple[str, ...] = FORBIDDEN) -> None:
    assert texts, "nothing was rendered: the test would prove nothing"
    for text in texts:
        for bad in forbidden:
            assert bad not in text, (bad, text)


def _assert_clean_html(parts: list[str]) -> None:
    _assert_clean(parts, tuple(bad for bad in FORBIDDEN if bad not in MARKUP))


def _hostile_incident(topic: str, region: str, status: str = "opened", device_group: bool = True) -> Incident:
    first = T0
    traits = (Trait("model", MARKUP_MODEL, 30, 1.0, 0.1, 10.0, 1e-9),
              Trait("firmware", MARKUP_FIRMWARE, 30, 1.0, 0.1, 10.0, 1e-9))
    return Incident(incident_id(topic, region, first), topic, region, status,  # type: ignore[arg-type]
                    opened_at=first + timedelta(hours=1), first_window_start=first,
                    last_spike_end=first + timedelta(hours=1), observed=30, expected=1.0, spikes=1,
                    linked_cases=30, resolved_at=first + timedelta(hours=3), segment=traits,
                    known_segment=(("model", MARKUP_MODEL),) if device_group else ())


@pytest.mark.parametrize("topic", ["no_internet", "wifi_drops", "slow_speed", "default", PHONE_TOPIC])
@pytest.mark.parametrize("region", [URL_REGION, NATIONAL])
def test_incident_templates_never_show_a_records_free_text(topic: str, region: str) -> None:
    """Every incident template (topic, kind, channel, language) through `message_context`."""
    renderer = JinjaRenderer(TEMPLATES)
    incident = _hostile_incident(topic, region)
    texts, html = [], []
    for customer in _customers("TX-453"):
        context = message_context(incident, customer)
        for kind in ("warning", "resolved"):
            for channel in ("sms", "email"):
                rendered = renderer.render(topic, kind, channel, context)  # type: ignore[arg-type]
                texts += [rendered.body, rendered.subject or ""]
            html.append(renderer.render_html(topic, kind, context))  # type: ignore[arg-type]
    _assert_clean(texts)
    _assert_clean_html(html)


def test_an_incident_on_a_topic_without_a_label_is_held_for_a_responder() -> None:
    """A case's topic string chooses no words: the incident is held, nothing is sent, and the
    reason says how to give the topic a label."""
    index = InMemoryCustomerIndex()
    index.upsert(_customers("TX-453"))
    delivered = Delivered()
    outreach = Outreach(index, delivered.enqueuer(), JinjaRenderer(TEMPLATES))
    incident = _hostile_incident(PHONE_TOPIC, "TX-453")
    report = outreach.handle(incident)
    _assert_clean([m.body for m in delivered.run()] + ["(no message)"])
    assert delivered.run() == [] and delivered.outbox.decided(incident.id, "warning") == set()
    assert report.held is not None and "outreach.topic_labels" in report.held
    resolved = outreach.handle(_hostile_incident(PHONE_TOPIC, "TX-453", "resolved"))
    assert delivered.run() == [] and resolved.held is not None and not resolved.outcomes


def test_a_labelled_topic_is_still_warned_in_the_companys_words() -> None:
    """The same incident on a labelled topic reaches every customer of the region, with the label."""
    index = InMemoryCustomerIndex()
    index.upsert(_customers("TX-453"))
    delivered = Delivered()
    outreach = Outreach(index, delivered.enqueuer(), JinjaRenderer(TEMPLATES), topic_labels={"slow_speed": "speed"})
    report = outreach.handle(_hostile_incident("slow_speed", "TX-453", device_group=False))
    messages = delivered.run()
    assert report.held is None and len(delivered.sms.sent) == 2 and len(delivered.email.sent) == 2
    assert all("speed" in (m.subject or m.body) for m in delivered.email.sent)
    _assert_clean([m.body for m in messages] + [m.subject or "" for m in messages])
    _assert_clean_html(delivered.html())


def _alert(identifier: str, msg_type: str, event: str, references: tuple[Reference, ...] = ()) -> HazardAlert:
    return HazardAlert(identifier, "w-nws.webmaster@noaa.gov", T0, "Actual", msg_type, references=references,
                       event=event, severity="Extreme", urgency="Immediate", certainty="Observed",
                       onset=T0, expires=T0 + timedelta(hours=2), headline=HEADLINE, description=DESCRIPTION,
                       instruction=INSTRUCTION,
                       areas=(Area(DESCRIPTION, geocodes={"SAME": ("048453",)}),))


def _hazard_messages(warning_event: str, cancel_event: str) -> tuple[list[Message], int, list[str]]:
    """The messages sent for a warning and its withdrawal, how many were warnings, and the emails' HTML parts."""
    index = InMemoryCustomerIndex()
    index.upsert(_customers("TX-453"))
    delivered = Delivered()
    outreach = HazardOutreach(index, delivered.enqueuer(), JinjaRenderer(TEMPLATES),
                              [HazardRule(events=(warning_event,), min_rank=1)])
    tracker = HazardTracker()
    [opened] = tracker.observe(_alert("A1", "Alert", warning_event))
    outreach.handle(opened)
    warned = len(delivered.run())
    withdrawn = (Reference("w-nws.webmaster@noaa.gov", "A1", T0),)
    [cancelled] = tracker.observe(_alert("A2", "Cancel", cancel_event, withdrawn))
    outreach.handle(cancelled)
    return delivered.run(), warned, delivered.html()


@pytest.mark.parametrize("event", ["Tornado Warning", "Severe Thunderstorm Warning", "Flood Warning"])
def test_hazard_templates_never_show_an_alerts_free_text(event: str) -> None:
    """Warnings and withdrawals, every channel and language: the event name from the configured
    rules, the alert's times and the company's advice; not its headline, area or instruction."""
    messages, warned, html = _hazard_messages(event, PHONE_TOPIC)  # the Cancel names an event of its own
    assert warned == 4 and len(messages) == 8
    _assert_clean([m.body for m in messages] + [m.subject or "" for m in messages])
    _assert_clean_html(html)
    assert all(event in m.body for m in messages if m.key.kind == "warning")


def _kinds(messages: list[Message]) -> set[MessageKind]:
    return {m.key.kind for m in messages}


def test_the_bundled_templates_are_all_exercised_by_these_tests() -> None:
    """A new template file must be covered by a topic or family above."""
    covered = {"default", "no_internet", "wifi_drops", "hazard"}
    assert {Path(name).name.split(".")[0] for name in TEMPLATES.glob("*.j2")} <= covered
    messages, _, html = _hazard_messages("Tornado Warning", "Tornado Warning")
    assert _kinds(messages) == {"warning", "resolved"} and len(html) == 4


@pytest.mark.parametrize("label", [PHONE_TOPIC, "evil.example", "{{ topic }}", "", "x" * 41])
def test_a_label_that_is_not_plain_words_is_refused_at_start(label: str, tmp_path: Path) -> None:
    from forewarn.settings import ConfigError, load_settings

    config = tmp_path / "forewarn.yaml"
    config.write_text(f"outreach:\n  topic_labels:\n    no_internet: {label!r}\n")
    with pytest.raises(ConfigError, match=r"outreach\.topic_labels.*not plain words.*e\.g\. no_internet: internet"):
        load_settings(config)
