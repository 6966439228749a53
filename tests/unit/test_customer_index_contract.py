"""One contract for every CustomerIndex and Outbox: in-memory and Redis behave the same.

The outbox is where a message is decided once (the ledger's old job) and where delivery workers
take, settle and reschedule it; `InMemoryOutbox` (the demo's) and `RedisOutbox` must agree on all of it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.envelopes import Envelope, Lease
from forewarn.geo import Area
from forewarn.interfaces import CustomerIndex, DeliveryQueue, Outbox
from forewarn.records import Channel, Customer, Message, MessageKey, MessageKind, SendResult


def customer(
    cid: str,
    region: str = "TX-453",
    model: str = "R7000",
    firmware: str = "2.1.7",
    lot: str | None = "L-1",
    **extra: Any,
) -> Customer:
    product: dict[str, Any] = {"model": model, "firmware": firmware}
    if lot:
        product["lot"] = lot
    return Customer.model_validate(
        {
            "id": cid,
            "phone": "+15125550100",
            "email": f"{cid}@example.com",
            "region": region,
            "lat": 30.27,
            "lon": -97.74,
            "timezone": "America/Chicago",
            "products": [product],
            **extra,
        }
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def index(request: pytest.FixtureRequest) -> CustomerIndex:
    if request.param == "memory":
        return InMemoryCustomerIndex()
    return RedisCustomerIndex(request.getfixturevalue("redis_client"), prefix="t", batch_size=3)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


AnOutbox = InMemoryOutbox | RedisOutbox


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def outbox(request: pytest.FixtureRequest) -> AnOutbox:
    if request.param == "memory":
        return InMemoryOutbox()
    return RedisOutbox(request.getfixturevalue("redis_client"), prefix="t", shards=3)


def ids(customers: Iterator[Customer]) -> set[str]:
    return {c.id for c in customers}


# -- customer index ---------------------------------------------------------------------------


def test_satisfies_protocol(index: CustomerIndex) -> None:
    assert isinstance(index, CustomerIndex)


def test_upsert_then_get_many(index: CustomerIndex) -> None:
    batch = [customer(f"CU-{i}") for i in range(7)]  # more than one Redis batch of 3
    assert index.upsert(batch) == 7
    got = index.get_many(["CU-3", "nobody", "CU-0"])
    assert got[1] is None
    assert got[0] == batch[3] and got[2] == batch[0]
    assert got[0] is not None and got[0].contact("sms") == "+15125550100"
    assert index.size() == 7


def test_upsert_keeps_extra_fields_and_missing_values(index: CustomerIndex) -> None:
    bare = Customer.model_validate({"id": "CU-1", "region": "R1", "tier": "gold"})
    index.upsert([bare])
    [got] = index.get_many(["CU-1"])
    assert got == bare and got is not None and got.model_extra == {"tier": "gold"}
    assert got.contact("sms") is None and got.products == ()


def test_attribute_change_moves_customer_between_sets(index: CustomerIndex) -> None:
    index.upsert([customer("CU-1", firmware="2.1.7"), customer("CU-2", firmware="2.1.7")])
    assert index.value_counts("firmware", ["2.1.7", "2.1.8"]) == {"2.1.7": 2, "2.1.8": 0}

    index.upsert([customer("CU-1", firmware="2.1.8", region="TX-999", lot=None)])

    assert index.value_counts("firmware", ["2.1.7", "2.1.8"]) == {"2.1.7": 1, "2.1.8": 1}
    assert ids(index.segment({"firmware": "2.1.7"})) == {"CU-2"}
    assert ids(index.segment({"firmware": "2.1.8"})) == {"CU-1"}
    assert ids(index.segment({"region": "TX-453"})) == {"CU-2"}
    assert index.value_counts("lot", ["L-1"]) == {"L-1": 1}
    assert index.size() == 2
    [got] = index.get_many(["CU-1"])
    assert got is not None and got.region == "TX-999"


def test_same_id_twice_in_one_batch_last_wins(index: CustomerIndex) -> None:
    index.upsert([customer("CU-1", model="A"), customer("CU-1", model="B")])
    assert index.value_counts("model", ["A", "B"]) == {"A": 0, "B": 1}
    assert index.size() == 1


def test_segment_is_and_of_values(index: CustomerIndex) -> None:
    index.upsert(
        [
            customer("CU-1", model="R7000", firmware="2.1.7"),
            customer("CU-2", model="R7000", firmware="2.1.8"),
            customer("CU-3", model="X1", firmware="2.1.7"),
            customer("CU-4", model="R7000", firmware="2.1.7", region="OK-1"),
        ]
    )
    assert ids(index.segment({"model": "R7000", "firmware": "2.1.7"})) == {"CU-1", "CU-4"}
    assert ids(index.segment({"model": "R7000", "firmware": "2.1.7", "region": "TX-453"})) == {"CU-1"}
    assert ids(index.segment({"model": "R7000"})) == {"CU-1", "CU-2", "CU-4"}
    assert ids(index.segment({"model": "nope", "firmware": "2.1.7"})) == set()
    assert ids(index.segment({})) == {"CU-1", "CU-2", "CU-3", "CU-4"}


def test_segment_of_many_customers_yields_each_once(index: CustomerIndex) -> None:
    index.upsert(customer(f"CU-{i}", model="M" if i % 2 else "N") for i in range(50))
    matched = [c.id for c in index.segment({"model": "M"})]
    assert len(matched) == len(set(matched)) == 25


def test_value_counts_and_size(index: CustomerIndex) -> None:
    assert index.size() == 0
    index.upsert([customer("CU-1", region="A"), customer("CU-2", region="A"), customer("CU-3", region="B")])
    assert index.value_counts("region", ["A", "B", "C"]) == {"A": 2, "B": 1, "C": 0}
    assert index.size() == 3


def test_attribute_counts_list_every_value_and_follow_changes(index: CustomerIndex) -> None:
    assert index.attribute_counts("region") == {}
    index.upsert([customer("CU-1", region="A"), customer("CU-2", region="A:1"), customer("CU-3", region="B*")])
    assert index.attribute_counts("region") == {"A": 1, "A:1": 1, "B*": 1}
    index.upsert([customer("CU-2", region="A")])
    assert index.attribute_counts("region") == {"A": 2, "B*": 1}


def test_model_and_firmware_together_match_on_one_product(index: CustomerIndex) -> None:
    two = Customer.model_validate({"id": "CU-2", "region": "TX-453", "products": [
        {"model": "R7000", "firmware": "2.0.0"}, {"model": "X1", "firmware": "2.1.7"}]})
    index.upsert([customer("CU-1"), two])
    assert ids(index.segment({"model": "R7000", "firmware": "2.1.7"})) == {"CU-1"}
    assert ids(index.segment({"model": "R7000"})) == {"CU-1", "CU-2"}
    assert ids(index.segment({"firmware": "2.1.7", "region": "TX-453"})) == {"CU-1", "CU-2"}


@pytest.mark.parametrize("segment", [
    {}, {"model": "R7000"}, {"model": "R7000", "firmware": "2.1.7"}, {"region": "A", "model": "R7000"},
    {"model": "R7000", "firmware": "2.1.7", "region": "A"}, {"model": "nope", "firmware": "2.1.7"},
])
def test_count_agrees_with_segment(index: CustomerIndex, segment: dict[str, str]) -> None:
    made = [customer(f"CU-{i}", region="AB"[i % 2], model=("R7000", "X1", "R7000")[i % 3],
                     firmware=("2.1.7", "2.1.8")[i % 4 // 3]) for i in range(24)]
    index.upsert(made)
    expected = sum(1 for c in made if all(  # one product each: any product is the same product
        c.region == value if name == "region" else getattr(c.products[0], name) == value
        for name, value in segment.items()))
    assert index.count(segment) == len(list(index.segment(segment))) == expected


def test_contacts_are_the_segment_read_lighter(index: CustomerIndex) -> None:
    index.upsert([customer("CU-1", opt_out={"sms": True}), customer("CU-2", preferred_channel="email"),
                  customer("CU-3", model="X1")])
    cards = {card.id: card for card in index.contacts({"model": "R7000"})}
    assert set(cards) == {"CU-1", "CU-2"}
    for got in index.get_many(["CU-1", "CU-2"]):
        assert got is not None and cards[got.id] == got.card()
    assert cards["CU-1"].contact("sms") is None and cards["CU-2"].contact("email") == "CU-2@example.com"
    with pytest.raises(ValueError, match="colour"):
        index.contacts({"colour": "red"})


def test_in_area_finds_the_located_customers_inside_each_once(index: CustomerIndex) -> None:
    index.upsert([customer("CU-1"), customer("CU-2", lat=30.30, lon=-97.70, model="X1"),
                  customer("CU-3", lat=40.0, lon=-100.0), customer("CU-4", lat=None, lon=None),
                  customer("CU-5", lat=86.0, lon=-97.74)])
    around_austin = (30.28, -97.72, 10.0)
    box = [(39.9, -100.1), (40.1, -100.1), (40.1, -99.9), (39.9, -99.9)]
    polar = [(85.5, -98.0), (89.0, -98.0), (89.0, -97.0), (85.5, -97.0)]
    assert ids(index.in_area(Area(circles=[around_austin]))) == {"CU-1", "CU-2"}
    found = [c.id for c in index.in_area(Area([box, polar], [around_austin, (30.27, -97.74, 1.0)]), batch_size=1)]
    assert sorted(found) == ["CU-1", "CU-2", "CU-3"]  # each once, though CU-1 is in two circles
    assert ids(index.in_area(Area(circles=[around_austin]), {"model": "R7000"})) == {"CU-1"}
    assert ids(index.in_area(Area(circles=[around_austin]), {"model": "X1", "firmware": "2.1.7"})) == {"CU-2"}
    assert ids(index.in_area(Area())) == set()
    assert ids(index.in_area(Area([polar]))) == set()  # beyond the GEO latitudes: never in an area
    with pytest.raises(ValueError, match="colour"):
        index.in_area(Area([box]), {"colour": "red"})
    # Moving customers moves them in and out of areas.
    index.upsert([customer("CU-1", lat=40.0, lon=-100.05), customer("CU-4", lat=30.28, lon=-97.72),
                  customer("CU-2", lat=None, lon=None)])
    assert ids(index.in_area(Area(circles=[around_austin]))) == {"CU-4"}
    assert ids(index.in_area(Area([box]))) == {"CU-1", "CU-3"}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def traits_index(request: pytest.FixtureRequest) -> CustomerIndex:
    extra = ("tier", "battery_backup")
    if request.param == "memory":
        return InMemoryCustomerIndex(extra)
    return RedisCustomerIndex(request.getfixturevalue("redis_client"), prefix="t", batch_size=3, extra_traits=extra)


def test_extra_traits_are_indexed_from_customer_and_product_fields(traits_index: CustomerIndex) -> None:
    def with_backup(cid: str, backup: bool, **extra: Any) -> Customer:
        return Customer.model_validate({"id": cid, "region": "R", "products": [
            {"model": "M", "firmware": "1", "battery_backup": backup}], **extra})

    traits_index.upsert([with_backup("CU-1", False, tier="gold"), with_backup("CU-2", True, tier="gold"),
                         with_backup("CU-3", False, tier=" silver "), with_backup("CU-4", False, notes="x" * 200)])
    assert traits_index.traits[-2:] == ("tier", "battery_backup")
    assert ids(traits_index.segment({"battery_backup": "false"})) == {"CU-1", "CU-3", "CU-4"}
    assert ids(traits_index.segment({"tier": "gold", "battery_backup": "false"})) == {"CU-1"}
    assert traits_index.attribute_counts("tier") == {"gold": 2, "silver": 1}
    traits_index.upsert([with_backup("CU-1", True, tier="silver")])
    assert traits_index.value_counts("tier", ["gold", "silver"]) == {"gold": 1, "silver": 2}
    assert traits_index.count({"battery_backup": "false"}) == 2
    with pytest.raises(ValueError, match="notes"):
        traits_index.count({"notes": "x"})  # a field not configured as a trait


def test_record_opt_out_rewrites_only_that_channel(index: CustomerIndex) -> None:
    index.upsert([customer("CU-1"), customer("CU-2")])
    assert index.record_opt_out("CU-1", "sms") is True
    assert index.record_opt_out("CU-1", "sms") is False  # already opted out
    assert index.record_opt_out("nobody", "sms") is False
    one, two = index.get_many(["CU-1", "CU-2"])
    assert one is not None and one.opt_out.sms and not one.opt_out.email and one.products == customer("CU-1").products
    assert two is not None and not two.opt_out.sms
    assert {c.id: c.opted_out("sms") for c in index.contacts({"model": "R7000"})} == {"CU-1": True, "CU-2": False}


def test_unknown_attribute_is_refused(index: CustomerIndex) -> None:
    with pytest.raises(ValueError, match="region, model, firmware, lot"):
        index.segment({"colour": "red"})  # refused at the call, before iteration
    with pytest.raises(ValueError, match="colour"):
        index.value_counts("colour", ["red"])


# -- outbox -----------------------------------------------------------------------------------

KEY = MessageKey("INC-1", "CU-1", "warning")
ID = "INC-1|CU-1|warning|sms"
T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
NO_WAIT = 0.01
"""`take`'s wait when the queue is empty (Redis reads a BLOCK of 0 as "forever")."""


