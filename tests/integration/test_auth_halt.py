"""Issue 9: a wrong Twilio token during a run halts SMS and keeps every SMS for later; once the
token is fixed, a rerun over the same Redis ledger delivers them all (production wiring, real Redis,
the Twilio stand-in, the SMTP server)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import redis

from forewarn.connectors.redis_ledger import RedisLedger
from forewarn.flows.wiring import RedisParts
from forewarn.records import Customer, Incident
from forewarn.settings import Secrets
from tests.integration.helpers import load_customers, make_settings, secrets_for
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
def test_a_wrong_token_fails_no_message_and_a_rerun_with_the_right_one_delivers_them_all(
    redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer,
) -> None:
    # Kafka is not used here: outreach is driven directly, as the flow's outreach step drives it.
    settings = make_settings({}, "127.0.0.1:9", redis_url, twilio_standin, smtp_server, prefix=PREFIX)
    load_customers(redis_url, PREFIX, customers())
    wrong = Secrets(twilio_account_sid=twilio_standin.account_sid, twilio_auth_token="wrong-token")

    first = RedisParts(settings, wrong).outreach().handle(incident())
    # no SMS failed: all 9 kept for later; email, with its own working login, went on
    assert first.outcomes == Counter({"deferred": 9, "sent": 3})
    assert first.sent_by_channel == Counter({"email": 3})
    assert twilio_standin.messages == []
    assert twilio_standin.requests == 1  # the channel halted at the first refusal: no retries, no more tries
    client = redis.Redis.from_url(redis_url)
    ledger = RedisLedger(client, PREFIX)
    assert ledger.recipients(incident().id, "warning") == {f"CU-{i}" for i in (0, 4, 8)}

    rerun = RedisParts(settings, secrets_for(twilio_standin)).outreach().handle(incident())
    assert rerun.outcomes == Counter({"sent": 9, "duplicate": 3})
    assert sorted(m.to for m in twilio_standin.messages) == sorted(
        str(c.phone) for c in customers() if c.preferred_channel == "sms")
    assert len(smtp_server.messages) == 3
    assert ledger.recipients(incident().id, "warning") == {c.id for c in customers()}
