"""Issue 9: refused provider credentials halt that channel for the run; its messages wait, none fail."""

from __future__ import annotations

import logging

import pytest

from forewarn.connectors.email import classify_smtp_code
from forewarn.connectors.memory import InMemoryLedger
from forewarn.connectors.sms import classify_twilio_error
from forewarn.outreach.delivery import Deliverer, RetryPolicy
from forewarn.records import Channel, Message, MessageKey, SendResult

AUTH_REFUSED = SendResult(ok=False, retryable=True, halts_channel=True,
                          reason="twilio 20003: channel halted: authentication failed; fix TWILIO_AUTH_TOKEN")


class CountingSender:
    def __init__(self, channel: Channel, result: SendResult) -> None:
        self.channel = channel
        self.result = result
        self.attempts = 0

    def send(self, message: Message) -> SendResult:
        self.attempts += 1
        return self.result


def message(i: int, channel: Channel = "sms") -> Message:
    to = f"+1512555{i:04d}" if channel == "sms" else f"c{i}@example.com"
    return Message(MessageKey("INC-1", f"CU-{i}", "warning"), channel, to, "Outage near you.")


def test_twilio_401_and_20003_halt_the_channel_instead_of_failing_the_message() -> None:
    for status, code in ((401, 20003), (401, None)):
        result = classify_twilio_error(status, code)
        assert (result.ok, result.retryable, result.halts_channel) == (False, True, True)
        assert "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN" in result.reason
    assert not classify_twilio_error(400, 21211).halts_channel
    assert not classify_smtp_code(550, "recipient refused").halts_channel


def test_refused_credentials_defer_every_message_of_the_channel_and_record_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = InMemoryLedger()
    sms = CountingSender("sms", AUTH_REFUSED)
    email = CountingSender("email", SendResult(ok=True, provider_id="m-1"))
    waits: list[float] = []
    deliverer = Deliverer(ledger, {"sms": sms, "email": email}, RetryPolicy(attempts=3), sleep=waits.append)
    caplog.set_level(logging.WARNING)

    outcomes = [deliverer.deliver(message(i)) for i in range(5)]
    assert outcomes == ["deferred"] * 5
    assert sms.attempts == 1 and waits == []  # no retries, and no later attempts: the channel is halted
    assert deliverer.deliver(message(9, "email")) == "sent"  # the other channel goes on
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "sms channel halted" in errors[0].getMessage()
    assert "TWILIO_AUTH_TOKEN" in errors[0].getMessage()
    assert "+1512555" not in caplog.text  # no phone number in the logs

    # nothing recorded as failed, nothing left claimed: a restart with fixed credentials sends them all
    fixed = Deliverer(ledger, {"sms": CountingSender("sms", SendResult(ok=True, provider_id="SM1"))})
    assert [fixed.deliver(message(i)) for i in range(5)] == ["sent"] * 5