def envelope(customer: str = "CU-1", kind: MessageKind = "warning", channel: Channel = "sms",
             incident: str = "INC-1", not_before: datetime | None = None, fallback: Envelope | None = None,
             ) -> Envelope:
    to = "+15125550100" if channel == "sms" else f"{customer.lower()}@example.com"
    message = Message(MessageKey(incident, customer, kind), channel, to, "Outage near you.",
                      "Outage" if channel == "email" else None)
    return Envelope(message, T, T + timedelta(hours=6), not_before, "<p>Outage</p>" if channel == "email" else None,
                    fallback)


def take_one(outbox: AnOutbox, channel: Channel = "sms", consumer: str = "w1") -> Lease:
    [lease] = outbox.take(channel, consumer, 10, NO_WAIT)
    return lease


def test_outbox_satisfies_both_protocols(outbox: AnOutbox) -> None:
    assert isinstance(outbox, Outbox) and isinstance(outbox, DeliveryQueue)


def test_taking_from_an_empty_queue_without_a_wait_returns_at_once(outbox: AnOutbox) -> None:
    started = time.monotonic()
    assert outbox.take("sms", "w1", 10, 0) == [] and outbox.take("email", "w1", 10, 0) == []
    assert time.monotonic() - started < 1  # a block of 0 is no wait (Redis's BLOCK 0 would be for ever)


