"""Every multi-key command and transaction the Redis stores send stays in one Redis Cluster slot.

No server here: a recording stand-in for the client captures what the stores send, and the
slot of each key is computed as Redis Cluster does (`redis.crc.key_slot`: CRC16 of the hash
tag). A key added to a transaction, or a set of a segment, without the right hash tag fails
here before a cluster refuses it with CROSSSLOT (`tests/integration/test_redis_cluster.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from forewarn.connectors import outbox_lua, redis_keys
from forewarn.connectors.rate_limit import RedisRateLimiter
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.connectors.redis_suppressions import RedisSuppressions
from forewarn.connectors.segments import segment_sets
from forewarn.envelopes import Envelope, Lease
from forewarn.records import INDEXED_ATTRIBUTES, Customer, Message, MessageKey, SendResult
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


SCRIPT_ANSWERS: dict[str, Callable[[list[str], list[Any]], Any]] = {
    outbox_lua.ENQUEUE: lambda keys, args: list(range(int(args[2]))),  # every envelope new
    outbox_lua.BEGIN: lambda keys, args: [b"done"],
}
"""What a script answers, by its source (any other answers 0)."""


class Recorder:
    """Stands in for a redis-py client or pipeline: records each command and its arguments, answers
    with nothing (0 or an empty list; `due` for the outbox's schedule), and keeps the pipelines it
    hands out."""

    def __init__(self, transaction: bool = False) -> None:
        self.transaction = transaction
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.pipelines: list[Recorder] = []
        self.due: list[str] = []

    def pipeline(self, transaction: bool = True) -> Recorder:
        pipe = Recorder(transaction)
        self.pipelines.append(pipe)
        return pipe

    def register_script(self, script: str) -> Callable[..., Any]:
        answer = SCRIPT_ANSWERS.get(script, lambda keys, args: 0)

        def run(keys: list[str], args: list[Any]) -> Any:
            self.calls.append(("evalsha", tuple(keys), {}))
            return answer(keys, args)
        return run

    def execute(self) -> list[int]:
        return [0] * len(self.calls)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def command(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if name == "zrangebyscore":
                return list(self.due)
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


def script_keys(recorder: Recorder) -> list[tuple[str, ...]]:
    """The keys of each Lua script run."""
    return [args for name, args, _ in recorder.calls if name == "evalsha"]


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


T = datetime(2026, 11, 20, 14, tzinfo=UTC)


def _envelopes(incident: str, customers: list[str], kind: Any) -> list[Envelope]:
    """One SMS per customer, every other one deferred, each with its email fallback."""
    found = []
    for i, customer in enumerate(customers):
        key = MessageKey(incident, customer, kind)
        email = Envelope(Message(key, "email", "a@example.com", "body", "subject"), T, T + timedelta(hours=6))
        found.append(Envelope(Message(key, "sms", "+15125550100", "body"), T, T + timedelta(hours=6),
                              T + timedelta(hours=8) if i % 2 else None, fallback=email))
    return found


@given(prefix=prefixes, incident=ids, customers=st.lists(ids.filter(lambda c: "|" not in c), min_size=1,
                                                         max_size=5, unique=True),
       kind=kinds, shards=st.integers(1, 64))
def test_every_outbox_script_runs_on_the_slot_of_its_incidents_shard(prefix: str, incident: str,
                                                                     customers: list[str], kind: Any,
                                                                     shards: int) -> None:
    """Deciding a batch, promoting, beginning, settling, retrying, releasing and a status callback (with
    its email fallback): every script's keys share the tag `{prefix:out:shard}` of the incident's shard."""
    recorder = Recorder()
    outbox = RedisOutbox(cast(Any, recorder), prefix, shards)
    envelopes = _envelopes(incident, customers, kind)
    assert outbox.enqueue(envelopes, T) == [e.id for e in envelopes]
    shard = outbox.shard_of(incident)
    recorder.due = [envelopes[-1].id]
    outbox.promote_due(T + timedelta(hours=8))
    for envelope in envelopes:
        lease = Lease("sms", shard, "1-0", envelope.id)
        outbox.begin(lease, T)
        outbox.settle(lease, "sent", T, SendResult(ok=True, provider_id="SM1"))
        outbox.retry(lease, T, T, SendResult(ok=False, retryable=True, uncertain=True))
        outbox.release(lease, T, T, "paused")
        outbox.record_status(envelope.id, "undelivered", T, "error 30003")
    scripts = script_keys(recorder)
    # one ENQUEUE, then PROMOTE once per shard, and BEGIN, SETTLE, RETRY (twice) and STATUS per message
    assert len(scripts) == 1 + shards + 5 * len(envelopes)
    tag = slot(f"{prefix}:out:{shard}")
    touching = [keys for keys in scripts if any(f"{prefix}:out:{shard}}}" in k for k in keys)]
    assert len(touching) == 1 + 1 + 5 * len(envelopes)
    assert {slot(k) for keys in touching for k in keys} == {tag}
    assert all(len({slot(k) for k in keys}) == 1 for keys in scripts)


def test_the_rate_limit_and_the_suppressions_touch_one_key_each() -> None:
    recorder = Recorder()
    RedisRateLimiter(cast(Any, recorder), "fw").acquire("+15125550199", 1.0, 0.0)
    suppressions = RedisSuppressions(cast(Any, recorder), "fw")
    suppressions.suppress("sms", "+15125550100")
    suppressions.is_suppressed("sms", "+15125550100")
    [(keys)] = script_keys(recorder)
    assert keys == ("fw:rate:+15125550199",)
    sets = {args[0] for name, args, _ in recorder.calls if name in ("sadd", "sismember")}
    assert {slot(k) for k in sets} == {slot(redis_keys.index_tag("fw")[1:-1])}  # beside the index's sets


def test_the_docs_the_contact_logs_and_the_outboxs_incidents_spread_over_the_slots() -> None:
    """What is not tagged together is not: docs and contact logs use many slots, and the outbox's shards
    take the incidents evenly and reach every node of a three-node cluster."""
    docs = {slot(redis_keys.doc_key("fw", f"CU-{i}")) for i in range(1000)}
    contacts = {slot(redis_keys.contacts_key("fw", f"CU-{i}")) for i in range(1000)}
    assert len(docs) > 900 and len(contacts) > 900
    index_slot = slot(redis_keys.set_key("fw", "region", "TX-453"))
    assert sum(s == index_slot for s in docs) <= 2, "the docs must not follow the index's sets onto one slot"

    outbox = RedisOutbox(cast(Any, Recorder()), "fw", shards=16)
    by_shard = Counter(outbox.shard_of(f"INC-20261117T1315Z-no_internet-TX-{i:03d}-{i:04x}") for i in range(1600))
    assert set(by_shard) == set(range(16)) and min(by_shard.values()) > 50, by_shard
    slots = {slot(outbox.queue_key(shard, "sms")) for shard in range(16)}
    assert len(slots) == 16
    thirds = {s * 3 // REDIS_CLUSTER_HASH_SLOTS for s in slots}  # redis-cli --cluster create splits in thirds
    assert thirds == {0, 1, 2}, "16 shards must reach every node of a three-node cluster"
    for shard in range(16):  # each shard's keys share its slot
        keys = [outbox.queue_key(shard, "sms"), outbox.queue_key(shard, "email"), outbox._later(shard),
                outbox._message(shard, "INC-1|CU-1|warning|sms"), outbox._history(shard, "INC-1", "CU-1"),
                outbox._decided(shard, "INC-1", "warning"), outbox._funnel(shard, "INC-1")]
        assert {slot(k) for k in keys} == {slot(f"fw:out:{shard}")}


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
