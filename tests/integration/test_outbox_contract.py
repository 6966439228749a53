"""One contract for every outbox: `InMemoryOutbox` and `RedisOutbox` (one shard, three shards, a Redis Cluster).

Each test runs against every implementation (the `outbox` fixture), in the spirit of river's check
suites: whatever the outbox, a message key is decided once, a deferred message waits for its time,
a lease is settled once, a crashed worker's lease comes back and says "reconcile", an all-clear
never overtakes its warning, and a provider's status callback moves a message on (an undelivered
SMS falling back to email once). Time is passed in, except the idle time a reclaim looks at (the
stream's own clock), so the few reclaim tests sleep a tenth of a second.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.envelopes import Envelope, Lease
from forewarn.interfaces import DeliveryQueue, Outbox
from forewarn.records import Channel, Message, MessageKey, MessageKind, SendResult
from forewarn.settings import ConfigError

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)
AnyOutbox = InMemoryOutbox | RedisOutbox


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=["memory", "redis", "redis-3-shards", "cluster"])
def outbox(request: pytest.FixtureRequest) -> Iterator[AnyOutbox]:
    if request.param == "memory":
        yield InMemoryOutbox()
        return
    client: redis.Redis | RedisCluster
    if request.param == "cluster":
        client = RedisCluster.from_url(request.getfixturevalue("redis_cluster_url"))
    else:
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisOutbox(client, prefix="t", shards=3 if request.param != "redis" else 1)
    finally:
        client.close()


def envelope(customer: str = "CU-1", kind: MessageKind = "warning", channel: Channel = "sms", *,
             incident: str = "INC-1", not_before: datetime | None = None, urgent: bool = False,
             fallback: bool = False, expires: datetime = T0 + timedelta(hours=6)) -> Envelope:
    to = f"+1512555{zlib.crc32(customer.encode()) % 10_000:04d}" if channel == "sms" \
        else f"{customer.lower()}@example.com"
    key = MessageKey(incident, customer, kind)
    spare = None
    if fallback:
        spare = Envelope(Message(key, "email", f"{customer.lower()}@example.com", f"Email: {kind} for {customer}",
                                 f"{kind} — {incident}"), T0, expires, html="<p>Outage near you: <b>ü</b></p>")
    return Envelope(Message(key, channel, to, f"{kind} for {customer} on {incident} / ü ✓", None), T0, expires,
                    not_before, None, spare, urgent)


def take_all(outbox: DeliveryQueue, channel: Channel, consumer: str = "w1") -> dict[str, Lease]:
    """Every message of `channel` waiting now, by message id (each must come once); never waits
    (`test_take_without_blocking_returns_at_once_when_empty`, first below, checks that it cannot)."""
    leases: dict[str, Lease] = {}
    while batch := outbox.take(channel, consumer, 50, 0):
        for lease in batch:
            assert lease.message_id not in leases, f"{lease.message_id} handed out twice"
            leases[lease.message_id] = lease
    return leases


def take_one(outbox: DeliveryQueue, channel: Channel = "sms", consumer: str = "w1") -> Lease:
    leases = take_all(outbox, channel, consumer)
    assert len(leases) == 1, leases
    return next(iter(leases.values()))


def states(outbox: AnyOutbox, incident: str, customer: str) -> dict[str, list[str]]:
    return {mid: [e["state"] for e in events] for mid, events in outbox.history(incident, customer).items()}


def sent(provider_id: str = "SM1") -> SendResult:
    return SendResult(ok=True, provider_id=provider_id)


def deliver(outbox: AnyOutbox, env: Envelope, now: datetime = T0) -> None:
    """Enqueue `env` and have the provider accept it (state sent)."""
    assert outbox.enqueue([env], now) == [env.id]
    lease = take_all(outbox, env.channel)[env.id]
    assert outbox.begin(lease, now).verdict == "send"
    outbox.settle(lease, "sent", now, sent(f"SM-{env.key.customer_id}"))


# -- deciding --------------------------------------------------------------------------------------


def test_take_without_blocking_returns_at_once_when_empty(outbox: AnyOutbox) -> None:
    answers: list[list[Lease]] = []
    reader = threading.Thread(target=lambda: answers.append(outbox.take("sms", "w1", 10, 0)), daemon=True)
    reader.start()
    reader.join(3.0)
    assert answers == [[]], "take(block=0) on an empty queue must not wait (Redis BLOCK 0 waits for ever)"
    started = time.monotonic()
    assert outbox.take("email", "w1", 10, 0.2) == []
    assert time.monotonic() - started < 2.0


def test_both_outboxes_satisfy_the_protocols(outbox: AnyOutbox) -> None:
    assert isinstance(outbox, Outbox)
    assert isinstance(outbox, DeliveryQueue)


def test_enqueue_is_idempotent_per_message_key_and_returns_only_new_ids(outbox: AnyOutbox) -> None:
    a, b, c = envelope("CU-1"), envelope("CU-2", channel="email"), envelope("CU-3")
    assert sorted(outbox.enqueue([a, b], T0)) == sorted([a.id, b.id])
    # a replayed epoch: the same keys again (one of them on the other channel), plus one new
    again = envelope("CU-1", channel="email")
    assert outbox.enqueue([a, b, again, c], at(5)) == [c.id]
    assert outbox.enqueue([a, b, c], at(9)) == []
    assert outbox.enqueue([], at(9)) == []
    assert sorted(take_all(outbox, "sms")) == sorted([a.id, c.id])
    assert list(take_all(outbox, "email")) == [b.id]
    assert outbox.decided("INC-1", "warning") == {"CU-1", "CU-2", "CU-3"}
    assert outbox.decided("INC-1", "resolved") == set()
    assert outbox.decided("INC-2", "warning") == set()
    assert outbox.funnel("INC-1") == {"decided": 3, "enqueued": 3}
    assert states(outbox, "INC-1", "CU-1") == {a.id: ["decided", "enqueued"]}


def test_a_big_replayed_batch_queues_each_key_once(outbox: AnyOutbox) -> None:
    batch = [envelope(f"CU-{n}", incident=f"INC-{n % 7}") for n in range(1_200)]  # several chunks and shards
    assert len(outbox.enqueue(batch, T0)) == 1_200
    assert outbox.enqueue(batch[::-1], at(1)) == []
    assert sorted(take_all(outbox, "sms")) == sorted(e.id for e in batch)
    assert sum(len(outbox.decided(f"INC-{n}", "warning")) for n in range(7)) == 1_200


def test_a_deferred_message_is_not_taken_until_promoted_at_its_time(outbox: AnyOutbox) -> None:
    morning = at(3_600)
    later, urgent = envelope("CU-1", not_before=morning), envelope("CU-2", not_before=morning, urgent=True)
    past = envelope("CU-3", not_before=at(-60))  # its morning is already here
    assert sorted(outbox.enqueue([later, urgent, past], T0)) == sorted([later.id, urgent.id, past.id])
    assert outbox.funnel("INC-1") == {"decided": 3, "enqueued": 2, "deferred": 1}
    assert outbox.backlog("sms") == 2
    assert sorted(take_all(outbox, "sms")) == sorted([urgent.id, past.id])  # urgent ignores not_before
    assert outbox.promote_due(at(3_599)) == 0
    assert take_all(outbox, "sms") == {}
    assert outbox.promote_due(morning) == 1
    assert outbox.promote_due(morning) == 0
    lease = take_one(outbox)
    assert lease.message_id == later.id
    begun = outbox.begin(lease, at(3_601))
    assert (begun.verdict, begun.envelope, begun.attempts) == ("send", later, 1)
    assert states(outbox, "INC-1", "CU-1")[later.id] == ["decided", "deferred", "sending"]


# -- the lifecycle ---------------------------------------------------------------------------------


def test_take_begin_settle_and_ack(outbox: AnyOutbox) -> None:
    env = envelope(fallback=True)
    outbox.enqueue([env], T0)
    assert outbox.backlog("sms") == 1
    lease = take_one(outbox)
    assert (lease.channel, lease.message_id, lease.deliveries) == ("sms", env.id, 1)
    assert outbox.take("sms", "w2", 10, 0) == []  # taken: no other consumer gets it
    assert outbox.backlog("sms") == 1  # still held until settled
    begun = outbox.begin(lease, at(1))
    assert (begun.verdict, begun.envelope, begun.attempts, begun.first_attempt_at) == ("send", env, 1, at(1))
    outbox.settle(lease, "sent", at(2), sent("SM-abc"))
    assert outbox.backlog("sms") == 0
    assert outbox.state(env.id)["state"] == "sent"
    assert outbox.state(env.id)["provider_id"] == "SM-abc"
    assert outbox.reclaim("sms", "w2", 0, 10) == []  # acknowledged: nothing left to reclaim
    assert outbox.begin(lease, at(3)).verdict == "done"  # a duplicate of a settled entry: acknowledge only


def test_settling_twice_is_harmless(outbox: AnyOutbox) -> None:
    env = envelope()
    outbox.enqueue([env], T0)
    lease = take_one(outbox)
    outbox.begin(lease, at(1))
    outbox.settle(lease, "sent", at(2), sent("SM-1"))
    outbox.settle(lease, "sent", at(3), sent("SM-1"))
    outbox.settle(lease, "failed", at(4), SendResult(ok=False, reason="late word"))  # a slow second worker
    assert outbox.state(env.id)["state"] == "sent"
    assert outbox.funnel("INC-1") == {"decided": 1, "enqueued": 1, "sent": 1}
    assert states(outbox, "INC-1", "CU-1") == {env.id: ["decided", "enqueued", "sending", "sent"]}
    assert outbox.accepted("INC-1", "warning") == {"CU-1"}


def test_funnel_history_accepted_and_decided(outbox: AnyOutbox) -> None:
    ok, bad, gone = envelope("CU-1"), envelope("CU-2"), envelope("CU-3", expires=at(10))
    outbox.enqueue([ok, bad, gone], T0)
    leases = take_all(outbox, "sms")
    for n, env in enumerate((ok, bad, gone)):
        outbox.begin(leases[env.id], at(1 + n))
    outbox.settle(leases[ok.id], "sent", at(5), sent())
    outbox.settle(leases[bad.id], "failed", at(6), SendResult(ok=False, reason="21211 invalid number"))
    outbox.settle(leases[gone.id], "expired", at(7), SendResult(ok=False, reason="deadline"))
    history = outbox.history("INC-1", "CU-1")[ok.id]
    assert [e["state"] for e in history] == ["decided", "enqueued", "sending", "sent"]
    assert [e["at"] for e in history] == [T0, T0, at(1), at(5)]
    assert history[-1]["at"] >= history[0]["at"]
    assert outbox.history("INC-1", "CU-2")[bad.id][-1]["state"] == "failed"
    assert outbox.history("INC-1", "CU-2")[bad.id][-1]["detail"] == "21211 invalid number"
    assert outbox.history("INC-1", "CU-9") == {}
    assert outbox.funnel("INC-1") == {"decided": 3, "enqueued": 3, "sent": 1, "failed": 1, "expired": 1}
    assert outbox.accepted("INC-1", "warning") == {"CU-1"}
    assert outbox.decided("INC-1", "warning") == {"CU-1", "CU-2", "CU-3"}
    assert outbox.funnel("INC-404") == {}


def test_a_retry_is_scheduled_counts_attempts_and_an_uncertain_one_reconciles(outbox: AnyOutbox) -> None:
    env = envelope()
    outbox.enqueue([env], T0)
    lease = take_one(outbox)
    assert outbox.begin(lease, at(1)).attempts == 1
    outbox.retry(lease, at(11), at(1), SendResult(ok=False, retryable=True, reason="429 too many"))
    assert outbox.state(env.id)["state"] == "retrying"
    assert outbox.backlog("sms") == 0
    assert outbox.scheduled() == 1
    assert take_all(outbox, "sms") == {}
    assert outbox.promote_due(at(10)) == 0
    assert outbox.promote_due(at(11)) == 1
    lease = take_one(outbox)
    begun = outbox.begin(lease, at(12))
    assert (begun.verdict, begun.attempts, begun.first_attempt_at) == ("send", 2, at(1))
    # a timeout after the request went out: the provider may have it
    outbox.retry(lease, at(20), at(12), SendResult(ok=False, retryable=True, uncertain=True, reason="timeout"))
    outbox.promote_due(at(20))
    lease = take_one(outbox)
    begun = outbox.begin(lease, at(21))
    assert (begun.verdict, begun.attempts, begun.first_attempt_at) == ("reconcile", 3, at(1))
    # a later plain failure does not forget that an earlier try may have gone out
    outbox.retry(lease, at(30), at(21), SendResult(ok=False, retryable=True, reason="500"))
    outbox.promote_due(at(30))
    lease = take_one(outbox)
    assert outbox.begin(lease, at(31)).verdict == "reconcile"
    outbox.settle(lease, "sent", at(32), sent())
    assert [s for s in states(outbox, "INC-1", "CU-1")[env.id] if s != "sending"] == \
        ["decided", "enqueued", "retrying", "retrying", "retrying", "sent"]
    assert outbox.funnel("INC-1") == {"decided": 1, "enqueued": 1, "sent": 1}


def test_release_puts_a_message_back_untried_and_keeps_its_attempts(outbox: AnyOutbox) -> None:
    env = envelope()
    outbox.enqueue([env], T0)
    lease = take_one(outbox)
    outbox.release(lease, at(5), at(1), "sms paused: breaker open")  # before begin: nothing was tried
    assert outbox.state(env.id)["attempts"] == "0"
    assert states(outbox, "INC-1", "CU-1")[env.id][-1] == "released"
    assert outbox.promote_due(at(5)) == 1
    lease = take_one(outbox)
    begun = outbox.begin(lease, at(6))
    assert (begun.verdict, begun.attempts) == ("send", 1)
    outbox.release(lease, at(7), at(6), "credentials refused")  # after begin: the attempt stays counted
    assert outbox.state(env.id)["attempts"] == "1"
    outbox.promote_due(at(7))
    lease = take_one(outbox)
    begun = outbox.begin(lease, at(8))
    # put back from 'sending': it reconciles first rather than risk a second copy
    assert (begun.verdict, begun.attempts, begun.first_attempt_at) == ("reconcile", 2, at(6))


def test_an_unsettled_lease_is_reclaimed_after_idle_and_then_reconciles(outbox: AnyOutbox) -> None:
    crashed, untouched = envelope("CU-1"), envelope("CU-2")
    outbox.enqueue([crashed, untouched], T0)
    leases = take_all(outbox, "sms", consumer="dead-worker")
    outbox.begin(leases[crashed.id], at(1))  # it died while sending this one; the other it never began
    assert outbox.reclaim("sms", "w2", 30.0, 10) == []  # not idle long enough
    time.sleep(0.15)
    reclaimed = {lease.message_id: lease for lease in outbox.reclaim("sms", "w2", 0.1, 10)}
    assert sorted(reclaimed) == sorted([crashed.id, untouched.id])
    assert all(lease.deliveries > 1 for lease in reclaimed.values())
    assert outbox.reclaim("sms", "w3", 0.1, 10) == []  # just claimed: idle again from now
    begun = outbox.begin(reclaimed[crashed.id], at(100))
    assert (begun.verdict, begun.attempts, begun.first_attempt_at) == ("reconcile", 2, at(1))
    assert outbox.begin(reclaimed[untouched.id], at(100)).verdict == "send"
    for lease in reclaimed.values():
        outbox.settle(lease, "sent", at(101), sent())
    time.sleep(0.15)
    assert outbox.reclaim("sms", "w3", 0.1, 10) == []
    assert outbox.backlog("sms") == 0
    assert outbox.funnel("INC-1")["sent"] == 2


def test_reclaim_hands_out_no_more_than_asked(outbox: AnyOutbox) -> None:
    outbox.enqueue([envelope(f"CU-{n}") for n in range(30)], T0)
    assert len(take_all(outbox, "sms", consumer="dead")) == 30
    time.sleep(0.12)
    first = outbox.reclaim("sms", "w2", 0.1, 12)
    assert len(first) == 12
    rest = outbox.reclaim("sms", "w2", 0.1, 100)
    assert len(rest) == 18
    assert len({lease.message_id for lease in first + rest}) == 30


def test_concurrent_consumers_each_get_a_message_once(outbox: AnyOutbox) -> None:
    batch = [envelope(f"CU-{n}", incident=f"INC-{n % 5}") for n in range(400)]
    outbox.enqueue(batch, T0)
    got: Counter[str] = Counter()
    lock = threading.Lock()

    def consume(name: str) -> None:
        while leases := outbox.take("sms", name, 7, 0.05):
            for lease in leases:
                if outbox.begin(lease, at(1)).verdict == "send":
                    outbox.settle(lease, "sent", at(2), sent())
                    with lock:
                        got[lease.message_id] += 1

    threads = [threading.Thread(target=consume, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(got) == sorted(e.id for e in batch)
    assert set(got.values()) == {1}
    assert outbox.backlog("sms") == 0
    assert sum(outbox.funnel(f"INC-{n}")["sent"] for n in range(5)) == 400


# -- all-clears -------------------------------------------------------------------------------------


def test_an_all_clear_after_a_sent_warning_is_sent(outbox: AnyOutbox) -> None:
    deliver(outbox, envelope(kind="warning"))
    clear = envelope(kind="resolved")
    outbox.enqueue([clear], at(60))
    begun = outbox.begin(take_one(outbox), at(61))
    assert (begun.verdict, begun.envelope) == ("send", clear)


def test_an_all_clear_after_a_delivered_or_undelivered_warning_is_sent(outbox: AnyOutbox) -> None:
    for customer, status in (("CU-1", "delivered"), ("CU-2", "undelivered")):
        warning = envelope(customer)
        deliver(outbox, warning)
        assert outbox.record_status(warning.id, status, at(30))
        outbox.enqueue([envelope(customer, kind="resolved")], at(60))
        assert outbox.begin(take_one(outbox), at(61)).verdict == "send"


def test_an_all_clear_while_its_warning_waits_for_the_customers_morning_supersedes_both(outbox: AnyOutbox) -> None:
    """Decided while the warning waits for the customer's morning: fixed before it could go, so neither goes;
    judged when the all-clear is decided (a night's deferred all-clear would otherwise wake up with it)."""
    warning = envelope(not_before=at(3_600))
    clear = envelope(kind="resolved", channel="email")
    outbox.enqueue([warning], T0)
    assert outbox.enqueue([clear], at(10)) == [clear.id]  # decided (once), and settled at once
    assert outbox.state(warning.id)["state"] == "superseded"
    assert outbox.state(clear.id)["state"] == "superseded"
    assert outbox.take("email", "w1", 10, 0) == []
    outbox.promote_due(at(7_200))
    assert outbox.take("sms", "w1", 10, 0) == []
    assert outbox.backlog("sms") == outbox.backlog("email") == 0
    assert outbox.scheduled() == 0
    assert outbox.funnel("INC-1") == {"decided": 2, "deferred": 1, "superseded": 2}
    assert states(outbox, "INC-1", "CU-1")[warning.id][-1] == "superseded"
    assert outbox.enqueue([clear], at(11)) == []


@pytest.mark.parametrize("how", ["enqueued", "retrying"])
def test_an_all_clear_waits_for_a_warning_still_queued_or_retrying(outbox: AnyOutbox, how: str) -> None:
    """A queued warning goes out soon (it may be in a sibling thread's hands already): the all-clear follows it,
    so a replay that decides faster than workers send gets the same messages as a live run."""
    warning, clear = envelope(), envelope(kind="resolved", channel="email")
    outbox.enqueue([warning], T0)
    if how == "retrying":
        lease = take_one(outbox)
        outbox.begin(lease, at(1))
        outbox.retry(lease, at(100), at(1), SendResult(ok=False, retryable=True, reason="429"))
    outbox.enqueue([clear], at(10))
    clear_lease = take_one(outbox, "email")
    assert outbox.begin(clear_lease, at(11)).verdict == "wait"
    assert outbox.state(warning.id)["state"] == how
    outbox.release(clear_lease, at(200), at(11), "waiting for the warning")
    outbox.promote_due(at(100))
    deliver_lease = take_one(outbox)
    assert outbox.begin(deliver_lease, at(101)).verdict == "send"
    outbox.settle(deliver_lease, "sent", at(102), sent())
    outbox.promote_due(at(200))
    assert outbox.begin(take_one(outbox, "email"), at(201)).verdict == "send"


def test_an_all_clear_waits_while_its_warning_is_being_sent(outbox: AnyOutbox) -> None:
    warning, clear = envelope(), envelope(kind="resolved", channel="email")
    outbox.enqueue([warning], T0)
    lease = take_one(outbox)
    outbox.begin(lease, at(1))  # on its way to the provider right now
    outbox.enqueue([clear], at(2))
    clear_lease = take_one(outbox, "email")
    assert outbox.begin(clear_lease, at(3)).verdict == "wait"
    assert outbox.state(clear.id)["state"] == "enqueued"
    outbox.release(clear_lease, at(5), at(3), "waiting for the warning being sent")
    outbox.settle(lease, "sent", at(4), sent())
    outbox.promote_due(at(5))
    begun = outbox.begin(take_one(outbox, "email"), at(6))
    assert (begun.verdict, begun.envelope, begun.attempts) == ("send", clear, 1)


def test_an_all_clear_waits_for_a_warning_that_may_have_reached_the_provider(outbox: AnyOutbox) -> None:
    warning, clear = envelope(), envelope(kind="resolved", channel="email")
    outbox.enqueue([warning], T0)
    lease = take_one(outbox)
    outbox.begin(lease, at(1))
    outbox.retry(lease, at(100), at(2), SendResult(ok=False, retryable=True, uncertain=True, reason="timeout"))
    outbox.enqueue([clear], at(3))
    clear_lease = take_one(outbox, "email")
    assert outbox.begin(clear_lease, at(4)).verdict == "wait"
    assert outbox.state(warning.id)["state"] == "retrying"
    outbox.release(clear_lease, at(100), at(4), "waiting for the warning")
    assert outbox.promote_due(at(100)) == 2  # both queued again: the warning still may have gone
    leases = take_all(outbox, "email")
    assert outbox.begin(leases[clear.id], at(101)).verdict == "wait"
    assert outbox.state(warning.id)["state"] == "enqueued"


@pytest.mark.parametrize("fate", ["failed", "expired", "opted_out", "none"])
def test_an_all_clear_for_a_warning_that_never_reached_the_customer_is_skipped(outbox: AnyOutbox, fate: str) -> None:
    warning, clear = envelope(), envelope(kind="resolved")
    if fate != "none":
        outbox.enqueue([warning], T0)
        lease = take_one(outbox)
        outbox.begin(lease, at(1))
        outbox.settle(lease, fate, at(2), SendResult(ok=False, reason=fate))
    outbox.enqueue([clear], at(10))
    begun = outbox.begin(take_one(outbox), at(11))
    assert (begun.verdict, begun.envelope) == ("skip", None)
    assert outbox.state(clear.id)["state"] == "skipped"
    assert outbox.funnel("INC-1")["skipped"] == 1
    assert outbox.backlog("sms") == 0


# -- the provider's later word ---------------------------------------------------------------------


def test_record_status_moves_a_sent_message_on(outbox: AnyOutbox) -> None:
    ok, lost, dead = envelope("CU-1"), envelope("CU-2"), envelope("CU-3")
    for env in (ok, lost, dead):
        deliver(outbox, env)
    assert outbox.record_status(ok.id, "queued", at(10))  # progress: known, nothing changes
    assert outbox.record_status(ok.id, "sent", at(10))
    assert outbox.state(ok.id)["state"] == "sent"
    assert outbox.record_status(ok.id, "delivered", at(11))
    assert outbox.record_status(ok.id, "delivered", at(12))  # twice: once in the history
    assert outbox.record_status(ok.id, "undelivered", at(13))  # delivered is the last word
    assert outbox.state(ok.id)["state"] == "delivered"
    assert outbox.record_status(lost.id, "undelivered", at(11), detail="error 30003")
    assert outbox.record_status(dead.id, "failed", at(11), detail="error 30008")
    assert outbox.state(lost.id)["state"] == "undelivered"
    assert outbox.state(dead.id)["state"] == "failed"
    assert states(outbox, "INC-1", "CU-1")[ok.id] == ["decided", "enqueued", "sending", "sent", "delivered"]
    assert outbox.history("INC-1", "CU-2")[lost.id][-1]["detail"] == "error 30003"
    assert outbox.funnel("INC-1") == {"decided": 3, "enqueued": 3, "sent": 3, "delivered": 1, "undelivered": 1,
                                      "failed": 1}
    assert outbox.backlog("email") == 0  # no fallback without one


def test_record_status_of_an_unknown_message_is_false(outbox: AnyOutbox) -> None:
    assert outbox.record_status("INC-1|CU-404|warning|sms", "delivered", T0) is False
    assert outbox.record_status("INC-1|CU-404|warning|sms", "sent", T0) is False
    with pytest.raises(ValueError):
        outbox.record_status("not a message id", "delivered", T0)
    assert outbox.funnel("INC-1") == {}


@pytest.mark.parametrize("status", ["undelivered", "failed"])
def test_an_undelivered_sms_falls_back_to_email_exactly_once(outbox: AnyOutbox, status: str) -> None:
    sms = envelope(fallback=True)
    assert sms.fallback is not None
    deliver(outbox, sms)
    assert outbox.record_status(sms.id, status, at(30), detail="error 30003")
    assert outbox.record_status(sms.id, status, at(31), detail="error 30003")  # Twilio calls back again
    assert outbox.record_status(sms.id, "failed" if status == "undelivered" else "undelivered", at(32))
    leases = take_all(outbox, "email")
    assert list(leases) == [sms.fallback.id] == ["INC-1|CU-1|warning|email"]
    begun = outbox.begin(leases[sms.fallback.id], at(40))
    assert (begun.verdict, begun.envelope) == ("send", sms.fallback)  # the very envelope decided with the SMS
    outbox.settle(leases[sms.fallback.id], "sent", at(41), sent("email-1"))
    assert outbox.funnel("INC-1")["fallback"] == 1
    assert outbox.funnel("INC-1")["sent"] == 2
    history = states(outbox, "INC-1", "CU-1")
    assert history[sms.fallback.id] == ["fallback", "sending", "sent"]
    assert history[sms.id][-1] == status
    assert outbox.record_status(sms.id, status, at(50))
    assert take_all(outbox, "email") == {}


@pytest.mark.parametrize("state", ["failed", "expired"])
def test_an_sms_that_failed_or_expired_at_the_worker_falls_back_to_email_once(outbox: AnyOutbox, state: str) -> None:
    sms = envelope(fallback=True)
    assert sms.fallback is not None
    outbox.enqueue([sms], T0)
    lease = take_one(outbox)
    outbox.begin(lease, at(1))
    outbox.settle(lease, state, at(2), SendResult(ok=False, reason="21211 invalid 'To' number"))
    outbox.settle(lease, state, at(3), SendResult(ok=False, reason="21211 invalid 'To' number"))  # said twice
    assert outbox.record_status(sms.id, "failed", at(4))  # and a late callback: still one fallback
    assert list(take_all(outbox, "email")) == [sms.fallback.id]
    assert outbox.funnel("INC-1")["fallback"] == 1
    assert states(outbox, "INC-1", "CU-1")[sms.fallback.id] == ["fallback"]


def test_an_sms_refused_because_the_recipient_opted_out_does_not_fall_back(outbox: AnyOutbox) -> None:
    sms = envelope(fallback=True)
    outbox.enqueue([sms], T0)
    lease = take_one(outbox)
    outbox.begin(lease, at(1))
    outbox.settle(lease, "failed", at(2), SendResult(ok=False, opted_out=True, reason="21610 unsubscribed"))
    assert take_all(outbox, "email") == {}
    assert "fallback" not in outbox.funnel("INC-1")


def test_an_all_clear_waits_for_the_email_that_replaced_an_undelivered_warning(outbox: AnyOutbox) -> None:
    sms = envelope(fallback=True)
    assert sms.fallback is not None
    deliver(outbox, sms)
    assert outbox.record_status(sms.id, "undelivered", at(30))
    outbox.enqueue([envelope(kind="resolved")], at(60))
    clear = take_one(outbox)
    assert outbox.begin(clear, at(61)).verdict == "wait"  # the fallback email is still queued
    outbox.release(clear, at(62), at(61), "waiting for the warning being sent", quiet=True)
    email = take_one(outbox, "email")
    outbox.begin(email, at(63))
    outbox.settle(email, "sent", at(64), sent("email-1"))
    outbox.promote_due(at(65))
    assert outbox.begin(take_one(outbox), at(66)).verdict == "send"
    assert "released" not in states(outbox, "INC-1", "CU-1")["INC-1|CU-1|resolved|sms"]  # quiet: no history


def test_touch_keeps_a_slow_send_from_being_reclaimed(outbox: AnyOutbox) -> None:
    outbox.enqueue([envelope("CU-1"), envelope("CU-2")], T0)
    leases = take_all(outbox, "sms", consumer="slow")
    slow = leases[envelope("CU-1").id]
    outbox.begin(slow, at(1))
    time.sleep(0.15)
    outbox.touch([slow], "slow")
    reclaimed = outbox.reclaim("sms", "other", 0.1, 10)
    assert [lease.message_id for lease in reclaimed] == [envelope("CU-2").id]  # only the untouched one
    outbox.settle(slow, "sent", at(2), sent())
    outbox.touch([slow], "slow")  # settled meanwhile: left alone
    time.sleep(0.15)
    assert [lease.message_id for lease in outbox.reclaim("sms", "third", 0.1, 10)] == [envelope("CU-2").id]


def test_scheduled_before_counts_only_what_is_due_by_then(outbox: AnyOutbox) -> None:
    outbox.enqueue([envelope("CU-1", not_before=at(60)), envelope("CU-2", not_before=at(8 * 3600))], T0)
    assert (outbox.scheduled(), outbox.scheduled(before=at(120)), outbox.scheduled(before=at(30))) == (2, 1, 0)


def test_a_delivered_sms_and_an_email_never_fall_back(outbox: AnyOutbox) -> None:
    sms, email = envelope("CU-1", fallback=True), envelope("CU-2", channel="email")
    deliver(outbox, sms)
    deliver(outbox, email)
    assert outbox.record_status(sms.id, "delivered", at(30))
    assert outbox.record_status(email.id, "failed", at(30))
    assert take_all(outbox, "email") == {}
    assert "fallback" not in outbox.funnel("INC-1")


def test_a_status_callback_before_the_worker_recorded_the_send_is_kept(outbox: AnyOutbox) -> None:
    env = envelope()
    outbox.enqueue([env], T0)
    lease = take_one(outbox)
    outbox.begin(lease, at(1))
    assert outbox.record_status(env.id, "delivered", at(2))  # the callback overtook the worker
    outbox.settle(lease, "sent", at(3), sent())
    assert outbox.state(env.id)["state"] == "delivered"
    assert outbox.accepted("INC-1", "warning") == {"CU-1"}
    assert outbox.backlog("sms") == 0


# -- counts ----------------------------------------------------------------------------------------


def test_backlog_counts_queued_and_held_messages_not_deferred_ones(outbox: AnyOutbox) -> None:
    outbox.enqueue([envelope("CU-1"), envelope("CU-2"), envelope("CU-3", not_before=at(600)),
                    envelope("CU-4", channel="email"), envelope("CU-5", channel="email", incident="INC-2")], T0)
    assert (outbox.backlog("sms"), outbox.backlog("email"), outbox.scheduled()) == (2, 2, 1)
    leases = take_all(outbox, "sms")
    assert outbox.backlog("sms") == 2
    first, second = leases.values()
    outbox.begin(first, at(1))
    outbox.settle(first, "sent", at(2), sent())
    assert outbox.backlog("sms") == 1
    outbox.begin(second, at(1))
    outbox.retry(second, at(60), at(2), SendResult(ok=False, retryable=True, reason="503"))
    assert (outbox.backlog("sms"), outbox.scheduled()) == (0, 2)
    assert outbox.promote_due(at(600)) == 2
    assert (outbox.backlog("sms"), outbox.scheduled()) == (2, 0)


def test_state_reports_the_stored_fields(outbox: AnyOutbox) -> None:
    env = envelope()
    outbox.enqueue([env], T0)
    state: dict[str, Any] = outbox.state(env.id)
    assert (state["state"], state["attempts"], state["channel"]) == ("enqueued", "0", "sms")
    assert outbox.state("INC-1|CU-404|warning|sms") == {}


# -- Redis only -------------------------------------------------------------------------------------


def test_a_redis_outbox_refuses_another_shard_count_than_the_one_it_was_made_with(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    RedisOutbox(client, prefix="t", shards=2).enqueue([envelope("CU-1")], T0)
    RedisOutbox(client, prefix="t", shards=2).enqueue([envelope("CU-2")], T0)  # the same count: fine
    with pytest.raises(ConfigError, match=r"delivery.shards is 4 but .* made with 2: set delivery.shards: 2"):
        RedisOutbox(client, prefix="t", shards=4).enqueue([envelope("CU-1")], T0)
    RedisOutbox(client, prefix="other", shards=4).enqueue([envelope("CU-1")], T0)  # another prefix: its own
    client.close()


def test_a_redis_outbox_makes_a_lost_stream_group_again(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    outbox = RedisOutbox(client, prefix="t")
    outbox.enqueue([envelope("CU-1")], T0)
    client.delete(outbox.queue_key(0, "sms"), outbox.queue_key(0, "email"))  # Redis restarted empty, say
    assert outbox.take("sms", "w1", 10, 0) == []
    assert outbox.reclaim("email", "w1", 0, 10) == []
    outbox.enqueue([envelope("CU-2")], T0)
    assert [lease.message_id for lease in outbox.take("sms", "w1", 10, 0)] == ["INC-1|CU-2|warning|sms"]
    client.close()


def test_an_update_still_waiting_when_the_all_clear_is_decided_is_superseded(outbox: AnyOutbox) -> None:
    deliver(outbox, envelope())
    update = envelope(kind="update-1", not_before=at(3_600))  # waits for the customer's morning
    outbox.enqueue([update], at(10))
    outbox.enqueue([envelope(kind="resolved")], at(20))
    assert outbox.promote_due(at(3_600)) == 1
    leases = take_all(outbox, "sms")
    assert outbox.begin(leases[update.id], at(3_601)).verdict == "supersede"
    assert outbox.state(update.id)["state"] == "superseded"
    assert outbox.begin(leases[envelope(kind="resolved").id], at(3_602)).verdict == "send"  # the all-clear goes


# -- overlapping incidents: one warning carries another's -------------------------------------------


def test_waiting_names_the_customers_whose_warning_waits_for_their_morning(outbox: AnyOutbox) -> None:
    queued, deferred, going = envelope("CU-1"), envelope("CU-2", not_before=at(3_600)), envelope("CU-3")
    outbox.enqueue([queued, deferred], T0)
    deliver(outbox, going)
    assert outbox.waiting("INC-1", ["CU-1", "CU-2", "CU-3", "CU-9"]) == {"CU-2"}  # CU-1's goes at once
    assert outbox.waiting("INC-2", ["CU-2"]) == set()


def test_warning_fate_says_whether_the_customer_was_told(outbox: AnyOutbox) -> None:
    deliver(outbox, envelope("CU-3"))
    outbox.enqueue([envelope("CU-1"), envelope("CU-2", fallback=True)], T0)
    assert outbox.warning_fate("INC-1", "CU-1") == "pending"
    assert outbox.warning_fate("INC-1", "CU-3") == "told"
    assert outbox.warning_fate("INC-1", "CU-9") is None
    leases = take_all(outbox, "sms")
    lease = leases[envelope("CU-2").id]
    outbox.begin(lease, at(1))
    outbox.settle(lease, "failed", at(2), SendResult(ok=False, reason="21211"))
    assert outbox.warning_fate("INC-1", "CU-2") == "pending"  # its email fallback may still go
    lease = leases[envelope("CU-1").id]
    outbox.begin(lease, at(3))
    outbox.settle(lease, "withheld", at(3), SendResult(ok=False, reason="held"))
    assert outbox.warning_fate("INC-1", "CU-1") == "not told"


def test_cover_records_who_carries_each_customers_warning(outbox: AnyOutbox) -> None:
    assert outbox.covered("INC-1") == {}
    outbox.cover("INC-1", {"CU-1": "INC-2"})
    outbox.cover("INC-1", {"CU-2": "INC-3"})
    outbox.cover("INC-1", {})
    assert outbox.covered("INC-1") == {"CU-1": "INC-2", "CU-2": "INC-3"}
    assert outbox.covered("INC-2") == {}


def test_an_all_clear_after_a_covered_warning_is_sent(outbox: AnyOutbox) -> None:
    """The customer heard the news through the overlapping incident's warning: the all-clear follows it."""
    warning = envelope()
    outbox.enqueue([warning], T0)
    lease = take_one(outbox)
    assert outbox.begin(lease, at(1)).verdict == "send"
    outbox.settle(lease, "covered", at(1), SendResult(ok=False, reason="carried by the warning of INC-2"))
    assert outbox.waiting("INC-1", ["CU-1"]) == set()
    clear = envelope(kind="resolved")
    outbox.enqueue([clear], at(60))
    begun = outbox.begin(take_one(outbox), at(61))
    assert (begun.verdict, begun.envelope) == ("send", clear)
    assert outbox.funnel("INC-1")["covered"] == 1