def test_a_key_is_decided_only_once(outbox: AnOutbox) -> None:
    assert outbox.enqueue([envelope()], T) == [ID]
    assert outbox.enqueue([envelope()], T) == []
    assert outbox.enqueue([envelope(channel="email")], T) == []  # one message per key, whatever the channel
    assert outbox.enqueue([envelope(kind="resolved"), envelope("CU-2"), envelope("CU-2")], T) == [
        "INC-1|CU-1|resolved|sms", "INC-1|CU-2|warning|sms"]  # a batch decides each key once too
    assert outbox.backlog("sms") == 3 and outbox.backlog("email") == 0
    assert outbox.funnel("INC-1") == {"decided": 3, "enqueued": 3}


def test_a_settled_message_is_never_decided_or_sent_again(outbox: AnOutbox, clock: Clock) -> None:
    outbox.enqueue([envelope()], clock.now)
    lease = take_one(outbox)
    begun = outbox.begin(lease, clock.now)
    assert (begun.verdict, begun.attempts, begun.envelope) == ("send", 1, envelope())
    outbox.settle(lease, "sent", clock.now, SendResult(ok=True, provider_id="SM1"))
    assert outbox.enqueue([envelope()], clock.now) == []
    assert outbox.backlog("sms") == 0 and outbox.take("sms", "w1", 10, NO_WAIT) == []
    state = outbox.state(ID)
    assert (state["state"], state["provider_id"], state["attempts"]) == ("sent", "SM1", "1")
    history = outbox.history("INC-1", "CU-1")
    assert list(history) == [ID]
    assert [(e["state"], e["at"]) for e in history[ID]] == [
        ("decided", T), ("enqueued", T), ("sending", T), ("sent", T)]
    # a second settle (a worker that took a duplicate entry) changes nothing
    outbox.settle(lease, "failed", clock.now, SendResult(ok=False, reason="late"))
    assert outbox.state(ID)["state"] == "sent" and outbox.accepted("INC-1", "warning") == {"CU-1"}


