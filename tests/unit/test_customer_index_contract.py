"""One contract for every CustomerIndex and Ledger: in-memory and Redis behave the same."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from forewarn.connectors.memory import InMemoryCustomerIndex, InMemoryLedger
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_ledger import RedisLedger
from forewarn.geo import Area
from forewarn.interfaces import CustomerIndex, Ledger
from forewarn.records import Customer, MessageKey, SendResult


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


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


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


LedgerFactory = Callable[[timedelta], Ledger]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def make_ledger(request: pytest.FixtureRequest, clock: Clock) -> LedgerFactory:
    if request.param == "memory":
        return lambda ttl: InMemoryLedger(ttl, clock=clock)
    client = request.getfixturevalue("redis_client")
    return lambda ttl: RedisLedger(client, prefix="t", claim_ttl=ttl, clock=clock)


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


# -- ledger -----------------------------------------------------------------------------------

KEY = MessageKey("INC-1", "CU-1", "warning")


def test_ledger_satisfies_protocol(make_ledger: LedgerFactory) -> None:
    assert isinstance(make_ledger(timedelta(hours=1)), Ledger)


def test_claim_only_once(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(timedelta(hours=1))
    assert ledger.claim(KEY) is True
    assert ledger.claim(KEY) is False
    assert ledger.claim(MessageKey("INC-1", "CU-1", "resolved")) is True


def test_release_allows_reclaim(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(timedelta(hours=1))
    assert ledger.claim(KEY)
    ledger.release(KEY)
    assert ledger.claim(KEY) is True


def test_release_never_removes_a_recorded_send(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(timedelta(hours=1))
    assert ledger.claim(KEY)
    ledger.record(KEY, "sms", SendResult(ok=True, provider_id="SM1"))
    ledger.release(KEY)
    assert ledger.claim(KEY) is False
    outcome = ledger.outcome(KEY)  # type: ignore[attr-defined]
    assert outcome["status"] == "sent" and outcome["channel"] == "sms" and outcome["provider_id"] == "SM1"
    assert outcome["at"] == "2026-11-20T14:00:00Z"


def test_failed_record_is_final_and_not_a_recipient(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(timedelta(hours=1))
    assert ledger.claim(KEY)
    ledger.record(KEY, "email", SendResult(ok=False, reason="invalid_address"))
    assert ledger.claim(KEY) is False
    assert ledger.outcome(KEY)["status"] == "failed"  # type: ignore[attr-defined]
    assert ledger.recipients("INC-1", "warning") == set()


def test_recipients(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(timedelta(hours=1))
    for cid in ("CU-1", "CU-2"):
        key = MessageKey("INC-1", cid, "warning")
        assert ledger.claim(key)
        ledger.record(key, "sms", SendResult(ok=True))
    other = MessageKey("INC-1", "CU-3", "resolved")
    assert ledger.claim(other)
    ledger.record(other, "sms", SendResult(ok=True))
    assert ledger.recipients("INC-1", "warning") == {"CU-1", "CU-2"}
    assert ledger.recipients("INC-1", "resolved") == {"CU-3"}
    assert ledger.recipients("INC-2", "warning") == set()


def test_memory_pending_claim_expires_after_ttl(clock: Clock) -> None:
    ledger = InMemoryLedger(timedelta(minutes=5), clock=clock)
    assert ledger.claim(KEY)
    clock.now += timedelta(minutes=4)
    assert ledger.claim(KEY) is False
    clock.now += timedelta(minutes=2)
    assert ledger.claim(KEY) is True


@pytest.mark.integration
def test_redis_pending_claim_has_ttl_and_record_clears_it(redis_client: redis.Redis) -> None:
    ledger = RedisLedger(redis_client, prefix="t", claim_ttl=timedelta(milliseconds=200))
    key = "{t:ledger:INC-1}:CU-1|warning"  # KEY, tagged by its incident
    assert ledger.claim(KEY)
    assert 0 < redis_client.pttl(key) <= 200  # type: ignore[operator]
    ledger.record(KEY, "sms", SendResult(ok=True))
    assert redis_client.pttl(key) == -1
    other = MessageKey("INC-1", "CU-9", "warning")
    assert ledger.claim(other)
    redis_client.pexpire("{t:ledger:INC-1}:CU-9|warning", 1)
    time.sleep(0.05)
    assert ledger.claim(other) is True  # an expired pending claim ("maybe sent") is claimable again


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
    ledger = RedisLedger(client, prefix="d")
    assert ledger.claim(KEY)
    ledger.release(KEY)
    assert ledger.claim(KEY)
    ledger.record(KEY, "sms", SendResult(ok=True))
    assert ledger.recipients("INC-1", "warning") == {"CU-1"}
    client.close()


def test_the_in_process_twins_need_no_redis() -> None:
    """The demo's parts import without redis-py: memory.py shares no module with the Redis stores."""
    code = "import forewarn.connectors.memory, sys; assert 'redis' not in sys.modules, 'redis was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
