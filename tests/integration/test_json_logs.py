"""JSON logs (issue 10, item 5): every line one JSON object, and no phone number, email address or message
body in any of them, checked line by line over the end-to-end run's logs at DEBUG.

The scanner is tested first on planted leaks, so a clean scan of the run means something: it flags phone
numbers (E.164, national formats, and the digits of every customer's number however written), email
addresses, and any line of a message body that the Twilio stand-in or the SMTP server received.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson
import phonenumbers
import pytest
from bytewax.testing import run_main
from prometheus_client import CollectorRegistry

from forewarn.flows.early_warning import build_flow
from forewarn.flows.observability import instrument, start_observability
from forewarn.flows.wiring import production_io
from forewarn.logs import IDENTIFYING_LOGGERS, JsonFormatter, chosen_format, configure_logging, use_log_format
from forewarn.records import Customer
from forewarn.settings import ObservabilitySettings
from tests.integration.helpers import load_customers, make_settings, produce, secrets_for, topic_names
from tests.integration.test_end_to_end import default_scenario, deliver_all, received_messages
from tests.servers.kafka_broker import create_topics
from tests.servers.ports import free_port
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

E164 = re.compile(r"\+\d{7,15}\b")
NATIONAL = re.compile(r"\(\d{3}\)\s?\d{3}[-. ]\d{4}\b|(?<![\d-])\d{3}[-. ]\d{3}[-. ]\d{4}(?![\d-])")
DIGITS = re.compile(r"\+?\d[\d ().-]{6,}\d")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
FIELDS = {"time", "level", "logger", "message"}
TEST_SERVER_LOGGERS = ("mail.log",)
"""aiosmtpd's logger: the test's SMTP server runs inside the test process, but never inside a flow process."""
MIN_BODY_LINE = 24
"""Body lines at least this long are looked for: shorter ones ("Hi Ana,") could be anything."""


@dataclass
class LeakScanner:
    """What must never appear in a log line: the known customers' numbers (their digits, however grouped),
    anything shaped like an E.164 or national number or an email address, and message body lines."""

    phone_digits: set[str] = field(default_factory=set)
    body_lines: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, customers: Iterable[Customer], bodies: Iterable[str]) -> LeakScanner:
        scanner = cls()
        for c in customers:
            if c.phone:
                number = phonenumbers.parse(c.phone, None)
                scanner.phone_digits.add(c.phone.lstrip("+"))
                scanner.phone_digits.add(str(number.national_number))
        for body in bodies:
            scanner.body_lines |= {line.strip() for line in body.splitlines() if len(line.strip()) >= MIN_BODY_LINE}
        return scanner

    def problems(self, line: str) -> list[str]:
        """Why `line` is not a clean JSON log line (empty: it is)."""
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return ["not JSON"]
        if not isinstance(record, dict):
            return ["not a JSON object"]
        found = [f"missing {k}" for k in sorted(FIELDS - record.keys())]
        text = line.replace("\\n", "\n")
        found += [f"E.164 number {m}" for m in E164.findall(text)]
        found += [f"national number {m}" for m in NATIONAL.findall(text)]
        found += [f"a customer's number {m}" for m in DIGITS.findall(text)
                  if re.sub(r"\D", "", m) in self.phone_digits]
        found += [f"email address {m}" for m in EMAIL.findall(text)]
        found += [f"message body line {b[:30]!r}" for b in self.body_lines if b in text]
        return found

    def scan(self, lines: Iterable[str]) -> list[tuple[int, str, list[str]]]:
        return [(n, line[:200], why) for n, line in enumerate(lines, 1) if (why := self.problems(line))]


CUSTOMER = Customer.model_validate({"id": "CU-42", "phone": "+15125550100", "email": "ana@example.com",
                                    "region": "TX-453"})
BODY = "Forewarn notice: internet problems in your area since 8:15 AM. Reply STOP to opt out."


def clean_line(message: str = "sms sent key=MessageKey(incident_id='INC-7', customer_id='CU-42')") -> str:
    return orjson.dumps({"time": "2026-11-20T14:03:11.123Z", "level": "DEBUG", "logger": "forewarn.connectors.sms",
                         "message": message, "origin": {"source": "cases", "partition": 0, "offset": 12345678}}
                        ).decode()


@pytest.fixture
def scanner() -> LeakScanner:
    return LeakScanner.of([CUSTOMER], [BODY])


@pytest.mark.parametrize("planted", [
    "+15125550100", "+44 20 7946 0958".replace(" ", ""), "(512) 555-0100", "512-555-0100", "512.555.0100",
    "5125550100", "1 512 555 0100", "ana@example.com", "someone.else@mail.example.org",
    "internet problems in your area since 8:15 AM",  # part of a line is not enough; the whole line is:
])
def test_the_scanner_flags_a_planted_leak(scanner: LeakScanner, planted: str) -> None:
    if planted.startswith("internet"):
        assert scanner.problems(clean_line(f"sent {planted}")) == []
        planted = BODY
    assert scanner.problems(clean_line(f"sent to {planted} ok")), planted


def test_the_scanner_flags_lines_that_are_not_json_log_objects(scanner: LeakScanner) -> None:
    assert scanner.problems("2026-11-20 14:03:11,123 INFO forewarn: started") == ["not JSON"]
    assert scanner.problems("[1, 2]") == ["not a JSON object"]
    assert scanner.problems('{"message": "x"}') == ["missing level", "missing logger", "missing time"]
    assert scanner.problems(clean_line()) == []  # times, offsets, ids and keys are no leak


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Logging is process-wide: put back the root's level and handlers and the quieted loggers' levels."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    quieted = [(logging.getLogger(n), logging.getLogger(n).level) for n in IDENTIFYING_LOGGERS]
    yield
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])
    for logger, level in quieted:
        logger.setLevel(level)


def test_json_lines_are_redacted_in_message_extras_and_tracebacks(root_logging: None, scanner: LeakScanner) -> None:
    stream = io.StringIO()
    configure_logging(logging.DEBUG, "json", stream=stream)
    log = logging.getLogger("forewarn.test")
    log.info("refused %s for %s at %s", "+15125550100", "ana@example.com", "2026-11-20T14:03:11+00:00",
             extra={"to": "(512) 555-0100", "where": {"email": "ana@example.com"}, "number": 15125550100,
                    "count": 3})
    try:
        raise ValueError("bad phone 512-555-0100")
    except ValueError:
        log.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["message"] == "refused <redacted> for <redacted> at 2026-11-20T14:03:11+00:00"
    assert (first["to"], first["where"], first["number"], first["count"]) == (
        "<redacted>", {"email": "<redacted>"}, "<redacted>", 3)
    assert (first["level"], first["logger"]) == ("INFO", "forewarn.test")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert "ValueError: bad phone <redacted>" in second["exc_info"]
    assert scanner.scan(lines) == []
    # Control: the same record through a plain formatter leaks, and the scanner sees it.
    plain = logging.Formatter("%(message)s %(to)s")
    record = log.makeRecord("forewarn.test", logging.INFO, __file__, 1, "refused %s", ("+15125550100",), None,
                            extra={"to": "(512) 555-0100"})
    leaked = orjson.dumps({"time": "t", "level": "INFO", "logger": "x", "message": plain.format(record)}).decode()
    assert len(scanner.problems(leaked)) >= 2


def test_the_format_comes_from_the_environment_first(root_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("FOREWARN_LOG_FORMAT", "json")
    handler = configure_logging(logging.INFO, stream=stream)
    assert isinstance(handler.formatter, JsonFormatter)
    use_log_format("text")  # the config says text; the environment decides
    assert isinstance(handler.formatter, JsonFormatter)
    monkeypatch.delenv("FOREWARN_LOG_FORMAT")
    use_log_format("text")
    logging.getLogger("forewarn.test").warning("call +15125550100")
    assert stream.getvalue().endswith("WARNING forewarn.test: call <redacted>\n")
    again = configure_logging(logging.INFO, "json", stream=stream)  # replaces its own handler, not others
    assert sum(h is again or h is handler for h in logging.getLogger().handlers) == 1
    monkeypatch.setenv("FOREWARN_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="FOREWARN_LOG_FORMAT='yaml' is not a log format"):
        chosen_format()


def from_test_server(line: str) -> bool:
    try:
        logger = orjson.loads(line).get("logger", "")
    except (orjson.JSONDecodeError, AttributeError):
        return False  # not a JSON object: kept, and the scan flags it
    return isinstance(logger, str) and logger.startswith(TEST_SERVER_LOGGERS)


@pytest.mark.integration
def test_the_end_to_end_run_logs_json_lines_without_contacts_or_bodies(
    root_logging: None, kafka_broker: str, redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer
) -> None:
    scenario = default_scenario()
    topics = topic_names("jsonlogs")
    create_topics(kafka_broker, topics.values())
    load_customers(redis_url, "fw", scenario.customers)
    produce(kafka_broker, topics["cases"], (orjson.dumps(e) for e in scenario.events if e["type"] == "case"))
    settings = make_settings(topics, kafka_broker, redis_url, twilio_standin, smtp_server)
    settings = settings.model_copy(update={"observability": ObservabilitySettings(
        metrics_port=free_port(), log_format="json")})

    stream = io.StringIO()
    configure_logging(logging.DEBUG, "text", stream=stream)  # as `forewarn -v` would, before the config loads
    obs = start_observability(settings, registry=CollectorRegistry())  # switches to the config's JSON
    try:
        run_main(build_flow(settings, instrument(production_io(settings, secrets_for(twilio_standin)),
                                                 obs.metrics)))
        deliver_all(settings, twilio_standin)  # the flow decides; a delivery worker (logging here too) sends
    finally:
        obs.stop()
    # The test's SMTP server (aiosmtpd, logger mail.log) runs in this process and logs every line it receives
    # at DEBUG: it is no part of a flow process, so its lines are left out (they do leak, and the scan sees it).
    all_lines = stream.getvalue().splitlines()
    lines = [line for line in all_lines if not from_test_server(line)]
    assert len(lines) < len(all_lines)

    received = received_messages(scenario.customers, twilio_standin, smtp_server)
    assert {m.channel for m in received} == {"sms", "email"}, "the run should have texted and emailed customers"
    scanner = LeakScanner.of(scenario.customers, (m.body for m in received))
    assert len(scanner.body_lines) >= 3 and len(scanner.phone_digits) >= 10_000
    loggers = {orjson.loads(line).get("logger") for line in lines if line.startswith("{")}
    assert len(lines) >= len(received), f"expected a DEBUG line per message sent; got {len(lines)} lines"
    assert {"forewarn.connectors.sms", "forewarn.connectors.email"} <= loggers, loggers
    leaks = scanner.scan(lines)
    assert leaks == [], f"{len(leaks)} bad log lines, e.g. {leaks[:5]}"
    records = obs.metrics.registry.get_sample_value(
        "forewarn_records_in_total", {"source": topics["cases"], "partition": "0"})
    assert records == sum(1 for e in scenario.events if e["type"] == "case")