def test_a_failed_message_is_final_and_not_accepted(outbox: AnOutbox, clock: Clock) -> None:
    outbox.enqueue([envelope(channel="email")], clock.now)
    lease = take_one(outbox, "email")
    outbox.begin(lease, clock.now)
    outbox.settle(lease, "failed", clock.now, SendResult(ok=False, reason="invalid_address"))
    assert outbox.enqueue([envelope(channel="email")], clock.now) == []
    state = outbox.state("INC-1|CU-1|warning|email")
    assert (state["state"], state["reason"]) == ("failed", "invalid_address")
    assert outbox.accepted("INC-1", "warning") == set() and outbox.decided("INC-1", "warning") == {"CU-1"}
    assert outbox.funnel("INC-1") == {"decided": 1, "enqueued": 1, "failed": 1}


def test_decided_and_accepted_are_by_incident_and_kind(outbox: AnOutbox, clock: Clock) -> None:
    outbox.enqueue([envelope("CU-1"), envelope("CU-2"), envelope("CU-3", "resolved"), envelope("CU-4")], clock.now)
    for lease in outbox.take("sms", "w1", 10, NO_WAIT):
        outbox.begin(lease, clock.now)
        ok = not lease.message_id.startswith("INC-1|CU-4")
        outbox.settle(lease, "sent" if ok else "failed", clock.now, SendResult(ok=ok))
    assert outbox.decided("INC-1", "warning") == {"CU-1", "CU-2", "CU-4"}
    assert outbox.accepted("INC-1", "warning") == {"CU-1", "CU-2"}
    assert outbox.accepted("INC-1", "resolved") == {"CU-3"}
    assert outbox.decided("INC-2", "warning") == outbox.accepted("INC-2", "warning") == set()


