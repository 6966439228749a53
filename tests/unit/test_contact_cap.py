"""A per-customer cap on warnings, counted by the incidents' own time so replays decide alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from forewarn.connectors.memory import InMemoryContactLog, InMemoryLedger
from forewarn.outreach.delivery import ContactCap, Deliverer
from forewarn.records import Channel, Message, MessageKey, SendResult

T = datetime(2026, 11, 20, 12, tzinfo=UTC)


class Recorder:
    channel: Channel = "sms"

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, message: Message) -> SendResult:
        self.sent.append(message)
        return SendResult(ok=True)


def _msg(incident: str, kind: str = "warning", customer: str = "CU-1") -> Message:
    return Message(MessageKey(incident, customer, kind), "sms", "+15125550100", "body")  # type: ignore[arg-type]


def test_the_third_warning_in_a_day_is_capped_and_can_go_out_later() -> None:
    sms = Recorder()
    ledger = InMemoryLedger()
    deliver = Deliverer(ledger, {"sms": sms}, cap=ContactCap(InMemoryContactLog(), max_messages=2))
    assert deliver.deliver(_msg("INC-1"), T) == "sent"
    assert deliver.deliver(_msg("INC-2"), T + timedelta(hours=3)) == "sent"
    assert deliver.deliver(_msg("INC-3"), T + timedelta(hours=6)) == "capped"
    assert deliver.deliver(_msg("INC-1", "resolved"), T + timedelta(hours=7)) == "sent"  # all-clears pass
    assert deliver.deliver(_msg("INC-3", customer="CU-2"), T + timedelta(hours=6)) == "sent"  # per customer
    # The capped claim was released: once the day has passed, the same warning may go out.
    assert deliver.deliver(_msg("INC-3"), T + timedelta(hours=25)) == "sent"
    assert [m.key.incident_id for m in sms.sent if m.key.customer_id == "CU-1"] == ["INC-1", "INC-2", "INC-1", "INC-3"]


@pytest.mark.integration
def test_redis_contact_log_counts_by_event_time(redis_url: str) -> None:
    import redis

    from forewarn.connectors.redis_contact_log import RedisContactLog

    log = RedisContactLog(redis.Redis.from_url(redis_url))
    log.add("CU-1", T, "INC-1|CU-1|warning")
    log.add("CU-1", T + timedelta(hours=5), "INC-2|CU-1|warning")
    log.add("CU-1", T + timedelta(hours=5), "INC-2|CU-1|warning")  # the same key once
    assert log.count_since("CU-1", T - timedelta(hours=1)) == 2
    assert log.count_since("CU-1", T + timedelta(hours=1)) == 1
    assert log.count_since("CU-2", T) == 0


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.integration)])
def test_counts_for_many_customers_agree_with_one_at_a_time(kind: str, request: pytest.FixtureRequest) -> None:
    import redis

    from forewarn.connectors.memory import InMemoryContactLog
    from forewarn.connectors.redis_contact_log import RedisContactLog
    from forewarn.outreach.delivery import ContactCap

    log = (InMemoryContactLog() if kind == "memory"
           else RedisContactLog(redis.Redis.from_url(request.getfixturevalue("redis_url")), prefix="many"))
    ids = [f"CU-{i}" for i in range(7)]
    for i, customer_id in enumerate(ids):
        for n in range(i % 3):
            log.add(customer_id, T + timedelta(hours=n), f"INC-{n}|{customer_id}|warning")
    since = T - timedelta(hours=1)
    assert log.counts_since(ids, since) == [log.count_since(c, since) for c in ids] == [0, 1, 2, 0, 1, 2, 0]
    assert ContactCap(log, 2).allowed(ids, T + timedelta(hours=3)) == [True, True, False, True, True, False, True]
