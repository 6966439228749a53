"""Every multi-key command and transaction the Redis stores send stays in one Redis Cluster slot.

No server here: a recording stand-in for the client captures what the stores send, and the
slot of each key is computed as Redis Cluster does (`redis.crc.key_slot`: CRC16 of the hash
tag). A key added to a transaction, or a set of a segment, without the right hash tag fails
here before a cluster refuses it with CROSSSLOT (`tests/integration/test_redis_cluster.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from forewarn.connectors import redis_keys
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_ledger import RedisLedger
from forewarn.connectors.segments import segment_sets
from forewarn.records import INDEXED_ATTRIBUTES, Customer, MessageKey, SendResult
from forewarn.settings import RedisSettings

MULTI_KEY_SET_COMMANDS = {"sinter", "sunion", "sdiff", "sintercard", "sinterstore", "sunionstore", "sdiffstore"}
EXTRA = ("tier",)

prefixes = st.text(min_size=1, max_size=12).filter(lambda p: "{" not in p and "}" not in p)
ids = st.text(min_size=1, max_size=24)  # braces and all: ids and values are data, not layout
kinds = st.sampled_from(["warning", "resolved"])
segments = st.dictionaries(st.sampled_from(INDEXED_ATTRIBUTES + EXTRA), ids, min_size=2).filter(
    lambda s: len(segment_sets(s)) >= 2)  # two sets at least: an intersection (model+firmware is one set)


def slot(key: str | bytes) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


class Recorder:
    """Stands in for a redis-py client or pipeline: records each command and its arguments, answers
    with nothing (0 or an empty list), and keeps the pipelines it hands out."""

    def __init__(self, transaction: bool = False) -> None:
        self.transaction = transaction
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.pipelines: list[Recorder] = []

    def pipeline(self, transaction: bool = True) -> Recorder:
        pipe = Recorder(transaction)
        self.pipelines.append(pipe)
        return pipe

    def register_script(self, script: str) -> Callable[..., Any]:
        def run(keys: list[str], args: list[Any]) -> int:
            self.calls.append(("evalsha", tuple(keys), {}))
            return 0
        return run

    def execute(self) -> list[int]:
        return [0] * len(self.calls)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def command(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return [] if name in MULTI_KEY_SET_COMMANDS - {"sintercard"} else 0
        return command


def set_command_keys(recorder: Recorder) -> list[list[str]]:
    """The keys of each multi-key set command sent, straight or in a pipeline."""
    found = []
    for client in (recorder, *recorder.pipelines):
        for name, args, _ in client.calls:
            if name == "sintercard":
                found.append(list(args[1]))
            elif name in MULTI_KEY_SET_COMMANDS:
                found.append(list(args[0]) if isinstance(args[0], list) else list(args))
    return found


def transaction_keys(recorder: Recorder) -> list[list[str]]:
    """The keys of each MULTI/EXEC sent: the first argument of every queued command."""
    return [[args[0] for name, args, _ in pipe.calls if args] for pipe in recorder.pipelines if pipe.transaction]


def index(prefix: str, recorder: Recorder) -> RedisCustomerIndex:
    return RedisCustomerIndex(cast(Any, recorder), prefix, extra_traits=EXTRA)


@given(prefix=prefixes, segment=segments)
def test_a_segments_sets_share_one_slot_with_all_and_geo(prefix: str, segment: dict[str, str]) -> None:
    recorder = Recorder()
    store = index(prefix, recorder)
    store.count(segment)
    list(store.segment(segment))
    list(store.contacts(segment))
    sent = set_command_keys(recorder)
    assert len(sent) == 3 and all(len(keys) >= 2 for keys in sent)  # count, segment and contacts intersect
    tagged = {slot(k) for keys in sent for k in keys} | {slot(redis_keys.all_key(prefix)),
                                                       slot(redis_keys.geo_key(prefix))}
    assert tagged == {slot(redis_keys.index_tag(prefix)[1:-1])}


@given(prefix=prefixes, incident=ids, customer=ids, kind=kinds, ok=st.booleans())
def test_recording_a_send_is_one_slot(prefix: str, incident: str, customer: str, kind: Any, ok: bool) -> None:
    recorder = Recorder()
    ledger = RedisLedger(cast(Any, recorder), prefix, timedelta(hours=1))
    key = MessageKey(incident, customer, kind)
    ledger.claim(key)
    ledger.record(key, "sms", SendResult(ok=ok))
    ledger.release(key)
    (keys,) = transaction_keys(recorder)
    assert len(keys) == (2 if ok else 1)
    every = [*keys, redis_keys.sent_key(prefix, incident, "warning"), redis_keys.sent_key(prefix, incident, "resolved"),
             *(args[0] for _, args, _ in recorder.calls)]  # the claim (SET NX) and the release script
    assert {slot(k) for k in every} == {slot(redis_keys.ledger_key(prefix, key))}


def test_the_docs_and_the_incidents_spread_over_the_slots() -> None:
    """What is not tagged together is not: docs, contact logs and incidents' ledgers use many slots."""
    docs = {slot(redis_keys.doc_key("fw", f"CU-{i}")) for i in range(1000)}
    ledgers = {slot(redis_keys.ledger_key("fw", MessageKey(f"INC-{i}", "CU-1", "warning"))) for i in range(200)}
    contacts = {slot(redis_keys.contacts_key("fw", f"CU-{i}")) for i in range(1000)}
    assert len(docs) > 900 and len(contacts) > 900 and len(ledgers) > 180
    index_slot = slot(redis_keys.set_key("fw", "region", "TX-453"))
    assert sum(s == index_slot for s in docs) <= 2, "the docs must not follow the index's sets onto one slot"


def test_upserting_writes_the_sets_in_one_slot_and_spreads_the_docs() -> None:
    recorder = Recorder()
    customers = [Customer.model_validate({"id": f"CU-{i}", "region": f"R-{i % 7}", "tier": "gold", "lat": 30.0,
                                          "lon": -97.0, "products": [{"model": "M", "firmware": str(i % 3)}]})
                 for i in range(50)]
    index("fw", recorder).upsert(customers)
    (write,) = recorder.pipelines
    assert not write.transaction  # no MULTI: the docs may lie in any slot
    set_keys = [args[0] for name, args, _ in write.calls if name in ("sadd", "srem", "geoadd", "zrem")]
    assert {slot(k) for k in set_keys} == {slot("fw:idx")}
    assert len(set_keys) > len(INDEXED_ATTRIBUTES)


def test_a_cluster_refuses_a_prefix_with_braces_or_a_database() -> None:
    assert RedisSettings(prefix="{fw}").prefix == "{fw}"  # a single Redis does not mind
    with pytest.raises(ValueError, match="brace"):
        RedisSettings(prefix="{fw}", cluster=True)
    with pytest.raises(ValueError, match="only database 0"):
        RedisSettings(url="redis://node-1:6379/2", cluster=True)
    with pytest.raises(ValueError, match="not a unix socket"):
        RedisSettings(url="unix:///run/redis.sock", cluster=True)
    assert RedisSettings(url="redis://node-1:6379/0", cluster=True).cluster