def test_a_message_a_crashed_worker_left_is_reclaimed_and_reconciled_before_a_resend(outbox: AnOutbox,
                                                                                     clock: Clock) -> None:
    outbox.enqueue([envelope()], clock.now)
    lease = take_one(outbox, consumer="crashed")
    assert outbox.begin(lease, clock.now).verdict == "send"  # ... and the worker dies before it settles
    assert outbox.take("sms", "w2", 10, NO_WAIT) == []  # taken: not handed out again as new
    assert outbox.reclaim("sms", "w2", idle=60, count=10) == []  # not idle long enough yet
    time.sleep(0.01)
    [again] = outbox.reclaim("sms", "w2", idle=0.001, count=10)
    assert again.message_id == ID and again.deliveries > 1
    begun = outbox.begin(again, clock.now + timedelta(minutes=1))
    # the provider may have it: look it up first; the first attempt's time bounds the lookup
    assert (begun.verdict, begun.attempts, begun.first_attempt_at) == ("reconcile", 2, T)
    outbox.settle(again, "sent", clock.now, SendResult(ok=True, provider_id="SM1", reason="found in the log"))
    assert outbox.accepted("INC-1", "warning") == {"CU-1"} and outbox.backlog("sms") == 0


def test_a_deferred_message_waits_for_its_time(outbox: AnOutbox, clock: Clock) -> None:
    morning = T + timedelta(hours=8)
    assert outbox.enqueue([envelope(not_before=morning)], T) == [ID]
    assert outbox.backlog("sms") == 0 and outbox.scheduled() == 1 and outbox.take("sms", "w1", 10, NO_WAIT) == []
    assert outbox.state(ID)["state"] == "deferred" and outbox.funnel("INC-1") == {"decided": 1, "deferred": 1}
    assert outbox.promote_due(morning - timedelta(seconds=1)) == 0
    assert outbox.promote_due(morning) == 1
    assert outbox.scheduled() == 0 and take_one(outbox).message_id == ID
    urgent = Envelope(envelope("CU-2").message, T, T + timedelta(hours=6), morning, urgent=True)
    outbox.enqueue([urgent], T)
    assert outbox.backlog("sms") == 2 and outbox.scheduled() == 0  # urgent: queued at once


