"""Senders against real servers: the official Twilio client against the stand-in, SMTP
against aiosmtpd, and the outbox file."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import orjson
import pytest
import redis
from twilio.rest import Client

from forewarn.connectors.email import SmtpSender
from forewarn.connectors.outbox import OutboxSender
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.sms import TwilioSender
from forewarn.connectors.twilio_errors import CREDENTIALS_FIX
from forewarn.interfaces import Reconciler, Sender
from forewarn.outreach.audience import build_audience
from forewarn.records import Customer, Message, MessageKey, SendResult
from tests.servers.ports import free_port
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import AcceptedMessage, FaultMode, TwilioStandin, WebhookReceiver

PHONE = "+15125550100"
SENDER_PHONE = "+15125550199"
EMAIL = "ana@example.com"
BODY = "Internet outage in your area since 14:00. Fix expected by 18:00."
SERVICE_SID = "MG" + "a" * 32


def sms(to: str = PHONE, body: str = BODY, customer: str = "CU-42") -> Message:
    return Message(MessageKey("INC-1", customer, "warning"), "sms", to, body)


def email(to: str = EMAIL, subject: str | None = "Outage near you", customer: str = "CU-42") -> Message:
    return Message(MessageKey("INC-1", customer, "warning"), "email", to, BODY, subject)



# --- Twilio -------------------------------------------------------------------------------


@pytest.fixture
def twilio(twilio_standin: TwilioStandin) -> TwilioSender:
    """The official client, pointed at the stand-in exactly as the docs of the fixture say."""
    client = Client(twilio_standin.account_sid, twilio_standin.auth_token)
    client.api.base_url = twilio_standin.base_url
    return TwilioSender(client, from_number=SENDER_PHONE)


def quick(standin: TwilioStandin, timeout: float = 0.5, **kwargs: object) -> TwilioSender:
    """A sender with a short timeout, as `forewarn deliver` builds it."""
    return TwilioSender.from_settings(standin.account_sid, standin.auth_token, base_url=standin.base_url,
                                      timeout=timeout, **({"from_number": SENDER_PHONE} | kwargs))  # type: ignore[arg-type]


@pytest.mark.integration
def test_twilio_send_reaches_standin(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    assert isinstance(twilio, Sender) and isinstance(twilio, Reconciler)
    assert twilio.identity == f"twilio:{SENDER_PHONE}"
    result = twilio.send(sms())
    assert result.ok and not result.retryable and not result.uncertain
    assert result.provider_id is not None and result.provider_id.startswith("SM")
    assert len(result.provider_id) == 34
    assert twilio_standin.messages == [AcceptedMessage(result.provider_id, PHONE, SENDER_PHONE, BODY, None)]
    assert twilio_standin.messages[0].status_callback is None


@pytest.mark.integration
def test_twilio_from_settings_with_messaging_service(twilio_standin: TwilioStandin) -> None:
    sender = TwilioSender.from_settings(
        twilio_standin.account_sid, twilio_standin.auth_token,
        messaging_service_sid=SERVICE_SID, base_url=twilio_standin.base_url,
    )
    assert sender.identity == f"twilio:{SERVICE_SID}"
    result = sender.send(sms())
    assert result.ok
    [accepted] = twilio_standin.messages
    assert (accepted.to, accepted.from_, accepted.messaging_service_sid) == (PHONE, None, SERVICE_SID)


@pytest.mark.integration
def test_twilio_send_asks_for_a_status_callback(
    twilio: TwilioSender, twilio_standin: TwilioStandin, webhook_receiver: WebhookReceiver
) -> None:
    url = f"{webhook_receiver.base_url}/twilio/status?m=INC-1%7CCU-42%7Cwarning%7Csms"
    result = twilio.send(sms(), status_callback=url, html="<p>ignored for an SMS</p>")
    assert result.ok
    [accepted] = twilio_standin.messages
    assert accepted.status_callback == url
    sent, delivered = twilio_standin.wait_for_callbacks(2)
    assert [sent.status, delivered.status] == ["sent", "delivered"]
    assert [(r.url, r.params["MessageSid"], r.valid) for r in webhook_receiver.received] == [
        (url, result.provider_id, True), (url, result.provider_id, True)]


@pytest.mark.integration
def test_twilio_invalid_number_is_final(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.register_invalid(PHONE)
    result = twilio.send(sms())
    assert (result.ok, result.retryable, result.opted_out, result.uncertain) == (False, False, False, False)
    assert result.reason == "twilio 21211: invalid To number"
    assert twilio_standin.messages == []


@pytest.mark.integration
def test_twilio_unsubscribed_is_opt_out(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.register_unsubscribed(PHONE)
    result = twilio.send(sms())
    assert (result.ok, result.retryable, result.opted_out) == (False, False, True)
    assert result.reason.startswith("twilio 21610")


@pytest.mark.integration
def test_a_stop_reported_by_twilio_is_an_opt_out_that_the_index_records(
    twilio: TwilioSender, twilio_standin: TwilioStandin, redis_url: str
) -> None:
    # The delivery worker writes a 21610 opt-out back with `record_opt_out` (outreach/dispatch.py); here
    # the sender's half against the stand-in, and the index's half: the customer leaves the SMS audience.
    index = RedisCustomerIndex(redis.Redis.from_url(redis_url), prefix="stop")
    index.upsert([Customer(id="CU-42", region="TX-453", phone=PHONE, email=EMAIL)])
    twilio_standin.register_unsubscribed(PHONE)
    result = twilio.send(sms())
    assert result.opted_out and not result.retryable
    assert index.record_opt_out("CU-42", "sms")
    [stored] = index.get_many(["CU-42"])
    assert stored is not None and stored.opt_out.sms and not stored.opt_out.email
    [card] = index.contacts({"region": "TX-453"})
    assert card.contact("sms") is None and card.contact("email") == EMAIL
    # the next incident's message for them is not attempted at the provider: they are excluded
    audience = build_audience({"region": "TX-453"}, index, frozenset(), max_audience=10)
    assert audience.recipients == [] and audience.excluded == {"opted out of sms": 1}
    assert twilio_standin.attempts[PHONE] == 1


@pytest.mark.integration
def test_twilio_rate_limit_is_retryable_then_succeeds(
    twilio: TwilioSender, twilio_standin: TwilioStandin
) -> None:
    twilio_standin.register_rate_limited(PHONE, times=1, retry_after=2)
    first = twilio.send(sms())
    assert (first.ok, first.retryable, first.uncertain, first.retry_after) == (False, True, False, 2.0)
    assert first.reason == "twilio 20429: rate limited"
    second = twilio.send(sms())
    assert second.ok
    assert len(twilio_standin.messages) == 1


@pytest.mark.integration
@pytest.mark.parametrize(("header", "expected"), [(None, None), ("0", 0.0), ("1.5", 1.5), ("next week", None)])
def test_twilio_retry_after_in_seconds_or_absent(
    twilio: TwilioSender, twilio_standin: TwilioStandin, header: str | None, expected: float | None
) -> None:
    twilio_standin.register_rate_limited(PHONE, retry_after=header)
    assert twilio.send(sms()).retry_after == expected


@pytest.mark.integration
def test_twilio_retry_after_as_an_http_date(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.register_rate_limited(PHONE, retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=30),
                                                                            usegmt=True))
    wait = twilio.send(sms()).retry_after
    assert wait is not None and 25 <= wait <= 30


@pytest.mark.integration
def test_twilio_server_error_is_retryable_and_uncertain(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.fail_next(1)
    result = twilio.send(sms())
    assert (result.ok, result.retryable, result.uncertain) == (False, True, True)
    assert result.reason == "twilio 20500: server error (HTTP 500)"


@pytest.mark.integration
def test_twilio_down_is_retryable_and_uncertain(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.set_down(True)
    result = twilio.send(sms())
    assert (result.retryable, result.uncertain, result.reason) == (True, True, "twilio 20503: server error (HTTP 503)")
    twilio_standin.set_down(False)
    assert twilio.send(sms()).ok


@pytest.mark.integration
@pytest.mark.parametrize(("mode", "reason"), [
    ("error", "twilio 20500: server error (HTTP 500)"),
    ("drop", "twilio: connection dropped"),
    ("stall", "twilio: timeout"),
])
def test_twilio_failure_after_accept_is_uncertain(
    twilio_standin: TwilioStandin, mode: FaultMode, reason: str
) -> None:
    twilio_standin.fail_after_accept(1, mode)
    result = quick(twilio_standin, timeout=0.3).send(sms())
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (False, True, True, reason)
    assert twilio_standin.accepted_for(PHONE) == 1  # Twilio took it: a blind re-send would text twice


@pytest.mark.integration
def test_twilio_bad_auth_halts_the_channel_not_the_message(twilio_standin: TwilioStandin) -> None:
    # Issue 9: refused credentials are ours, not the message's: kept for later, never final.
    sender = TwilioSender.from_settings(
        twilio_standin.account_sid, "wrong-token", from_number=SENDER_PHONE, base_url=twilio_standin.base_url
    )
    result = sender.send(sms())
    assert (result.ok, result.retryable, result.halts_channel, result.uncertain) == (False, True, True, False)
    assert result.reason.startswith("twilio 20003: channel halted: authentication failed")
    assert "TWILIO_AUTH_TOKEN" in result.reason
    assert twilio_standin.messages == []


@pytest.mark.integration
def test_twilio_missing_body_is_final(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    result = twilio.send(sms(body=""))
    assert (result.ok, result.retryable) == (False, False)
    assert result.reason == "twilio 21602: rejected (HTTP 400)"


@pytest.mark.integration
def test_twilio_unreachable_is_retryable_and_certain() -> None:
    sender = TwilioSender.from_settings(
        "AC" + "0" * 32, "token", from_number=SENDER_PHONE, base_url=f"http://127.0.0.1:{free_port()}"
    )
    result = sender.send(sms())
    # A refused connection sent nothing: no reconcile is needed before trying again.
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (
        False, True, False, "twilio: connection failed")


@pytest.mark.integration
def test_twilio_timeout_is_retryable_and_uncertain(silent_port: int) -> None:
    sender = TwilioSender.from_settings(
        "AC" + "0" * 32, "token", from_number=SENDER_PHONE,
        base_url=f"http://127.0.0.1:{silent_port}", timeout=0.3,
    )
    result = sender.send(sms())
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (False, True, True, "twilio: timeout")


@pytest.mark.integration
def test_twilio_logs_carry_no_number_or_body(
    twilio: TwilioSender, twilio_standin: TwilioStandin, caplog: pytest.LogCaptureFixture
) -> None:
    twilio_standin.register_invalid(PHONE)
    caplog.set_level(logging.DEBUG, logger="forewarn.connectors")
    twilio.send(sms())
    twilio.send(sms(to="+15125550101"))
    twilio_standin.fail_after_accept(1, "error")
    twilio.send(sms(to="+15125550102"))
    assert twilio.find_sent(sms(to="+15125550102"), datetime.now(UTC)) is not None
    twilio_standin.set_down(True)
    twilio.find_sent(sms(to="+15125550102"), datetime.now(UTC))
    assert caplog.records, "expected the sender to log something"
    for number in (PHONE, "5550101", "5550102"):
        assert number not in caplog.text
    assert BODY not in caplog.text


# --- Twilio: reconciling with the provider's log (find_sent) --------------------------------


@pytest.mark.integration
def test_find_sent_finds_the_accepted_message_by_its_body(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    since = datetime.now(UTC)
    twilio_standin.fail_after_accept(1, "drop")
    lost = twilio.send(sms())
    assert lost.uncertain
    [accepted] = twilio_standin.messages
    # newer messages to the same number, and the same body to someone else, do not confuse it
    for body in ("Another notice.", "A third notice."):
        assert twilio.send(sms(body=body)).ok
    assert twilio.send(sms(to="+15125550101")).ok
    found = twilio.find_sent(sms(), since)
    assert found == SendResult(ok=True, provider_id=accepted.sid, reason="found in the provider's log")


@pytest.mark.integration
def test_find_sent_pages_through_newer_messages(twilio_standin: TwilioStandin) -> None:
    sender = quick(twilio_standin)
    since = datetime.now(UTC)
    assert sender.send(sms()).ok
    for i in range(7):
        assert sender.send(sms(body=f"Later notice {i}.")).ok
    before = twilio_standin.requests
    found = sender.find_sent(sms(), since, page_size=2)
    assert found is not None and found.ok and found.provider_id == twilio_standin.messages[0].sid
    assert twilio_standin.requests - before == 4  # 8 messages newest first, 2 a page: the 4th page has it


@pytest.mark.integration
def test_find_sent_is_none_when_twilio_has_no_such_message(
    twilio: TwilioSender, twilio_standin: TwilioStandin
) -> None:
    since = datetime.now(UTC)
    assert twilio.find_sent(sms(), since) is None  # nothing at all
    assert twilio.send(sms(body="A different notice.")).ok
    assert twilio.send(sms(to="+15125550101")).ok
    assert twilio.find_sent(sms(), since) is None  # same number, other body; same body, other number
    other = TwilioSender.from_settings(twilio_standin.account_sid, twilio_standin.auth_token,
                                       from_number="+15125550198", base_url=twilio_standin.base_url)
    assert other.send(sms()).ok
    assert twilio.find_sent(sms(), since) is None  # the same text from another of our numbers is not ours


@pytest.mark.integration
def test_find_sent_stops_at_messages_older_than_since(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.clock_offset = -600  # accepted "ten minutes ago"
    assert twilio.send(sms()).ok
    twilio_standin.clock_offset = 0
    now = datetime.now(UTC)
    assert twilio.find_sent(sms(), now) is None  # an older identical text (a former incident) is not this one
    found = twilio.find_sent(sms(), now - timedelta(minutes=9))  # 9 min, less the 2 min slack: it is in range
    assert found is not None and found.ok


@pytest.mark.integration
def test_find_sent_with_a_messaging_service(twilio_standin: TwilioStandin) -> None:
    sender = quick(twilio_standin, from_number=None, messaging_service_sid=SERVICE_SID)
    since = datetime.now(UTC)
    assert sender.send(sms()).ok
    other = quick(twilio_standin, from_number=None, messaging_service_sid="MG" + "b" * 32)
    assert other.find_sent(sms(), since) is None
    found = sender.find_sent(sms(), since)
    assert found is not None and found.provider_id == twilio_standin.messages[0].sid


@pytest.mark.integration
@pytest.mark.parametrize(("fault", "reason", "retry_after"), [
    ("down", "lookup failed: twilio 20503: server error (HTTP 503)", None),
    ("429", "lookup failed: twilio 20429: rate limited", 1.0),
    ("refused", "lookup failed: twilio: connection failed", None),
    ("auth", "lookup failed: twilio 20003: channel halted: authentication failed; " + CREDENTIALS_FIX, None),
])
def test_find_sent_reports_a_failed_lookup(
    twilio_standin: TwilioStandin, fault: str, reason: str, retry_after: float | None
) -> None:
    sender = quick(twilio_standin)
    since = datetime.now(UTC)
    assert sender.send(sms()).ok
    if fault == "down":
        twilio_standin.down(5)
    elif fault == "429":
        twilio_standin.fail_next(1, status=429, retry_after=1)
    elif fault == "refused":
        sender = TwilioSender.from_settings("AC" + "0" * 32, "token", from_number=SENDER_PHONE,
                                            base_url=f"http://127.0.0.1:{free_port()}")
    else:
        sender = TwilioSender.from_settings(twilio_standin.account_sid, "wrong-token", from_number=SENDER_PHONE,
                                            base_url=twilio_standin.base_url)
    found = sender.find_sent(sms(), since)
    assert found is not None
    assert (found.ok, found.retryable, found.uncertain, found.reason) == (False, True, True, reason)
    assert found.halts_channel == (fault == "auth")
    assert found.retry_after == retry_after


# --- Twilio: many threads at once ----------------------------------------------------------


@pytest.mark.integration
def test_one_sender_is_safe_from_many_threads(twilio_standin: TwilioStandin) -> None:
    sender = quick(twilio_standin, timeout=5, pool_size=16)
    threads, per_thread = 16, 25
    numbers = [f"+1512555{t:02d}{i:02d}" for t in range(threads) for i in range(per_thread)]
    # every 5th number is rate limited once, each with its own Retry-After: a thread must read its own
    limited = {n: float(k % 7 + 1) for k, n in enumerate(numbers) if k % 5 == 0}
    for number, wait in limited.items():
        twilio_standin.register_rate_limited(number, retry_after=wait)

    def work(numbers: list[str]) -> list[tuple[str, SendResult]]:
        results = []
        for number in numbers:
            first = sender.send(sms(to=number))
            results.append((number, first))
            if not first.ok:
                results.append((number, sender.send(sms(to=number))))
        return results

    with ThreadPoolExecutor(threads) as pool:
        outcomes = [r for part in pool.map(work, [numbers[t::threads] for t in range(threads)]) for r in part]
    retried = [(n, r.retry_after) for n, r in outcomes if not r.ok]
    assert sorted(retried) == sorted(limited.items())
    assert sorted(n for n, r in outcomes if r.ok) == sorted(numbers)
    assert twilio_standin.accepted_counts() == dict.fromkeys(numbers, 1)  # every recipient accepted once
    assert twilio_standin.connections <= threads  # keep-alive: connections are pooled and reused


# --- SMTP ---------------------------------------------------------------------------------


def smtp_sender(server: SmtpServer, **kwargs: object) -> SmtpSender:
    return SmtpSender(server.host, server.port, "alerts@forewarn.test", starttls=False, timeout=5,
                      **kwargs)  # type: ignore[arg-type]


@pytest.mark.integration
def test_smtp_delivers_message_with_headers(smtp_server: SmtpServer) -> None:
    sender = smtp_sender(smtp_server)
    assert isinstance(sender, Sender)
    result = sender.send(email())
    assert result.ok
    [received] = smtp_server.messages
    assert received.mail_from == "alerts@forewarn.test"
    assert received.rcpt_tos == [EMAIL]
    mail = received.message
    assert mail["Subject"] == "Outage near you"
    assert mail["To"] == EMAIL
    assert mail["From"] == "alerts@forewarn.test"
    assert mail["X-Forewarn-Key"] == "INC-1|CU-42|warning"
    assert mail["Message-ID"] == result.provider_id
    assert mail["Message-ID"].endswith("@forewarn.test>")
    assert mail["Date"] is not None
    assert mail.get_content().strip() == BODY
    assert received.login is None


@pytest.mark.integration
def test_smtp_default_subject_and_stable_message_id(smtp_server: SmtpServer) -> None:
    sender = smtp_sender(smtp_server)
    first, again = sender.send(email(subject=None)), sender.send(email(subject=None))
    other = sender.send(email(customer="CU-43"))
    assert first.ok and again.ok and other.ok
    assert smtp_server.messages[0].message["Subject"] == "Service notice"
    assert first.provider_id == again.provider_id != other.provider_id


@pytest.mark.integration
def test_smtp_refused_recipient_is_final(smtp_server: SmtpServer) -> None:
    smtp_server.refuse(EMAIL)
    result = smtp_sender(smtp_server).send(email())
    assert (result.ok, result.retryable, result.reason) == (False, False, "smtp 550: recipient refused")
    assert smtp_server.messages == []


@pytest.mark.integration
def test_smtp_temporary_failure_is_retryable(smtp_server: SmtpServer) -> None:
    smtp_server.fail_temporarily(EMAIL)
    result = smtp_sender(smtp_server).send(email())
    assert (result.ok, result.retryable, result.reason) == (False, True, "smtp 451: recipient refused")
    assert smtp_server.messages == []


@pytest.mark.integration
def test_smtp_server_down_is_retryable() -> None:
    sender = SmtpSender("127.0.0.1", free_port(), "alerts@forewarn.test", starttls=False, timeout=2)
    result = sender.send(email())
    assert (result.ok, result.retryable) == (False, True)
    assert result.reason.startswith("smtp: connection failed")


@pytest.mark.integration
def test_smtp_silent_server_is_retryable(silent_port: int) -> None:
    sender = SmtpSender("127.0.0.1", silent_port, "alerts@forewarn.test", starttls=False, timeout=0.3)
    result = sender.send(email())
    assert (result.ok, result.retryable) == (False, True)


@pytest.mark.integration
def test_smtp_login(smtp_server: SmtpServer) -> None:
    good = smtp_sender(smtp_server, username=smtp_server.username, password=smtp_server.password)
    assert good.send(email()).ok
    assert smtp_server.messages[0].login == smtp_server.username

    bad = smtp_sender(smtp_server, username=smtp_server.username, password="nope")
    result = bad.send(email())
    # Issue 9: a refused login halts the channel and keeps the message for later, never final.
    assert (result.ok, result.retryable, result.halts_channel) == (False, True, True)
    assert result.reason.startswith("smtp 535: channel halted: authentication failed")
    assert "SMTP_PASSWORD" in result.reason
    assert len(smtp_server.messages) == 1


@pytest.mark.integration
def test_smtp_starttls_required_but_not_offered_is_final(smtp_server: SmtpServer) -> None:
    sender = SmtpSender(smtp_server.host, smtp_server.port, "alerts@forewarn.test", starttls=True, timeout=5)
    result = sender.send(email())
    assert (result.ok, result.retryable) == (False, False)
    assert smtp_server.messages == []


@pytest.mark.integration
def test_smtp_logs_carry_no_address_or_body(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse(EMAIL)
    caplog.set_level(logging.DEBUG, logger="forewarn.connectors")
    sender = smtp_sender(smtp_server)
    sender.send(email())
    sender.send(email(to="bob@example.com"))
    assert len(caplog.records) == 2
    assert EMAIL not in caplog.text and "bob@" not in caplog.text and BODY not in caplog.text


def test_smtp_header_injection_is_refused_without_connecting() -> None:
    sender = SmtpSender("127.0.0.1", free_port(), "alerts@forewarn.test", starttls=False)
    result = sender.send(email(subject="Hi\nBcc: everyone@example.com"))
    assert (result.ok, result.retryable, result.reason) == (False, False, "email: invalid address or header")


# --- outbox -------------------------------------------------------------------------------


def test_outbox_writes_one_json_line_per_message(tmp_path: Path) -> None:
    path = tmp_path / "out" / "sms.jsonl"
    outbox = OutboxSender(path, "sms")
    assert isinstance(outbox, Sender)
    ids = [outbox.send(sms(customer=f"CU-{i}")).provider_id for i in range(2)]
    outbox.close()
    assert ids == ["outbox-1", "outbox-2"]
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["customer_id"] for line in lines] == ["CU-0", "CU-1"]
    first = lines[0]
    assert {k: first[k] for k in ("incident_id", "kind", "channel", "to", "body", "subject")} == {
        "incident_id": "INC-1", "kind": "warning", "channel": "sms",
        "to": PHONE, "body": BODY, "subject": None,
    }
    assert first["sent_at"].endswith("Z")

    with OutboxSender(path, "sms") as reopened:
        assert reopened.send(sms(customer="CU-2")).provider_id == "outbox-3"
    assert len(path.read_bytes().splitlines()) == 3


def test_outbox_refuses_other_channel(tmp_path: Path) -> None:
    with OutboxSender(tmp_path / "email.jsonl", "email") as outbox:
        result = outbox.send(sms())
    assert (result.ok, result.retryable) == (False, False)
    assert (tmp_path / "email.jsonl").read_bytes() == b""
