"""One contract for every silence store: `InMemorySilenceStore` and `RedisSilenceStore` (one Redis, a Redis Cluster).

Each test runs against every implementation (the `store` fixture): silences come back by start, are
active between their start and end, end once when expired, are dropped `keep` after they end, and
carry their matchers through the store unchanged. The stores' clock is a fixed time, so nothing waits.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.cluster import RedisCluster

from forewarn.connectors.memory_silences import InMemorySilenceStore
from forewarn.connectors.redis_silences import RedisSilenceStore, silences_key
from forewarn.decisions import Silence
from forewarn.interfaces import SilenceStore
from forewarn.outreach.silencing import silencing

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 14, tzinfo=UTC)
KEEP = timedelta(days=30)
AnyStore = InMemorySilenceStore | RedisSilenceStore


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def silence(sid: str, start: float, end: float, **matchers: str) -> Silence:
    return Silence(sid, tuple(matchers.items()) or (("topic", "wifi_drops"),), at(start), at(end),
                   f"reason of {sid}", "ana", NOW)


@pytest.fixture(params=["memory", "redis", "cluster"])
def store(request: pytest.FixtureRequest) -> Iterator[AnyStore]:
    if request.param == "memory":
        yield InMemorySilenceStore(KEEP, clock=lambda: NOW)
        return
    client: redis.Redis | RedisCluster
    if request.param == "cluster":
        client = RedisCluster.from_url(request.getfixturevalue("redis_cluster_url"))
    else:
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisSilenceStore(client, prefix="t", keep=KEEP, clock=lambda: NOW)
    finally:
        client.close()


def test_every_store_is_a_silence_store(store: AnyStore) -> None:
    typed: SilenceStore = store  # mypy checks the protocol; the contract below checks the behaviour
    assert typed.all() == []


def test_added_silences_come_back_whole_and_by_start(store: AnyStore) -> None:
    late = silence("S-late", 2, 6, topic="wifi_drops", region="TX-453")
    early = silence("S-early", -1, 1, model="R7000", firmware="2.1.7")
    store.add(late)
    store.add(early)
    assert store.all() == [early, late]


def test_equal_starts_list_by_id(store: AnyStore) -> None:
    for sid in ("S-b", "S-c", "S-a"):
        store.add(silence(sid, 0, 1))
    assert [s.id for s in store.all()] == ["S-a", "S-b", "S-c"]


def test_adding_the_same_id_replaces_the_silence(store: AnyStore) -> None:
    store.add(silence("S-1", 0, 1))
    wider = silence("S-1", 0, 8, region="TX-453")
    store.add(wider)
    assert store.all() == [wider]


def test_active_means_started_and_not_yet_ended(store: AnyStore) -> None:
    store.add(silence("S-now", -1, 1))
    store.add(silence("S-later", 2, 3))
    store.add(silence("S-over", -3, -2))
    assert [s.id for s in store.active(NOW)] == ["S-now"]
    assert [s.id for s in store.active(at(2))] == ["S-later"]  # the start is in, the end is out
    assert [s.id for s in store.active(at(1))] == []
    assert [s.id for s in store.active(at(-2.5))] == ["S-over"]


def test_expire_ends_an_active_silence_once(store: AnyStore) -> None:
    store.add(silence("S-1", -1, 4))
    assert store.expire("S-1", at(1)) is True
    (ended,) = store.all()
    assert ended.ends_at == at(1) and ended.starts_at == at(-1) and ended.reason == "reason of S-1"
    assert store.active(at(1)) == [] and [s.id for s in store.active(at(0.5))] == ["S-1"]
    assert store.expire("S-1", at(2)) is False, "an ended silence cannot be ended again"
    assert store.all()[0].ends_at == at(1)


def test_expire_cancels_a_pending_silence(store: AnyStore) -> None:
    store.add(silence("S-1", 2, 4))
    assert store.expire("S-1", NOW) is True
    assert all(store.active(at(h)) == [] for h in (0, 2, 3, 3.9))


def test_expire_refuses_an_unknown_or_already_over_silence(store: AnyStore) -> None:
    store.add(silence("S-over", -3, -1))
    assert store.expire("S-nope", NOW) is False
    assert store.expire("S-over", NOW) is False
    assert store.all()[0].ends_at == at(-1)


def test_silences_ended_more_than_keep_ago_are_dropped(store: AnyStore) -> None:
    store.add(silence("S-gone", -24 * 40, -24 * 31))  # ended 31 days before the store's now
    store.add(silence("S-kept", -24 * 40, -24 * 29))  # ended 29 days before: still listed
    store.add(silence("S-live", -1, 1))
    assert [s.id for s in store.all()] == ["S-kept", "S-live"]
    if isinstance(store, RedisSilenceStore):
        left: list[bytes] = store.client.hkeys(silences_key("t"))  # type: ignore[assignment]
        assert sorted(left) == [b"S-kept", b"S-live"], "dropped from Redis too"
    assert [s.id for s in store.active(at(-24 * 35))] == ["S-kept"]  # the dropped one is gone for good


def test_a_store_refuses_a_silence_it_could_never_apply(store: AnyStore) -> None:
    with pytest.raises(ValueError, match=r"ends \(.*\) before it starts"):
        store.add(silence("S-1", 2, 1))
    with pytest.raises(ValueError, match="no time zone"):
        store.add(Silence("S-2", (("topic", "x"),), datetime(2026, 11, 20), datetime(2026, 11, 21), "r", "ana"))
    with pytest.raises(ValueError, match="no matcher"):
        store.add(Silence("S-3", (), at(0), at(1), "r", "ana"))
    assert store.all() == []


def test_stored_silences_match_incident_labels(store: AnyStore) -> None:
    store.add(silence("S-wide", -1, 8, topic="wifi_drops"))
    store.add(silence("S-narrow", -1, 2, topic="wifi_drops", region="TX-453"))
    store.add(silence("S-other", -1, 8, topic="no_internet"))
    hit = {"topic": "wifi_drops", "region": "TX-453", "model": "R7000"}
    elsewhere = {"topic": "wifi_drops", "region": "TX-001"}

    def muting(labels: dict[str, str]) -> str | None:
        found = silencing(store.active(NOW), labels, NOW)
        return None if found is None else found.id

    assert muting(hit) == "S-narrow"  # both wifi silences match; the narrow one ends first
    assert muting(elsewhere) == "S-wide"
    assert muting({"topic": "billing"}) is None
    assert store.expire("S-narrow", NOW)
    assert muting(hit) == "S-wide"
