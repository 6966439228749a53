"""One contract for every responder outbox: `InMemoryResponderOutbox` and `RedisResponderOutbox` (one Redis, a
Redis Cluster).

Each test runs against every implementation (the `outbox` fixture): an event is decided once; a take leases
what it hands out and never hands it out twice; a lease that runs out makes the event due again; a retry waits
for its time; a settled event is final; and within one incident and target, only the first unsettled event
(by decided_at, then trigger < acknowledge < update < resolve, then seq) is ever handed out, while other
incidents and the other target go on. Time is passed in, so a lease runs out by moving `now`, not by sleeping.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from forewarn.connectors.memory_responder_outbox import InMemoryResponderOutbox
from forewarn.connectors.redis_responder_outbox import RedisResponderOutbox
from forewarn.decisions import ResponderEvent, ResponderStage, ResponderTarget
from forewarn.interfaces import ResponderOutbox

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)
AnyOutbox = InMemoryResponderOutbox | RedisResponderOutbox
KEEP = timedelta(days=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def redis_outbox(request: pytest.FixtureRequest, kind: str) -> Iterator[RedisResponderOutbox]:
    client: redis.Redis | RedisCluster
    if kind == "cluster":
        client = RedisCluster.from_url(request.getfixturevalue("redis_cluster_url"))
    else:
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisResponderOutbox(client, prefix="t", keep=KEEP)
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis", "cluster"])
def outbox(request: pytest.FixtureRequest) -> Iterator[AnyOutbox]:
    if request.param == "memory":
        yield InMemoryResponderOutbox()
        return
    yield from redis_outbox(request, request.param)


@pytest.fixture(params=["redis", "cluster"], name="in_redis")
def in_redis_fixture(request: pytest.FixtureRequest) -> Iterator[RedisResponderOutbox]:
    """The Redis outbox alone, for what only Redis has: keys, their tag and their expiry."""
    yield from redis_outbox(request, request.param)


def event(incident: str = "INC-1", stage: ResponderStage = "trigger", target: ResponderTarget = "pagerduty", *,
          decided: float = 0, seq: int = 0) -> ResponderEvent:
    payload = {"routing_key": "R0UT1NG", "event_action": stage, "dedup_key": incident,
               "payload": {"summary": f"{incident}: no internet in TX-453 / ü ✓", "severity": "error"}}
    return ResponderEvent(incident, stage, target, payload, at(decided), at(decided + 3600), seq)


def ids(events: list[ResponderEvent]) -> list[str]:
    return [e.id for e in events]


# -- deciding --------------------------------------------------------------------------------------


def test_every_outbox_satisfies_the_protocol(outbox: AnyOutbox) -> None:
    assert isinstance(outbox, ResponderOutbox)


def test_an_event_is_decided_once(outbox: AnyOutbox) -> None:
    a, b, c = event("INC-1"), event("INC-2"), event("INC-3")
    assert outbox.enqueue([a, b], T0) == [a.id, b.id]
    assert outbox.enqueue([a, c, c], at(1)) == [c.id], "a replayed decision queues nothing twice"
    assert outbox.pending() == 3
    taken = {e.id: e for e in outbox.take(10, at(1), lease=60)}
    assert taken == {a.id: a, b.id: b, c.id: c}, "each comes back as it was decided, payload and all"
    outbox.settle(a.id, "sent", at(2))
    assert outbox.enqueue([a], at(3)) == [], "nor after it was sent"
    assert outbox.state(a.id)["state"] == "sent"
    assert outbox.take(10, at(3600), lease=60) != [] and outbox.state(a.id)["state"] == "sent"


def test_state_and_pending(outbox: AnyOutbox) -> None:
    assert outbox.state("INC-9|trigger|0|pagerduty") == {}
    assert outbox.pending() == 0
    a, b, c = event("INC-1"), event("INC-2"), event("INC-3")
    outbox.enqueue([a, b, c], T0)
    assert outbox.state(a.id) == {"state": "queued", "attempts": "0", "detail": ""}
    taken = outbox.take(2, T0, lease=60)
    assert len(taken) == 2
    first, second = taken
    assert outbox.state(first.id) == {"state": "leased", "attempts": "1", "detail": ""}
    outbox.retry(second.id, at(30), T0, "503 from PagerDuty")
    assert outbox.state(second.id) == {"state": "retrying", "attempts": "1", "detail": "503 from PagerDuty"}
    assert outbox.pending() == 3, "queued, leased and retrying are all pending"
    outbox.settle(first.id, "sent", at(1), "dedup-INC-1")
    assert outbox.state(first.id) == {"state": "sent", "attempts": "1", "detail": "dedup-INC-1"}
    assert outbox.pending() == 2


# -- leasing ---------------------------------------------------------------------------------------


def test_take_leases_and_never_hands_out_twice(outbox: AnyOutbox) -> None:
    events = [event(f"INC-{i}") for i in range(5)]
    outbox.enqueue(events, T0)
    first = outbox.take(3, T0, lease=60)
    second = outbox.take(10, at(1), lease=60)
    assert len(first) == 3 and len(second) == 2
    assert sorted(ids(first) + ids(second)) == sorted(ids(events))
    assert outbox.take(10, at(59), lease=60) == [], "all leased"
    assert outbox.take(0, at(3600), lease=60) == []


def test_concurrent_takers_each_get_different_events(outbox: AnyOutbox) -> None:
    events = [event(f"INC-{i}", target=target) for i in range(40) for target in ("pagerduty", "slack")]
    outbox.enqueue(events, T0)
    got: list[str] = []
    lock = threading.Lock()

    def taker() -> None:
        while batch := outbox.take(3, T0, lease=60):
            with lock:
                got.extend(ids(batch))

    threads = [threading.Thread(target=taker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert Counter(got) == Counter(ids(events)), "every event once, none twice"


def test_an_expired_lease_makes_the_event_due_again(outbox: AnyOutbox) -> None:
    a = event()
    outbox.enqueue([a], T0)
    assert ids(outbox.take(1, T0, lease=0.15)) == [a.id]
    assert outbox.take(1, at(0.1), lease=0.15) == [], "still leased"
    assert ids(outbox.take(1, at(0.2), lease=0.15)) == [a.id], "the worker died: another takes it"
    assert outbox.state(a.id)["attempts"] == "2"
    assert outbox.state(a.id)["state"] == "leased"


# -- retrying and settling -------------------------------------------------------------------------


def test_a_retry_is_due_at_its_time_not_before(outbox: AnyOutbox) -> None:
    a = event()
    outbox.enqueue([a], T0)
    outbox.take(1, T0, lease=60)
    outbox.retry(a.id, at(30), at(1), "429 Too Many Requests")
    assert outbox.take(10, at(29.9), lease=60) == []
    assert ids(outbox.take(10, at(30), lease=60)) == [a.id]
    assert outbox.state(a.id) == {"state": "leased", "attempts": "2", "detail": "429 Too Many Requests"}


def test_a_settled_event_is_final(outbox: AnyOutbox) -> None:
    a, b = event("INC-1"), event("INC-2")
    outbox.enqueue([a, b], T0)
    outbox.take(10, T0, lease=0.5)
    outbox.settle(a.id, "failed", at(1), "400 Invalid routing key")
    outbox.settle(b.id, "expired", at(1), "deadline passed")
    outbox.retry(a.id, at(2), at(1), "late retry")
    outbox.settle(a.id, "sent", at(1))
    assert outbox.state(a.id) == {"state": "failed", "attempts": "1", "detail": "400 Invalid routing key"}
    assert outbox.state(b.id)["state"] == "expired"
    assert outbox.take(10, at(7200), lease=60) == [], "neither lease coming back nor a retry hands it out"
    assert outbox.pending() == 0
    with pytest.raises(ValueError, match="settles as one of"):
        outbox.settle(a.id, "delivered", at(1))


def test_unknown_events_are_left_alone(outbox: AnyOutbox) -> None:
    outbox.settle("INC-0|trigger|0|slack", "sent", T0)
    outbox.retry("INC-0|trigger|0|slack", at(5), T0)
    assert outbox.state("INC-0|trigger|0|slack") == {} and outbox.pending() == 0


# -- order within an incident and target -----------------------------------------------------------


def test_resolve_waits_for_its_trigger_and_blocks_nothing_else(outbox: AnyOutbox) -> None:
    trigger, ack, resolve = event(stage="trigger"), event(stage="acknowledge"), event(stage="resolve")
    slack = event(stage="trigger", target="slack")
    other = event("INC-2", stage="trigger")
    assert len(outbox.enqueue([resolve, ack, trigger, slack, other], T0)) == 5
    assert sorted(ids(outbox.take(10, T0, lease=3600))) == sorted([trigger.id, slack.id, other.id])
    assert outbox.take(10, at(1), lease=60) == [], "ack and resolve wait while the trigger is out"

    outbox.retry(trigger.id, at(30), at(1), "500")
    assert outbox.take(10, at(29), lease=60) == [], "nor while it waits to be retried"
    assert ids(outbox.take(10, at(30), lease=60)) == [trigger.id]
    outbox.settle(trigger.id, "sent", at(31))
    assert ids(outbox.take(10, at(31), lease=60)) == [ack.id], "the acknowledge next, the resolve still waits"
    outbox.retry(ack.id, at(60), at(32), "429")
    assert outbox.take(10, at(33), lease=60) == [], "the resolve is not taken past a retrying acknowledge"
    assert ids(outbox.take(10, at(60), lease=60)) == [ack.id]
    outbox.settle(ack.id, "sent", at(61))
    assert ids(outbox.take(10, at(61), lease=60)) == [resolve.id]


def test_each_stage_goes_only_after_the_one_before_is_settled(outbox: AnyOutbox) -> None:
    trigger, ack, resolve = event(stage="trigger"), event(stage="acknowledge"), event(stage="resolve")
    outbox.enqueue([resolve, ack, trigger], T0)
    order = []
    now = 0.0
    while outbox.pending():
        taken = outbox.take(10, at(now), lease=60)
        assert len(taken) <= 1, "one event of a line at a time"
        for e in taken:
            order.append(e.stage)
            outbox.settle(e.id, "sent", at(now))
        now += 1
        assert now < 10
    assert order == ["trigger", "acknowledge", "resolve"]


def test_a_lapsed_lease_keeps_its_line_waiting(outbox: AnyOutbox) -> None:
    trigger, resolve = event(stage="trigger"), event(stage="resolve")
    outbox.enqueue([trigger, resolve], T0)
    assert ids(outbox.take(10, T0, lease=1)) == [trigger.id]
    assert ids(outbox.take(10, at(5), lease=1)) == [trigger.id], "the trigger comes back first, the resolve waits"
    outbox.settle(trigger.id, "failed", at(5.5), "400")
    assert ids(outbox.take(10, at(5.5), lease=1)) == [resolve.id], "a final failure lets the line go on"


def test_a_settled_head_lets_the_next_go_at_once(outbox: AnyOutbox) -> None:
    trigger, ack = event(stage="trigger"), event(stage="acknowledge")
    outbox.enqueue([trigger, ack], T0)
    outbox.take(10, T0, lease=600)
    assert outbox.take(10, at(1), lease=600) == []  # the ack was seen blocked behind a long lease
    outbox.settle(trigger.id, "sent", at(2))
    assert ids(outbox.take(10, at(2), lease=600)) == [ack.id], "not only when the trigger's lease would end"


def test_the_order_is_decided_at_then_stage_then_seq(outbox: AnyOutbox) -> None:
    later_update = event(stage="update", decided=5, seq=0)
    early_update = event(stage="update", decided=3, seq=1)
    ack = event(stage="acknowledge", decided=3)
    seq_2, seq_10 = event(stage="update", decided=8, seq=2), event(stage="update", decided=8, seq=10)
    trigger = event(stage="trigger", decided=0)
    outbox.enqueue([seq_10, later_update, seq_2, early_update, ack, trigger], at(10))
    order = []
    now = 10.0
    while batch := outbox.take(10, at(now), lease=60):
        assert len(batch) == 1
        order.append(batch[0].id)
        outbox.settle(batch[0].id, "sent", at(now))
        now += 1
    assert order == ids([trigger, ack, early_update, later_update, seq_2, seq_10])


def test_an_earlier_event_decided_late_still_goes_first(outbox: AnyOutbox) -> None:
    resolve = event(stage="resolve", decided=10)
    outbox.enqueue([resolve], at(10))
    trigger = event(stage="trigger", decided=0)
    outbox.enqueue([trigger], at(11))  # not yet taken: the resolve waits behind it
    assert ids(outbox.take(10, at(11), lease=60)) == [trigger.id]
    assert outbox.take(10, at(12), lease=60) == []


def test_an_event_handed_out_before_an_earlier_one_was_decided_then_waits_for_it(outbox: AnyOutbox) -> None:
    resolve = event(stage="resolve", decided=5)
    outbox.enqueue([resolve], at(5))
    assert ids(outbox.take(10, at(5), lease=5)) == [resolve.id]
    trigger = event(stage="trigger", decided=0)
    outbox.enqueue([trigger], at(6))
    assert ids(outbox.take(10, at(6), lease=60)) == [trigger.id], "what is out cannot be called back"
    assert outbox.take(10, at(11), lease=60) == [], "the resolve's lease lapsed: now it waits for the trigger"
    outbox.settle(trigger.id, "sent", at(12))
    assert ids(outbox.take(10, at(12), lease=60)) == [resolve.id]
    assert outbox.state(resolve.id)["attempts"] == "2"


def test_a_line_blocked_for_long_does_not_starve_others(outbox: AnyOutbox) -> None:
    trigger = event("INC-0", stage="trigger")
    updates = [event("INC-0", stage="update", decided=1, seq=i) for i in range(300)]
    others = [event(f"INC-{i}", stage="trigger", decided=2) for i in range(1, 4)]
    outbox.enqueue([trigger, *updates], T0)
    outbox.take(10, T0, lease=60)
    outbox.retry(trigger.id, at(100), at(1), "503")
    outbox.enqueue(others, at(2))
    assert sorted(ids(outbox.take(2, at(3), lease=60)) + ids(outbox.take(2, at(3), lease=60))) == sorted(
        ids(others)), "the 300 blocked updates are stepped over"


# -- the Redis layout ------------------------------------------------------------------------------


def test_redis_keys_share_one_tag_and_expire(in_redis: RedisResponderOutbox) -> None:
    outbox = in_redis
    outbox.enqueue([event("INC-1"), event("INC-1", target="slack")], T0)
    client = outbox.client
    keys: Any = client.keys(target_nodes=RedisCluster.PRIMARIES) if isinstance(client, RedisCluster) else client.keys()
    names = sorted(k.decode() for k in keys)
    assert names == sorted(["{t:resp}:due", "{t:resp}:open", "{t:resp}:e:INC-1|trigger|0|pagerduty",
                            "{t:resp}:e:INC-1|trigger|0|slack", "{t:resp}:line:INC-1|pagerduty",
                            "{t:resp}:line:INC-1|slack"])
    for name in names:
        ttl: Any = client.pttl(name)
        assert 0 < ttl <= KEEP.total_seconds() * 1000, name


def test_a_head_whose_state_expired_blocks_nothing(in_redis: RedisResponderOutbox) -> None:
    outbox = in_redis
    trigger, resolve = event(stage="trigger"), event(stage="resolve")
    outbox.enqueue([trigger, resolve], T0)
    outbox.client.delete(outbox.event_key(trigger.id))  # as if `keep` had passed for it alone
    assert ids(outbox.take(10, T0, lease=60)) == [resolve.id]
    assert outbox.pending() == 1, "the expired id left the due set"
