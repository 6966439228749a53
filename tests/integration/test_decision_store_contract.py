"""One contract for every decision store: `InMemoryDecisionStore` and `RedisDecisionStore` (a Redis, a Redis Cluster).

Each contract test runs against every implementation (the `store` fixture): a decision is kept and
replaced whole, `recent` lists the newest first up to its limit, the open list follows each decision's
`open`, and the audit trail keeps its order. The Redis-only tests below check what only Redis does:
keys expire after `keep`, an expired decision drops out of the lists (and their sets), and old entries
are trimmed from the recent list on save.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.cluster import RedisCluster

from forewarn.connectors.memory_decisions import InMemoryDecisionStore
from forewarn.connectors.redis_decisions import RedisDecisionStore
from forewarn.decisions import AuditEntry, Decision
from forewarn.interfaces import DecisionStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)
PREFIX = "t"


def decision(incident_id: str, minutes: float = 0, **changes: object) -> Decision:
    """A full decision (every optional field set), decided `minutes` after T0."""
    made = Decision(incident_id, "no_internet", "TX-453", "high", ("90x the expected count", "3 regions"),
                    "local", ("370 customers in 1 region",), "broadcast", "pending",
                    T0 + timedelta(minutes=minutes), audience=370, silenced_by="S-1", inhibited_by=None,
                    open=True, labels=(("topic", "no_internet"), ("region", "TX-453"), ("model", "R7000")))
    return replace(made, **changes)  # type: ignore[arg-type]


def ids(decisions: list[Decision]) -> list[str]:
    return [d.incident_id for d in decisions]


def redis_client(request: pytest.FixtureRequest, kind: str) -> redis.Redis | RedisCluster:
    if kind == "cluster":
        return RedisCluster.from_url(request.getfixturevalue("redis_cluster_url"))
    return redis.Redis.from_url(request.getfixturevalue("redis_url"))


@pytest.fixture(params=["memory", "redis", "cluster"])
def store(request: pytest.FixtureRequest) -> Iterator[DecisionStore]:
    if request.param == "memory":
        yield InMemoryDecisionStore()
        return
    client = redis_client(request, request.param)
    try:
        yield RedisDecisionStore(client, prefix=PREFIX)
    finally:
        client.close()


@pytest.fixture(params=["redis", "cluster"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis | RedisCluster]:
    made = redis_client(request, request.param)
    try:
        yield made
    finally:
        made.close()


# -- the contract ---------------------------------------------------------------------------------


def test_a_decision_is_kept_whole_and_replaced_by_the_next_of_its_incident(store: DecisionStore) -> None:
    first = decision("INC-1")
    store.save(first)
    store.save(decision("INC-2", 1, topic="wifi_drops"))
    assert store.load("INC-1") == first
    assert store.load("INC-404") is None

    approved = replace(first.with_approval("approved"), silenced_by=None, severity="critical", decided_at=T0
                       + timedelta(minutes=5))
    store.save(approved)
    assert store.load("INC-1") == approved
    assert ids(store.recent()) == ["INC-1", "INC-2"], "a replaced decision is listed once, at its new time"
    assert store.load("INC-2") == decision("INC-2", 1, topic="wifi_drops")


def test_recent_lists_the_newest_first_up_to_the_limit(store: DecisionStore) -> None:
    for incident_id, minutes in (("INC-b", 3), ("INC-a", 1), ("INC-d", 4), ("INC-c", 2)):
        store.save(decision(incident_id, minutes))
    assert ids(store.recent()) == ["INC-d", "INC-b", "INC-c", "INC-a"]
    assert ids(store.recent(limit=2)) == ["INC-d", "INC-b"]
    assert store.recent(limit=0) == []
    assert store.recent(limit=1)[0] == decision("INC-d", 4)


def test_decisions_decided_at_the_same_moment_list_in_the_same_order_everywhere(store: DecisionStore) -> None:
    for incident_id in ("INC-x", "INC-z", "INC-y"):
        store.save(decision(incident_id))
    assert ids(store.recent()) == ["INC-z", "INC-y", "INC-x"]


def test_the_open_list_follows_each_decisions_open_flag(store: DecisionStore) -> None:
    store.save(decision("INC-1", 1))
    store.save(decision("INC-2", 2))
    store.save(decision("INC-3", 3, open=False))
    assert ids(store.open_decisions()) == ["INC-2", "INC-1"]

    store.save(decision("INC-2", 4, open=False))  # resolved
    assert ids(store.open_decisions()) == ["INC-1"]
    assert ids(store.recent()) == ["INC-2", "INC-3", "INC-1"], "resolved decisions are still listed"

    store.save(decision("INC-3", 5))  # reopened
    assert store.open_decisions() == [decision("INC-3", 5), decision("INC-1", 1)]


def test_the_audit_trail_keeps_each_incidents_entries_in_order(store: DecisionStore) -> None:
    held = AuditEntry("INC-1", "hold", "ana", T0, "waiting for the field team")
    approved = AuditEntry("INC-1", "approve", "bo", T0 + timedelta(minutes=2))
    other = AuditEntry("INC-2", "approve", "ana", T0 + timedelta(minutes=1), "ok")
    for entry in (held, other, approved):
        store.add_audit(entry)
    assert store.audit("INC-1") == [held, approved]
    assert store.audit("INC-2") == [other]
    assert store.audit("INC-404") == []


# -- what only Redis does: expiry and trimming -----------------------------------------------------


def test_every_key_expires_after_keep(client: redis.Redis | RedisCluster) -> None:
    keep = timedelta(days=2)
    store = RedisDecisionStore(client, prefix=PREFIX, keep=keep)
    store.save(decision("INC-1"))
    store.add_audit(AuditEntry("INC-1", "approve", "ana", T0))
    for key in ("t:decision:INC-1", "t:decisions", "t:decisions:open", "t:audit:INC-1"):
        ttl = int(client.ttl(key))  # type: ignore[arg-type]
        assert keep.total_seconds() - 60 < ttl <= keep.total_seconds(), key


def test_a_decision_whose_key_expired_drops_out_of_both_lists_and_their_sets(
        client: redis.Redis | RedisCluster) -> None:
    store = RedisDecisionStore(client, prefix=PREFIX)
    short = RedisDecisionStore(client, prefix=PREFIX, keep=timedelta(seconds=1))
    short.save(decision("INC-gone", 2))  # first: its save trims (and sets the sets' expiry) by its short keep
    store.save(decision("INC-old", 1))
    store.save(decision("INC-new", 3))
    deadline = time.monotonic() + 10
    while client.exists("t:decision:INC-gone") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.exists("t:decision:INC-gone"), "Redis did not expire the key"

    assert ids(store.recent(limit=2)) == ["INC-new", "INC-old"], "an expired id does not use up the limit"
    assert ids(store.open_decisions()) == ["INC-new", "INC-old"]
    assert client.zscore("t:decisions", "INC-gone") is None
    assert not client.sismember("t:decisions:open", "INC-gone")
    assert client.zscore("t:decisions", "INC-old") is not None, "live ids stay"


def test_recent_pages_past_many_expired_ids(client: redis.Redis | RedisCluster) -> None:
    store = RedisDecisionStore(client, prefix=PREFIX)
    store.save(decision("INC-live", 0))
    for n in range(1, 8):
        store.save(decision(f"INC-{n}", n))
        client.delete(f"t:decision:INC-{n}")  # as if it had expired: the sets never hear of it
    assert ids(store.recent(limit=3)) == ["INC-live"]
    assert client.zrange("t:decisions", 0, -1) == [b"INC-live"]


def test_a_save_trims_entries_decided_more_than_keep_before_it(client: redis.Redis | RedisCluster) -> None:
    store = RedisDecisionStore(client, prefix=PREFIX, keep=timedelta(days=30))
    store.save(decision("INC-last-month", 0))
    store.save(decision("INC-edge", 60 * 24))
    store.save(decision("INC-now", 60 * 24 * 31))
    assert ids(store.recent()) == ["INC-now", "INC-edge"]
    assert store.load("INC-last-month") is not None, "its key lives out its own expiry; only the listing drops it"


def test_change_is_atomic_when_the_flow_and_operators_act_at_once(store: DecisionStore) -> None:
    import threading
    from dataclasses import replace

    store.save(decision("INC-race", updates=0))

    def bump() -> None:
        for _ in range(25):
            store.change("INC-race", lambda d: replace(d, updates=d.updates + 1) if d is not None else None)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.load("INC-race")
    assert final is not None and final.updates == 100  # no step lost to another's read-modify-write
    assert store.change("INC-none", lambda d: None) is None and store.load("INC-none") is None
    closed = store.change("INC-race", lambda d: replace(d, open=False) if d is not None else None)
    assert closed is not None and "INC-race" not in [d.incident_id for d in store.open_decisions()]