def test_a_retry_waits_for_its_due_time_and_an_uncertain_one_is_reconciled(outbox: AnOutbox, clock: Clock) -> None:
    outbox.enqueue([envelope()], T)
    lease = take_one(outbox)
    outbox.begin(lease, T)
    outbox.retry(lease, T + timedelta(seconds=2), T, SendResult(ok=False, retryable=True, reason="429"))
    assert outbox.backlog("sms") == 0 and outbox.scheduled() == 1 and outbox.state(ID)["state"] == "retrying"
    assert outbox.promote_due(T + timedelta(seconds=1)) == 0 and outbox.promote_due(T + timedelta(seconds=2)) == 1
    lease = take_one(outbox)
    assert outbox.begin(lease, T).verdict == "send"  # the 429 surely did not reach the provider
    outbox.retry(lease, T + timedelta(seconds=4), T, SendResult(ok=False, retryable=True, uncertain=True,
                                                                reason="timeout after the POST"))
    outbox.promote_due(T + timedelta(seconds=4))
    begun = outbox.begin(take_one(outbox), T)
    assert (begun.verdict, begun.attempts) == ("reconcile", 3)
    assert outbox.decided("INC-1", "warning") == {"CU-1"} and outbox.accepted("INC-1", "warning") == set()


def test_a_released_message_goes_back_untried(outbox: AnOutbox, clock: Clock) -> None:
    outbox.enqueue([envelope()], T)
    lease = take_one(outbox)
    outbox.release(lease, T + timedelta(minutes=5), T, "sms paused: breaker open")
    assert outbox.scheduled() == 1 and outbox.state(ID)["state"] == "retrying"
    outbox.promote_due(T + timedelta(minutes=5))
    assert outbox.begin(take_one(outbox), T).verdict == "send"


def test_an_undelivered_sms_falls_back_to_its_email_once(outbox: AnOutbox, clock: Clock) -> None:
    email = envelope(channel="email")
    outbox.enqueue([envelope(fallback=email)], T)
    lease = take_one(outbox)
    outbox.begin(lease, T)
    outbox.settle(lease, "sent", T, SendResult(ok=True, provider_id="SM1"))
    assert outbox.record_status(ID, "sent", T) is True and outbox.backlog("email") == 0  # progress only
    assert outbox.record_status(ID, "undelivered", T, "error 30003") is True
    assert outbox.state(ID)["state"] == "undelivered" and outbox.backlog("email") == 1
    assert outbox.record_status(ID, "failed", T, "error 30005") is True  # a later word queues nothing more
    assert outbox.backlog("email") == 1
    fallback = take_one(outbox, "email")
    assert fallback.message_id == "INC-1|CU-1|warning|email"
    begun = outbox.begin(fallback, T)
    assert begun.verdict == "send" and begun.envelope == email
    assert outbox.funnel("INC-1")["fallback"] == 1 and outbox.accepted("INC-1", "warning") == {"CU-1"}
    assert outbox.record_status("INC-9|CU-1|warning|sms", "delivered", T) is False


def test_an_all_clear_skips_a_warning_never_sent_and_supersedes_a_waiting_one(
        outbox: AnOutbox, clock: Clock) -> None:
    morning = T + timedelta(hours=8)
    outbox.enqueue([envelope("CU-1"), envelope("CU-2", not_before=morning)], T)
    lease = take_one(outbox)  # CU-1's warning
    outbox.begin(lease, T)
    outbox.settle(lease, "failed", T, SendResult(ok=False, reason="21211"))
    outbox.enqueue([envelope("CU-1", "resolved"), envelope("CU-2", "resolved")], T)
    # CU-2's all-clear is decided while its warning waits for the morning: both are superseded right then
    assert outbox.state("INC-1|CU-2|resolved|sms")["state"] == "superseded"
    verdicts = {lease.message_id: outbox.begin(lease, T).verdict for lease in outbox.take("sms", "w1", 10, NO_WAIT)}
    assert verdicts == {"INC-1|CU-1|resolved|sms": "skip"}
    assert outbox.state("INC-1|CU-2|warning|sms")["state"] == "superseded" and outbox.scheduled() == 0
    assert outbox.accepted("INC-1", "resolved") == set()


