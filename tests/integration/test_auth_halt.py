"""Issue 9, with delivery as its own service (issue 11): a wrong Twilio token pauses SMS in the delivery
worker and keeps every SMS in the Redis outbox, failing none; email goes on; a worker with the right
token delivers them all, once (production wiring, real Redis, the Twilio stand-in, the SMTP server)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import redis

from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.flows.delivery_parts import production_worker
from forewarn.flows.wiring import RedisParts
from forewarn.outreach.dispatch import CHANNEL_HOLD
from forewarn.records import Customer, Incident
from forewarn.settings import Secrets
from tests.integration.helpers import load_customers, make_settings, secrets_for
from tests.integration.test_end_to_end import deliver_all
from tests.servers.ports import wait_until
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

REGION = "TX-453"
PREFIX = "halt"


def customers() -> list[Customer]:
    return [Customer(id=f"CU-{i}", region=REGION, phone=f"+1512555{i:04d}", email=f"c{i}@example.com",
                     preferred_channel="email" if i % 4 == 0 else "sms", timezone="America/Chicago")
            for i in range(12)]


def incident() -> Incident:
    first = datetime(2026, 11, 17, 13, 15, tzinfo=UTC)
    return Incident("INC-20261117T1315Z-no_internet-TX-453-halt", "no_internet", REGION, "opened",
                    opened_at=first + timedelta(hours=1), first_window_start=first,
                    last_spike_end=first + timedelta(hours=1), observed=16, expected=0.35, spikes=1,
                    linked_cases=16, reporters=frozenset())


@pytest.mark.integration
def test_a_wrong_token_fails_no_message_and_a_worker_with_the_right_one_delivers_them_all(
    redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,
) -> None:
    # Kafka is not used here: outreach is driven directly, as the flow's outreach step drives it.
    settings = make_settings({}, "127.0.0.1:9", redis_url, twilio_standin, smtp_server, prefix=PREFIX)
    # One SMS in flight at a time, so "the first refusal pauses the channel" is exactly one request.
    delivery = settings.delivery.model_copy(update={"concurrency": {"sms": 1, "email": 2}})
    settings = settings.model_copy(update={"delivery": delivery})
    load_customers(redis_url, PREFIX, customers())
    wrong = Secrets(twilio_account_sid=twilio_standin.account_sid, twilio_auth_token="wrong-token")

    decided = RedisParts(settings, wrong).outreach().handle(incident())
    # The flow decides and returns: all 12 queued, none sent yet, whatever the token.
    assert decided.outcomes == Counter({"enqueued": 12})
    assert decided.enqueued_by_channel == Counter({"sms": 9, "email": 3})
    assert twilio_standin.requests == 0 and smtp_server.messages == []

    outbox = RedisOutbox(redis.Redis.from_url(redis_url), PREFIX, settings.delivery.shards)
    caplog.set_level(logging.WARNING)
    worker = production_worker(settings, wrong).start()
    try:
        wait_until(lambda: len(smtp_server.messages) == 3 and outbox.scheduled() == 1,
                   "email sent and the refused SMS back in the outbox")
    finally:
        worker.stop()
    # No SMS failed: all 9 wait in the outbox (the refused one put back for after the pause, the others
    # left in the stream untaken); email, with its own working login, went on.
    assert twilio_standin.messages == []
    assert twilio_standin.requests == 1  # the channel paused at the first refusal: no retries, no more tries
    assert outbox.accepted(incident().id, "warning") == {f"CU-{i}" for i in (0, 4, 8)}
    assert outbox.funnel(incident().id) == {"decided": 12, "enqueued": 12, "sent": 3}
    sms_ids = [c.id for c in customers() if c.preferred_channel == "sms"]
    states = Counter(outbox.state(f"{incident().id}|{c}|warning|sms")["state"] for c in sms_ids)
    assert states == {"retrying": 1, "enqueued": 8} and outbox.backlog("sms") == 8
    paused = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "paused" in r.getMessage()]
    assert paused and all("TWILIO_AUTH_TOKEN" in m and "wrong-token" not in m for m in paused)
    assert "+1512555" not in caplog.text

    # The token is fixed and a worker restarted: the paused SMS go once the pause is over (moved on here,
    # not waited for), each once, and a replay of the incident decides nothing new.
    assert outbox.promote_due(datetime.now(UTC) + CHANNEL_HOLD) == 1
    deliver_all(settings, twilio_standin)
    assert sorted(m.to for m in twilio_standin.messages) == sorted(
        str(c.phone) for c in customers() if c.preferred_channel == "sms")
    assert len(smtp_server.messages) == 3
    assert outbox.accepted(incident().id, "warning") == {c.id for c in customers()}
    assert outbox.funnel(incident().id) == {"decided": 12, "enqueued": 12, "sent": 12}
    rerun = RedisParts(settings, secrets_for(twilio_standin)).outreach().handle(incident())
    assert rerun.outcomes == Counter({"duplicate": 12})
    deliver_all(settings, twilio_standin)
    assert len(twilio_standin.messages) == 9 and len(smtp_server.messages) == 3
