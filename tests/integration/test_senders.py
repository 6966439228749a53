"""Senders against real servers: the official Twilio client against the stand-in, SMTP
against aiosmtpd, and the outbox file."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
import redis
from twilio.rest import Client

from forewarn.connectors.email import SmtpSender
from forewarn.connectors.memory import InMemoryLedger
from forewarn.connectors.outbox import OutboxSender
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.sms import TwilioSender
from forewarn.interfaces import Sender
from forewarn.outreach.audience import build_audience
from forewarn.outreach.delivery import Deliverer
from forewarn.records import Customer, Message, MessageKey
from tests.servers.ports import free_port
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import AcceptedMessage, TwilioStandin

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


@pytest.mark.integration
def test_twilio_send_reaches_standin(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    assert isinstance(twilio, Sender)
    result = twilio.send(sms())
    assert result.ok and not result.retryable
    assert result.provider_id is not None and result.provider_id.startswith("SM")
    assert len(result.provider_id) == 34
    assert twilio_standin.messages == [AcceptedMessage(result.provider_id, PHONE, SENDER_PHONE, BODY, None)]


@pytest.mark.integration
def test_twilio_from_settings_with_messaging_service(twilio_standin: TwilioStandin) -> None:
    sender = TwilioSender.from_settings(
        twilio_standin.account_sid, twilio_standin.auth_token,
        messaging_service_sid=SERVICE_SID, base_url=twilio_standin.base_url,
    )
    result = sender.send(sms())
    assert result.ok
    [accepted] = twilio_standin.messages
    assert (accepted.to, accepted.from_, accepted.messaging_service_sid) == (PHONE, None, SERVICE_SID)


@pytest.mark.integration
def test_twilio_invalid_number_is_final(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.register_invalid(PHONE)
    result = twilio.send(sms())
    assert (result.ok, result.retryable, result.opted_out) == (False, False, False)
    assert result.reason == "twilio 21211: invalid To number"
    assert twilio_standin.messages == []


@pytest.mark.integration
def test_twilio_unsubscribed_is_opt_out(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.register_unsubscribed(PHONE)
    result = twilio.send(sms())
    assert (result.ok, result.retryable, result.opted_out) == (False, False, True)
    assert result.reason.startswith("twilio 21610")


@pytest.mark.integration
def test_a_stop_reply_reported_by_twilio_opts_the_customer_out_in_the_index(
    twilio: TwilioSender, twilio_standin: TwilioStandin, redis_url: str
) -> None:
    index = RedisCustomerIndex(redis.Redis.from_url(redis_url), prefix="stop")
    index.upsert([Customer(id="CU-42", region="TX-453", phone=PHONE, email=EMAIL)])
    twilio_standin.register_unsubscribed(PHONE)
    deliverer = Deliverer(InMemoryLedger(), {"sms": twilio}, opt_outs=index)
    assert deliverer.deliver(sms()) == "failed"
    [stored] = index.get_many(["CU-42"])
    assert stored is not None and stored.opt_out.sms and not stored.opt_out.email
    [card] = index.contacts({"region": "TX-453"})
    assert card.contact("sms") is None and card.contact("email") == EMAIL
    # the next incident's message for them is not attempted at the provider: they are excluded
    audience = build_audience({"region": "TX-453"}, index, frozenset(), max_audience=10)
    assert audience.recipients == [] and audience.excluded == {"opted out of sms": 1}


@pytest.mark.integration
def test_twilio_rate_limit_is_retryable_then_succeeds(
    twilio: TwilioSender, twilio_standin: TwilioStandin
) -> None:
    twilio_standin.register_rate_limited(PHONE, times=1)
    first = twilio.send(sms())
    assert (first.ok, first.retryable) == (False, True)
    assert first.reason == "twilio 20429: rate limited"
    second = twilio.send(sms())
    assert second.ok
    assert len(twilio_standin.messages) == 1


@pytest.mark.integration
def test_twilio_server_error_is_retryable(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    twilio_standin.fail_next(1)
    result = twilio.send(sms())
    assert (result.ok, result.retryable) == (False, True)
    assert "server error" in result.reason


@pytest.mark.integration
def test_twilio_bad_auth_halts_the_channel_not_the_message(twilio_standin: TwilioStandin) -> None:
    # Issue 9: refused credentials are ours, not the message's: kept for later, never final.
    sender = TwilioSender.from_settings(
        twilio_standin.account_sid, "wrong-token", from_number=SENDER_PHONE, base_url=twilio_standin.base_url
    )
    result = sender.send(sms())
    assert (result.ok, result.retryable, result.halts_channel) == (False, True, True)
    assert result.reason.startswith("twilio 20003: channel halted: authentication failed")
    assert "TWILIO_AUTH_TOKEN" in result.reason
    assert twilio_standin.messages == []


@pytest.mark.integration
def test_twilio_missing_body_is_final(twilio: TwilioSender, twilio_standin: TwilioStandin) -> None:
    result = twilio.send(sms(body=""))
    assert (result.ok, result.retryable) == (False, False)
    assert result.reason == "twilio 21602: rejected (HTTP 400)"


@pytest.mark.integration
def test_twilio_unreachable_is_retryable() -> None:
    sender = TwilioSender.from_settings(
        "AC" + "0" * 32, "token", from_number=SENDER_PHONE, base_url=f"http://127.0.0.1:{free_port()}"
    )
    result = sender.send(sms())
    assert (result.ok, result.retryable, result.reason) == (False, True, "twilio: connection failed")


@pytest.mark.integration
def test_twilio_timeout_is_retryable(silent_port: int) -> None:
    sender = TwilioSender.from_settings(
        "AC" + "0" * 32, "token", from_number=SENDER_PHONE,
        base_url=f"http://127.0.0.1:{silent_port}", timeout=0.3,
    )
    result = sender.send(sms())
    assert (result.ok, result.retryable, result.reason) == (False, True, "twilio: timeout")


@pytest.mark.integration
def test_twilio_logs_carry_no_number_or_body(
    twilio: TwilioSender, twilio_standin: TwilioStandin, caplog: pytest.LogCaptureFixture
) -> None:
    twilio_standin.register_invalid(PHONE)
    caplog.set_level(logging.DEBUG)
    twilio.send(sms())
    twilio.send(sms(to="+15125550101"))
    assert caplog.records, "expected the sender and the client to log something"
    assert PHONE not in caplog.text and "5550101" not in caplog.text and BODY not in caplog.text


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