@pytest.mark.integration
def test_redis_layout(redis_client: redis.Redis) -> None:
    index = RedisCustomerIndex(redis_client, prefix="t")
    index.upsert([customer("CU-1"), customer("CU-2", lat=None, lon=None)])
    stored = redis_client.get("t:cust:CU-1")
    assert isinstance(stored, bytes) and Customer.model_validate_json(stored) == customer("CU-1")
    assert redis_client.smembers("{t:idx}:model:R7000") == {b"CU-1", b"CU-2"}
    assert redis_client.smembers("{t:idx}:model+firmware:5:R7000:2.1.7") == {b"CU-1", b"CU-2"}
    assert redis_client.smembers("{t:idx}:all") == {b"CU-1", b"CU-2"}
    assert redis_client.zrange("{t:idx}:geo", 0, -1) == [b"CU-1"]
    # dropping the location removes it from the GEO set; a firmware upgrade moves the pair
    index.upsert([customer("CU-1", lat=None, lon=None, firmware="2.1.8")])
    assert redis_client.zcard("{t:idx}:geo") == 0
    assert redis_client.smembers("{t:idx}:model+firmware:5:R7000:2.1.7") == {b"CU-2"}
    assert redis_client.smembers("{t:idx}:model+firmware:5:R7000:2.1.8") == {b"CU-1"}


@pytest.mark.integration
def test_loading_over_the_older_hash_layout_rewrites_it(redis_client: redis.Redis) -> None:
    redis_client.hset("old:cust:CU-1", mapping={"doc": customer("CU-1").to_json(), "region": "TX-453"})
    index = RedisCustomerIndex(redis_client, prefix="old")
    index.upsert([customer("CU-1")])  # MGET reads no doc from a hash; SET replaces the hash with the JSON
    assert index.get_many(["CU-1"]) == [customer("CU-1")]
    assert ids(index.segment({"model": "R7000", "firmware": "2.1.7"})) == {"CU-1"}


@pytest.mark.integration
def test_redis_reload_after_adding_a_trait_fills_its_sets(redis_client: redis.Redis) -> None:
    gold = [customer(f"CU-{i}", tier="gold") for i in range(4)]
    RedisCustomerIndex(redis_client, prefix="t").upsert(gold)
    with_tier = RedisCustomerIndex(redis_client, prefix="t", extra_traits=("tier",))
    assert with_tier.count({"tier": "gold"}) == 0  # not indexed when loaded
    with_tier.upsert(gold)  # the same docs again: the sets a customer belongs in are re-added
    assert with_tier.count({"tier": "gold"}) == 4
    assert ids(with_tier.segment({"tier": "gold"})) == {c.id for c in gold}


@pytest.mark.integration
def test_redis_index_with_decoded_responses(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    index = RedisCustomerIndex(client, prefix="d")
    index.upsert([customer("CU-1"), customer("CU-2", model="X")])
    assert ids(index.segment({"model": "X", "region": "TX-453"})) == {"CU-2"}
    assert ids(index.segment({})) == {"CU-1", "CU-2"}
    outbox = RedisOutbox(client, prefix="d")
    assert outbox.enqueue([envelope()], T) == [ID] and outbox.enqueue([envelope()], T) == []
    lease = take_one(outbox)
    begun = outbox.begin(lease, T)
    assert begun.verdict == "send" and begun.envelope == envelope()
    outbox.settle(lease, "sent", T, SendResult(ok=True, provider_id="SM1"))
    assert outbox.accepted("INC-1", "warning") == {"CU-1"} and outbox.state(ID)["state"] == "sent"
    assert [e["state"] for e in outbox.history("INC-1", "CU-1")[ID]] == ["decided", "enqueued", "sending", "sent"]
    assert outbox.funnel("INC-1") == {"decided": 1, "enqueued": 1, "sent": 1}
    client.close()


def test_the_in_process_twins_need_no_redis() -> None:
    """The demo's parts import without redis-py: memory.py and memory_outbox.py share no module with the
    Redis stores."""
    code = ("import forewarn.connectors.memory, forewarn.connectors.memory_outbox, sys; "
            "assert 'redis' not in sys.modules, 'redis was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
