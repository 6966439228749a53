"""Signed unsubscribe tokens, and the opt-out stores they and inbound STOP/START act on.

Suppressions and the customer index's `record_opt_in` / `ids_by_phone` follow one contract in
process and in Redis (the Redis cases run against a real redis-server).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.memory_suppressions import InMemorySuppressions, normalize_address
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_suppressions import RedisSuppressions, suppressed_key
from forewarn.interfaces import Suppressions
from forewarn.records import Customer
from forewarn.unsubscribe import make_token, read_token, unsubscribe_url

SECRET = b"0123456789abcdef-a-test-secret"
OTHER = b"fedcba9876543210-another-secret"

customer_ids = st.text(min_size=1, max_size=80).filter(lambda s: "\x00" not in s)


@given(customer_ids, st.sampled_from(["sms", "email"]))
def test_a_token_names_its_customer_and_channel(customer_id: str, channel: Any) -> None:
    token = make_token(customer_id, channel, SECRET)
    assert read_token(token, SECRET) == (customer_id, channel)
    assert read_token(token, OTHER) is None
    assert all(c.isalnum() or c in "-_." for c in token), "URL-safe as it stands"


@given(customer_ids, st.data())
def test_any_change_to_a_token_voids_it(customer_id: str, data: st.DataObject) -> None:
    token = make_token(customer_id, "email", SECRET)
    at = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("AQgw-_.x="))
    tampered = token[:at] + replacement + token[at + 1:]
    if tampered != token:
        assert read_token(tampered, SECRET) is None


def test_forged_and_malformed_tokens_are_refused() -> None:
    token = make_token("CU-42", "email", SECRET)
    payload, mac = token.split(".")
    other_payload = make_token("CU-43", "email", SECRET).split(".")[0]
    for bad in ("", ".", token + ".", payload, f"{other_payload}.{mac}", f"{payload}.{mac[:-1]}",
                f"{payload}.{mac}=", token.upper(), "x" * 5000, f"{payload}.{mac}\n", "a.b"):
        assert read_token(bad, SECRET) is None, bad


def test_short_secrets_and_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        make_token("CU-42", "email", b"short")
    with pytest.raises(ValueError, match="channel"):
        make_token("CU-42", "fax", SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="customer id"):
        make_token("", "email", SECRET)
    assert read_token(make_token("CU-42", "email", SECRET), b"short") is None


def test_unsubscribe_url_is_the_web_apps_path_with_the_token() -> None:
    url = unsubscribe_url("https://alerts.example.com/fw/", "CU-42", "email", SECRET)
    prefix = "https://alerts.example.com/fw/unsubscribe?t="
    assert url.startswith(prefix)
    assert read_token(url.removeprefix(prefix), SECRET) == ("CU-42", "email")


# --- suppressions: one contract, in process and in Redis ------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def suppressions(request: pytest.FixtureRequest) -> Suppressions:
    if request.param == "memory":
        return InMemorySuppressions()
    return RedisSuppressions(request.getfixturevalue("redis_client"), prefix="t")


def test_normalised_addresses() -> None:
    assert normalize_address("sms", " +1 (512) 555-0100 ") == "+15125550100"
    assert normalize_address("sms", "55555") == "55555"  # a short code is kept as given
    assert normalize_address("email", " Ana@Example.COM\n") == "ana@example.com"
    with pytest.raises(ValueError):
        normalize_address("fax", "x")  # type: ignore[arg-type]


def test_suppress_allow_and_check(suppressions: Suppressions) -> None:
    assert isinstance(suppressions, Suppressions)
    assert not suppressions.is_suppressed("sms", "+15125550100")
    assert suppressions.suppress("sms", "+1 512-555-0100") is True
    assert suppressions.suppress("sms", "+15125550100") is False, "already suppressed"
    assert suppressions.is_suppressed("sms", "+1 (512) 555 0100")
    assert not suppressions.is_suppressed("email", "+15125550100"), "channels are apart"
    assert suppressions.suppress("email", "Ana@Example.com") is True
    assert suppressions.is_suppressed("email", "ana@example.COM")
    assert suppressions.are_suppressed("sms", ["+15125550100", "+15125550101"]) == [True, False]  # type: ignore[attr-defined]
    assert suppressions.are_suppressed("sms", []) == []  # type: ignore[attr-defined]
    assert suppressions.allow("sms", "+15125550100") is True
    assert suppressions.allow("sms", "+15125550100") is False, "no longer suppressed"
    assert not suppressions.is_suppressed("sms", "+15125550100")
    assert suppressions.is_suppressed("email", "ana@example.com"), "allowing one channel leaves the other"
    assert suppressions.count("email") == 1 and suppressions.count("sms") == 0  # type: ignore[attr-defined]


@pytest.mark.integration
def test_redis_suppressions_are_one_set_per_channel_on_the_index_shard(redis_client: redis.Redis) -> None:
    RedisSuppressions(redis_client, "t").suppress("sms", "+1 512 555 0100")
    assert suppressed_key("t", "sms") == "{t:idx}:opt-out:sms"
    assert redis_client.smembers("{t:idx}:opt-out:sms") == {b"+15125550100"}
    assert RedisSuppressions(redis_client, "other").is_suppressed("sms", "+15125550100") is False


# --- the index: who has this phone, and opting back in --------------------------------------------


def person(cid: str, phone: str | None = "+15125550100", **extra: Any) -> Customer:
    return Customer.model_validate({"id": cid, "phone": phone, "email": f"{cid.lower()}@example.com",
                                    "region": "TX-453", **extra})


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def index(request: pytest.FixtureRequest) -> InMemoryCustomerIndex | RedisCustomerIndex:
    if request.param == "memory":
        return InMemoryCustomerIndex()
    return RedisCustomerIndex(request.getfixturevalue("redis_client"), prefix="t", batch_size=2)


def test_ids_by_phone_follow_upserts(index: InMemoryCustomerIndex | RedisCustomerIndex) -> None:
    index.upsert([person("CU-1"), person("CU-2"), person("CU-3", "+15125550199"), person("CU-4", None)])
    assert index.ids_by_phone("+1 512 555 0100") == ["CU-1", "CU-2"]
    assert index.ids_by_phone("+15125550199") == ["CU-3"]
    index.upsert([person("CU-2", "+15125550199")])  # a new number
    assert index.ids_by_phone("+15125550100") == ["CU-1"]
    assert index.ids_by_phone("+15125550199") == ["CU-2", "CU-3"]
    index.upsert([person("CU-1", None), person("CU-2", "+15125550199")])  # dropped, and the same again
    assert index.ids_by_phone("+15125550100") == []
    assert index.ids_by_phone("+15125550199") == ["CU-2", "CU-3"]
    index.upsert([person("CU-1"), person("CU-1", "+15125550142")])  # the last of a batch wins
    assert index.ids_by_phone("+15125550100") == [] and index.ids_by_phone("+15125550142") == ["CU-1"]
    assert index.ids_by_phone("not a number") == [] and index.ids_by_phone("") == []


def test_opt_out_then_in(index: InMemoryCustomerIndex | RedisCustomerIndex) -> None:
    index.upsert([person("CU-1"), person("CU-2", opt_out={"email": True})])
    assert index.record_opt_in("CU-1", "sms") is False, "not opted out"
    assert index.record_opt_in("CU-9", "sms") is False, "unknown"
    assert index.record_opt_out("CU-1", "sms") is True
    [one] = index.get_many(["CU-1"])
    assert one is not None and one.opted_out("sms") and not one.opted_out("email")
    assert index.record_opt_in("CU-1", "sms") is True
    assert index.record_opt_in("CU-2", "email") is True
    one, two = index.get_many(["CU-1", "CU-2"])
    assert one is not None and two is not None
    assert not one.opted_out("sms") and not two.opted_out("email")
    assert one == person("CU-1"), "nothing else changed"
    assert index.count({"region": "TX-453"}) == 2, "the sets are untouched"


def test_a_mac_spelled_another_way_is_refused() -> None:
    """The last of 43 base64 characters carries 2 spare bits: a MAC must be spelled as it was made."""
    import base64

    token = make_token("CU-42", "email", SECRET)
    payload, mac = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twins = [mac[:-1] + c for c in alphabet if c != mac[-1]
             and base64.urlsafe_b64decode(mac[:-1] + c + "=") == base64.urlsafe_b64decode(mac + "=")]
    assert len(twins) == 3
    assert all(read_token(f"{payload}.{twin}", SECRET) is None for twin in twins)
