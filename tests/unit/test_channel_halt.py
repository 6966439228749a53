"""Issue 9, as delivery workers do it (issue 11): refused provider credentials pause that channel in the
worker (its circuit breaker); its messages wait in the outbox, none fails, none is lost, the other
channel goes on, and once the credentials are fixed every one of them is sent."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from forewarn.connectors.email import classify_smtp_code
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.twilio_errors import classify_twilio_error
from forewarn.envelopes import Envelope
from forewarn.outreach.dispatch import CHANNEL_HOLD
from forewarn.records import Channel, Message, MessageKey, SendResult
from tests.recording import T0, Clock, Courier

AUTH_REFUSED = SendResult(ok=False, retryable=True, halts_channel=True,
                          reason="twilio 20003: channel halted: authentication failed; fix TWILIO_AUTH_TOKEN")


class CountingSender:
    def __init__(self, channel: Channel, result: SendResult) -> None:
        self.channel = channel
        self.result = result
        self.attempts = 0

    def send(self, message: Message, *, status_callback: str | None = None, html: str | None = None) -> SendResult:
        self.attempts += 1
        return self.result


def envelope(i: int, channel: Channel = "sms") -> Envelope:
    to = f"+1512555{i:04d}" if channel == "sms" else f"c{i}@example.com"
    message = Message(MessageKey("INC-1", f"CU-{i}", "warning"), channel, to, "Outage near you.",
                      "Outage" if channel == "email" else None)
    return Envelope(message, T0, T0 + timedelta(hours=6))


def test_twilio_401_and_20003_halt_the_channel_instead_of_failing_the_message() -> None:
    for status, code in ((401, 20003), (401, None)):
        result = classify_twilio_error(status, code)
        assert (result.ok, result.retryable, result.halts_channel) == (False, True, True)
        assert "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN" in result.reason
    assert not classify_twilio_error(400, 21211).halts_channel
    assert not classify_smtp_code(550, "recipient refused").halts_channel


def _refused(caplog: pytest.LogCaptureFixture) -> tuple[InMemoryOutbox, Clock, Courier, CountingSender]:
    """Five SMS and one email decided; a worker whose SMS credentials are refused drains the outbox."""
    outbox, clock = InMemoryOutbox(), Clock()
    outbox.enqueue([*(envelope(i) for i in range(5)), envelope(9, "email")], clock())
    sms = CountingSender("sms", AUTH_REFUSED)
    email = CountingSender("email", SendResult(ok=True, provider_id="m-1"))
    courier = Courier(outbox, {"sms": sms, "email": email}, clock)
    caplog.set_level(logging.WARNING)
    assert courier.run() == {"paused": 5, "sent": 1}  # the other channel goes on
    assert sms.attempts == 1 and email.attempts == 1  # no retries, no more tries: the channel is paused
    return outbox, clock, courier, sms


def test_refused_credentials_pause_the_channel_and_fail_no_message(caplog: pytest.LogCaptureFixture) -> None:
    outbox, clock, courier, sms = _refused(caplog)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "sms channel paused" in errors[0].getMessage()
    assert "TWILIO_AUTH_TOKEN" in errors[0].getMessage()
    assert "+1512555" not in caplog.text  # no phone number in the logs
    # Nothing failed, nothing lost: each SMS waits in the outbox for the pause to end; the one that met the
    # refusal says why, the others never reached the provider.
    assert outbox.funnel("INC-1") == {"decided": 6, "enqueued": 6, "sent": 1}
    states = [outbox.state(f"INC-1|CU-{i}|warning|sms") for i in range(5)]
    assert all(s["state"] == "retrying" for s in states)
    assert "TWILIO_AUTH_TOKEN" in states[0]["reason"]
    assert all(s["reason"] == "sms paused: breaker open" and s["attempts"] == "0" for s in states[1:])
    assert outbox.scheduled() == 5 and outbox.accepted("INC-1", "warning") == {"CU-9"}
    clock.advance(CHANNEL_HOLD - timedelta(seconds=1))
    assert courier.run() == {} and sms.attempts == 1  # still paused


def test_a_worker_restarted_with_fixed_credentials_sends_them_all(caplog: pytest.LogCaptureFixture) -> None:
    outbox, clock, _, _ = _refused(caplog)
    fixed = CountingSender("sms", SendResult(ok=True, provider_id="SM1"))
    restarted = Courier(outbox, {"sms": fixed}, clock)
    clock.advance(CHANNEL_HOLD)
    assert restarted.run() == {"sent": 5} and fixed.attempts == 5
    assert outbox.accepted("INC-1", "warning") == {f"CU-{i}" for i in (0, 1, 2, 3, 4, 9)}
    assert outbox.scheduled() == 0 and outbox.backlog("sms") == 0


def test_the_paused_worker_probes_once_the_hold_is_over_and_resumes(caplog: pytest.LogCaptureFixture) -> None:
    outbox, clock, courier, sms = _refused(caplog)
    clock.advance(CHANNEL_HOLD)
    sms.result = SendResult(ok=True, provider_id="SM1")  # the operator fixed the credentials at the provider
    assert courier.run() == {"sent": 5}  # one probe goes, it succeeds, the breaker closes, the rest follow
    assert sms.attempts == 6 and outbox.accepted("INC-1", "warning") == {f"CU-{i}" for i in (0, 1, 2, 3, 4, 9)}


def test_a_probe_refused_again_pauses_the_channel_again_and_still_fails_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox, clock, courier, sms = _refused(caplog)
    clock.advance(CHANNEL_HOLD)
    assert courier.run() == {"paused": 5} and sms.attempts == 2  # one probe, refused: the rest untried
    assert outbox.funnel("INC-1") == {"decided": 6, "enqueued": 6, "sent": 1} and outbox.scheduled() == 5
