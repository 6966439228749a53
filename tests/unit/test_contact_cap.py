"""A per-customer cap on warnings, counted by the incidents' own time so replays decide alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from forewarn.connectors.memory import InMemoryContactLog
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.interfaces import Rendered
from forewarn.outreach.audience import Recipient
from forewarn.outreach.enqueue import ContactCap, DeliveryTally, Enqueuer
from forewarn.records import Channel, Customer, Message, MessageKind, SendResult
from tests.recording import Clock, Courier

T = datetime(2026, 11, 20, 12, tzinfo=UTC)


class Recorder:
    channel: Channel = "sms"

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, message: Message, *, status_callback: str | None = None, html: str | None = None) -> SendResult:
        self.sent.append(message)
        return SendResult(ok=True)


def _render(customer: Customer, channel: Channel) -> tuple[Rendered, str | None]:
    return Rendered(None, "body"), None


def _recipient(customer: str = "CU-1") -> Recipient[Customer]:
    return Recipient(Customer(id=customer, region="R1", phone="+15125550100"), "sms", "+15125550100")


def test_the_third_warning_in_a_day_is_capped_and_can_go_out_later() -> None:
    sms, outbox, clock = Recorder(), InMemoryOutbox(), Clock(T)
    enqueuer = Enqueuer(outbox, cap=ContactCap(InMemoryContactLog(), max_messages=2), clock=clock)
    courier = Courier(outbox, {"sms": sms}, clock)

    def decide(incident: str, at: datetime, kind: MessageKind = "warning", customer: str = "CU-1") -> dict[str, int]:
        """What the enqueuer decided for one customer at `at` (the incident's time, and the wall clock's)."""
        clock.now = at
        tally = DeliveryTally()
        enqueuer.enqueue(tally, incident, kind, [_recipient(customer)], _render, at)
        courier.run()  # a worker sends what was decided before the next decision
        return dict(tally.outcomes)

    assert decide("INC-1", T) == {"enqueued": 1}
    assert decide("INC-2", T + timedelta(hours=3)) == {"enqueued": 1}
    assert decide("INC-3", T + timedelta(hours=6)) == {"capped": 1}
    assert outbox.decided("INC-3", "warning") == set()  # a capped warning is not decided, so not queued
    assert decide("INC-1", T + timedelta(hours=7), "resolved") == {"enqueued": 1}  # all-clears pass
    assert decide("INC-3", T + timedelta(hours=6), customer="CU-2") == {"enqueued": 1}  # per customer
    # The capped warning was never decided: once the day has passed, the same warning may go out.
    assert decide("INC-3", T + timedelta(hours=25)) == {"enqueued": 1}
    to_one = [(m.key.incident_id, m.key.kind) for m in sms.sent if m.key.customer_id == "CU-1"]
    assert to_one == [("INC-1", "warning"), ("INC-2", "warning"), ("INC-1", "resolved"), ("INC-3", "warning")]


def test_a_replayed_warning_counts_once_against_the_cap() -> None:
    """The contact log gets a decided warning once: a replay (a duplicate) does not use up the cap."""
    log, outbox = InMemoryContactLog(), InMemoryOutbox()
    enqueuer = Enqueuer(outbox, cap=ContactCap(log, max_messages=2), clock=Clock(T))
    for _ in range(3):
        enqueuer.enqueue(DeliveryTally(), "INC-1", "warning", [_recipient()], _render, T)
    assert log.count_since("CU-1", T - timedelta(hours=1)) == 1
    tally = DeliveryTally()
    enqueuer.enqueue(tally, "INC-2", "warning", [_recipient()], _render, T + timedelta(hours=1))
    assert dict(tally.outcomes) == {"enqueued": 1}


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

    from forewarn.connectors.redis_contact_log import RedisContactLog

    log = (InMemoryContactLog() if kind == "memory"
           else RedisContactLog(redis.Redis.from_url(request.getfixturevalue("redis_url")), prefix="many"))
    ids = [f"CU-{i}" for i in range(7)]
    for i, customer_id in enumerate(ids):
        for n in range(i % 3):
            log.add(customer_id, T + timedelta(hours=n), f"INC-{n}|{customer_id}|warning")
    since = T - timedelta(hours=1)
    assert log.counts_since(ids, since) == [log.count_since(c, since) for c in ids] == [0, 1, 2, 0, 1, 2, 0]
    assert ContactCap(log, 2).allowed(ids, T + timedelta(hours=3)) == [True, True, False, True, True, False, True]
