"""The dispatcher over the in-process outbox, with scripted providers and an injected clock: no network, no sleeps.

Each test plays a provider (`ScriptedProvider`: answers in order, keeps a log of what it accepted and
can be looked up like Twilio's Messages list) and drives the worker's loop by hand (`drive`:
promote what is due, take, handle, move the clock on), so "sent exactly once" is counted at the
provider itself.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.memory_suppressions import InMemorySuppressions
from forewarn.envelopes import Envelope
from forewarn.interfaces import Reconciler
from forewarn.outreach.breaker import Backoff, Breaker
from forewarn.outreach.dispatch import CHANNEL_HOLD, WAIT_FOR_WARNING, Channels, Dispatcher, Outcome, SendEnvelope
from forewarn.records import Channel, Customer, Message, MessageKey, MessageKind, SendResult
from tests.recording import Clock

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)




@dataclass
class Answer:
    """One scripted answer; `kept`: the provider stored the message although the caller saw a failure."""

    result: SendResult
    kept: bool = False


def ok() -> SendResult:
    return SendResult(ok=True)


def busy(retry_after: float | None = None) -> SendResult:
    return SendResult(ok=False, retryable=True, reason="429 Too Many Requests", retry_after=retry_after)


def server_error() -> SendResult:
    return SendResult(ok=False, retryable=True, uncertain=True, reason="500 Internal Server Error")


@dataclass
class ScriptedProvider:
    """A provider answering from `script` (then `default`), thread-safe; `accepted` counts what it took.

    `answer`, when given, decides instead of the script: a function of the envelope and the time.
    """

    clock: Callable[[], datetime] = lambda: T0
    script: list[Answer | SendResult] = field(default_factory=list)
    answer: Callable[[Envelope, datetime], Answer | SendResult] | None = None
    lookup_fails: bool = False
    calls: list[tuple[str, datetime, str | None]] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)
    lookups: list[datetime] = field(default_factory=list)
    _log: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, envelope: Envelope, status_callback: str | None) -> SendResult:
        now = self.clock()
        with self._lock:
            self.calls.append((envelope.id, now, status_callback))
            if self.answer is not None:
                given = self.answer(envelope, now)
            else:
                given = self.script.pop(0) if self.script else ok()
            answer = given if isinstance(given, Answer) else Answer(given)
            if answer.result.ok or answer.kept:
                self.accepted[envelope.id] += 1
                sid = f"SM{len(self._log):06d}"
                self._log[(envelope.message.to, envelope.message.body)] = sid
                if answer.result.ok:
                    return SendResult(ok=True, provider_id=sid)
            return answer.result

    def find_sent(self, message: Message, since: datetime) -> SendResult | None:
        with self._lock:
            self.lookups.append(since)
            if self.lookup_fails:
                return SendResult(ok=False, retryable=True, reason="lookup: 503")
            sid = self._log.get((message.to, message.body))
            return SendResult(ok=True, provider_id=sid) if sid else None

    def sends(self, mid: str | None = None) -> int:
        return sum(1 for call in self.calls if mid is None or call[0] == mid)


@dataclass
class OptOutLog:
    recorded: list[tuple[str, Channel]] = field(default_factory=list)

    def record_opt_out(self, customer_id: str, channel: Channel) -> bool:
        self.recorded.append((customer_id, channel))
        return True

    def get_many(self, ids: Sequence[str]) -> list[Customer | None]:
        return [None for _ in ids]  # customers it does not know: only the suppressions decide


def envelope(customer: str = "CU-1", kind: MessageKind = "warning", channel: Channel = "sms", *,
             incident: str = "INC-1", expires: datetime = T0 + timedelta(hours=6), to: str | None = None,
             not_before: datetime | None = None) -> Envelope:
    address = to or (f"+1512555{int(customer.rsplit('-', 1)[-1]):04d}" if channel == "sms"
                     else f"{customer.lower()}@example.com")
    return Envelope(Message(MessageKey(incident, customer, kind), channel, address, f"{kind} for {customer}"),
                    T0, expires, not_before)


def dispatcher(outbox: InMemoryOutbox, provider: ScriptedProvider, clock: Clock, *, breaker: Breaker | None = None,
               reconcile: bool = True, channels: Iterable[Channel] = ("sms",), **options: object) -> Dispatcher:
    send: dict[Channel, SendEnvelope] = {c: provider.send for c in channels}
    reconcilers: dict[Channel, Reconciler] = {c: provider for c in channels if c == "sms"} if reconcile else {}
    breakers = {c: breaker or Breaker(failures=3, cooldown=timedelta(seconds=30)) for c in channels}
    return Dispatcher(outbox, Channels(send, reconcilers, breakers),
                      Backoff(timedelta(seconds=1), timedelta(minutes=1)),
                      clock=clock, rand=lambda: 0.0, **options)  # type: ignore[arg-type]


def drive(outbox: InMemoryOutbox, dispatch: Dispatcher, clock: Clock, *, until: Callable[[], bool],
          step: float = 1.0, rounds: int = 5_000, batch: int = 10) -> list[tuple[datetime, str, Outcome]]:
    """The worker's loop, by hand: promote what is due, reclaim what a dead worker left (everything
    pending: nothing here is in flight between rounds), take a batch per channel, handle each, tick."""
    outcomes: list[tuple[datetime, str, Outcome]] = []
    for _ in range(rounds):
        outbox.promote_due(clock())
        for channel in ("sms", "email"):
            for lease in outbox.reclaim(channel, "w1", 0, batch) + outbox.take(channel, "w1", batch, 0):
                outcomes.append((clock(), lease.message_id, dispatch.handle(lease)))
        if until():
            return outcomes
        clock.advance(timedelta(seconds=step))
    raise AssertionError(f"not done after {rounds} rounds: {Counter(o for _, _, o in outcomes)}")


def settled(outbox: InMemoryOutbox, *envelopes: Envelope) -> Callable[[], bool]:
    return lambda: all(outbox.state(e.id)["state"] in ("sent", "failed", "expired", "opted_out") for e in envelopes)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def outbox() -> InMemoryOutbox:
    return InMemoryOutbox()


# -- retries ---------------------------------------------------------------------------------------


def test_429_then_500_then_201_is_sent_exactly_once(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope()
    outbox.enqueue([env], T0)
    provider = ScriptedProvider(clock, [busy(retry_after=30), server_error(), ok()])
    outcomes = drive(outbox, dispatcher(outbox, provider, clock), clock, until=settled(outbox, env))
    assert [o for _, _, o in outcomes] == ["retrying", "retrying", "sent"]
    assert provider.accepted == Counter({env.id: 1})
    assert outbox.state(env.id)["state"] == "sent"
    assert outbox.state(env.id)["attempts"] == "3"
    first, second, third = (when for _, when, _ in provider.calls)
    assert second - first >= timedelta(seconds=30)  # Retry-After honoured
    # the 500 may have reached the provider: it was looked up (and not found) before the third try,
    # reaching back to the first attempt at least
    assert len(provider.lookups) == 1
    assert first - timedelta(minutes=5) <= provider.lookups[0] <= first
    assert third > second
    assert outbox.funnel("INC-1") == {"decided": 1, "enqueued": 1, "sent": 1}
    assert outbox.accepted("INC-1", "warning") == {"CU-1"}


def test_a_500_after_the_provider_took_it_is_found_and_not_sent_again(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope()
    outbox.enqueue([env], T0)
    provider = ScriptedProvider(clock, [busy(), Answer(server_error(), kept=True)])
    outcomes = drive(outbox, dispatcher(outbox, provider, clock), clock, until=settled(outbox, env))
    assert [o for _, _, o in outcomes] == ["retrying", "retrying", "reconciled"]
    assert provider.sends() == 2
    assert provider.accepted == Counter({env.id: 1})
    state = outbox.state(env.id)
    assert (state["state"], state["provider_id"]) == ("sent", "SM000000")


def test_a_retry_past_the_deadline_expires(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope(expires=T0 + timedelta(seconds=10))
    outbox.enqueue([env], T0)
    provider = ScriptedProvider(clock, [busy(retry_after=60)])
    lease = outbox.take("sms", "w1", 1, 0)[0]
    assert dispatcher(outbox, provider, clock).handle(lease) == "expired"
    assert provider.sends() == 1
    assert outbox.state(env.id)["state"] == "expired"
    assert outbox.scheduled() == 0


# -- the breaker -----------------------------------------------------------------------------------


def test_a_provider_down_for_a_while_opens_the_breaker_loses_nothing_and_all_go_once_it_is_back(
        outbox: InMemoryOutbox, clock: Clock) -> None:
    envelopes = [envelope(f"CU-{n}") for n in range(20)]
    outbox.enqueue(envelopes, T0)
    back_at = T0 + timedelta(minutes=10)
    provider = ScriptedProvider(clock, answer=lambda e, now: ok() if now >= back_at else
                                SendResult(ok=False, retryable=True, reason="503 Service Unavailable"))
    breaker = Breaker(failures=3, cooldown=timedelta(seconds=30), max_cooldown=timedelta(minutes=2))
    dispatch = dispatcher(outbox, provider, clock, breaker=breaker)
    seen: set[str] = set()
    dispatch.on_outcome = lambda channel, outcome: seen.add(breaker.state(clock()))
    outcomes = drive(outbox, dispatch, clock, until=settled(outbox, *envelopes), step=5.0)

    assert "open" in seen
    down = [when for _, when, _ in provider.calls if when < back_at]
    # three failures open it; after that only one probe per cooldown (30 s, then longer), never a storm
    opened = down[2]
    probes = down[3:]
    assert all(p >= opened + timedelta(seconds=30) for p in probes)
    assert all(b - a >= timedelta(seconds=30) for a, b in pairwise(probes))
    assert 1 <= len(probes) <= 10
    assert len(down) < 20  # without a breaker every message would have failed at least once
    assert any(o == "paused" for _, _, o in outcomes)
    # nothing lost, nothing expired, each accepted exactly once
    assert provider.accepted == Counter({e.id: 1 for e in envelopes})
    assert all(outbox.state(e.id)["state"] == "sent" for e in envelopes)
    assert "expired" not in outbox.funnel("INC-1")
    assert outbox.funnel("INC-1")["sent"] == 20
    assert breaker.state(clock()) == "closed"


def test_failures_of_sends_already_in_flight_do_not_stretch_an_open_breaker() -> None:
    breaker = Breaker(failures=2, cooldown=timedelta(seconds=30))
    assert breaker.failed(T0) is False
    assert breaker.failed(T0) is True
    assert breaker.reopens_at(T0) == T0 + timedelta(seconds=30)
    for _ in range(5):  # the rest of a concurrent batch fails too, after it opened
        assert breaker.failed(T0 + timedelta(seconds=1)) is False
    assert breaker.reopens_at(T0) == T0 + timedelta(seconds=30)
    probe_at = T0 + timedelta(seconds=30)
    assert breaker.allows(probe_at) and not breaker.allows(probe_at)
    assert breaker.resting(probe_at)
    assert breaker.failed(probe_at) is True  # the probe failed: twice as long
    assert breaker.reopens_at(probe_at) == probe_at + timedelta(seconds=60)


def test_an_error_while_probing_does_not_keep_the_channel_shut(outbox: InMemoryOutbox, clock: Clock) -> None:
    outbox.enqueue([envelope("CU-1"), envelope("CU-2")], T0)
    breaker = Breaker(failures=1, cooldown=timedelta(seconds=30))
    breaker.failed(T0)
    calls = 0

    def explode(envelope: Envelope, status_callback: str | None) -> SendResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug, not the provider")
        return ok()

    dispatch = Dispatcher(outbox, Channels({"sms": explode}, {}, {"sms": breaker}), clock=clock)
    clock.advance(timedelta(seconds=30))
    first, second = outbox.take("sms", "w1", 2, 0)
    with pytest.raises(RuntimeError):
        dispatch.handle(first)
    assert not breaker.resting(clock())
    assert dispatch.handle(second) == "sent"
    assert breaker.state(clock()) == "closed"


def test_refused_credentials_pause_the_channel_and_keep_the_message(outbox: InMemoryOutbox, clock: Clock) -> None:
    envelopes = [envelope(f"CU-{n}") for n in range(3)]
    outbox.enqueue(envelopes, T0)
    fixed_at = T0 + timedelta(minutes=1)
    provider = ScriptedProvider(clock, answer=lambda e, now: ok() if now >= fixed_at else SendResult(
        ok=False, retryable=True, halts_channel=True, reason="20003 authentication failed"))
    breaker = Breaker(failures=5, cooldown=timedelta(seconds=30))
    dispatch = dispatcher(outbox, provider, clock, breaker=breaker)
    leases = outbox.take("sms", "w1", 10, 0)
    assert [dispatch.handle(lease) for lease in leases] == ["paused"] * 3
    assert provider.sends() == 1  # the rest never tried: the channel is held
    assert breaker.reopens_at(clock()) == T0 + CHANNEL_HOLD
    assert all(outbox.state(e.id)["state"] == "retrying" for e in envelopes)
    assert "failed" not in outbox.funnel("INC-1")
    outcomes = drive(outbox, dispatch, clock, until=settled(outbox, *envelopes), step=10.0)
    assert all(when >= T0 + CHANNEL_HOLD for when, _, o in outcomes if o in ("sent", "reconciled"))
    assert provider.accepted == Counter({e.id: 1 for e in envelopes})
    assert all(outbox.state(e.id)["state"] == "sent" for e in envelopes)


# -- final answers ---------------------------------------------------------------------------------


def test_a_final_error_fails_the_message_and_is_not_retried(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope()
    outbox.enqueue([env], T0)
    provider = ScriptedProvider(clock, [SendResult(ok=False, retryable=False, reason="21211 invalid 'To' number")])
    dispatch = dispatcher(outbox, provider, clock)
    assert dispatch.handle(outbox.take("sms", "w1", 1, 0)[0]) == "failed"
    clock.advance(timedelta(seconds=3_600))
    assert outbox.promote_due(clock()) == 0
    assert outbox.take("sms", "w1", 10, 0) == []
    assert provider.sends() == 1
    assert outbox.state(env.id)["state"] == "failed"
    assert outbox.history("INC-1", "CU-1")[env.id][-1]["detail"] == "21211 invalid 'To' number"
    assert dispatch.channels.breaker("sms").state(clock()) == "closed"


def test_an_opted_out_answer_suppresses_the_address_and_writes_the_opt_out_back(outbox: InMemoryOutbox,
                                                                                clock: Clock) -> None:
    first = envelope("CU-1", to="+15125550100")
    later = envelope("CU-1", incident="INC-2", to="+1 (512) 555-0100")
    outbox.enqueue([first], T0)
    provider = ScriptedProvider(clock, [SendResult(ok=False, retryable=False, opted_out=True,
                                                   reason="21610 unsubscribed recipient")])
    suppressions, opt_outs = InMemorySuppressions(), OptOutLog()
    dispatch = dispatcher(outbox, provider, clock, suppressions=suppressions, opt_outs=opt_outs)
    assert dispatch.handle(outbox.take("sms", "w1", 1, 0)[0]) == "failed"
    assert suppressions.is_suppressed("sms", "+15125550100")
    assert opt_outs.recorded == [("CU-1", "sms")]
    outbox.enqueue([later], clock())
    assert dispatch.handle(outbox.take("sms", "w1", 1, 0)[0]) == "opted_out"
    assert provider.sends() == 1
    assert outbox.state(later.id)["state"] == "opted_out"


def test_an_opt_out_in_the_index_after_the_decision_is_honoured_before_the_send(outbox: InMemoryOutbox,
                                                                                 clock: Clock) -> None:
    index = InMemoryCustomerIndex()
    index.upsert([Customer(id="CU-1", region="R", phone="+15125550001"),
                  Customer(id="CU-2", region="R", phone="+15125550002")])
    first, second = envelope("CU-1"), envelope("CU-2")
    outbox.enqueue([first, second], T0)
    index.upsert([Customer(id="CU-1", region="R", phone="+15125550001", opt_out={"sms": True})])  # the feed says so
    provider = ScriptedProvider(clock)
    dispatch = dispatcher(outbox, provider, clock, opt_outs=index)
    assert sorted(dispatch.handle(lease) for lease in outbox.take("sms", "w1", 10, 0)) == ["opted_out", "sent"]
    assert [mid for mid, _, _ in provider.calls] == [second.id]
    assert outbox.state(first.id)["state"] == "opted_out"


def test_an_sms_that_fails_for_good_goes_by_email_instead_once(outbox: InMemoryOutbox, clock: Clock) -> None:
    sms = envelope()
    spare = envelope(channel="email")
    outbox.enqueue([replace(sms, fallback=spare)], T0)
    provider = ScriptedProvider(clock, [SendResult(ok=False, retryable=False, reason="21211 invalid 'To' number")])
    outcomes = drive(outbox, dispatcher(outbox, provider, clock, channels=("sms", "email")), clock,
                     until=settled(outbox, sms, spare))
    assert [(mid, o) for _, mid, o in outcomes] == [(sms.id, "failed"), (spare.id, "sent")]
    assert outbox.funnel("INC-1") == {"decided": 1, "enqueued": 1, "failed": 1, "fallback": 1, "sent": 1}
    assert outbox.accepted("INC-1", "warning") == {"CU-1"}


def test_a_suppressed_address_is_opted_out_without_a_send(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope(channel="email")
    suppressions = InMemorySuppressions()
    suppressions.suppress("email", "CU-1@Example.com")
    outbox.enqueue([env], T0)
    provider = ScriptedProvider(clock)
    dispatch = dispatcher(outbox, provider, clock, channels=("sms", "email"), suppressions=suppressions)
    assert dispatch.handle(outbox.take("email", "w1", 1, 0)[0]) == "opted_out"
    assert provider.sends() == 0
    assert outbox.funnel("INC-1")["opted_out"] == 1


def test_a_message_past_its_deadline_expires_without_a_send(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope(expires=T0 + timedelta(hours=1))
    outbox.enqueue([env], T0)
    provider = ScriptedProvider(clock)
    clock.advance(timedelta(seconds=3_600))
    assert dispatcher(outbox, provider, clock).handle(outbox.take("sms", "w1", 1, 0)[0]) == "expired"
    assert provider.sends() == 0
    assert outbox.state(env.id)["state"] == "expired"


# -- reconcile -------------------------------------------------------------------------------------


def crashed_while_sending(outbox: InMemoryOutbox, env: Envelope, provider: ScriptedProvider | None = None) -> None:
    """A worker took and began `env` (and, given `provider`, posted it there), then died before recording it."""
    outbox.enqueue([env], T0)
    lease = outbox.take("sms", "dead", 1, 0)[0]
    assert outbox.begin(lease, T0).verdict == "send"
    if provider is not None:
        provider.send(env, None)


def test_reconcile_finds_the_message_in_the_provider_log_and_records_it(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope()
    provider = ScriptedProvider(clock)
    crashed_while_sending(outbox, env, provider)
    clock.advance(timedelta(seconds=120))
    (lease,) = outbox.reclaim("sms", "w2", 0, 10)
    assert dispatcher(outbox, provider, clock).handle(lease) == "reconciled"
    assert provider.sends() == 1
    assert provider.accepted == Counter({env.id: 1})
    assert len(provider.lookups) == 1
    assert T0 - timedelta(minutes=5) <= provider.lookups[0] <= T0  # from the first attempt (or a little before)
    state = outbox.state(env.id)
    assert (state["state"], state["provider_id"]) == ("sent", "SM000000")
    assert outbox.history("INC-1", "CU-1")[env.id][-1]["detail"] == "found in the provider's log"


def test_reconcile_that_finds_nothing_sends_once(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope()
    provider = ScriptedProvider(clock)
    crashed_while_sending(outbox, env)
    (lease,) = outbox.reclaim("sms", "w2", 0, 10)
    assert dispatcher(outbox, provider, clock).handle(lease) == "sent"
    assert len(provider.lookups) == 1
    assert provider.accepted == Counter({env.id: 1})


def test_a_failed_lookup_retries_without_sending(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope()
    provider = ScriptedProvider(clock, lookup_fails=True)
    crashed_while_sending(outbox, env)
    dispatch = dispatcher(outbox, provider, clock)
    (lease,) = outbox.reclaim("sms", "w2", 0, 10)
    assert dispatch.handle(lease) == "retrying"
    assert provider.sends() == 0
    assert outbox.state(env.id)["state"] == "retrying"
    provider.lookup_fails = False
    outcomes = drive(outbox, dispatch, clock, until=settled(outbox, env))
    assert [o for _, _, o in outcomes] == ["sent"]
    assert len(provider.lookups) == 2  # still uncertain: looked up again before the send
    assert provider.accepted == Counter({env.id: 1})


def test_the_provider_log_outranks_a_deadline_or_an_opt_out_that_came_after_the_try(outbox: InMemoryOutbox,
                                                                                      clock: Clock) -> None:
    deadline = T0 + timedelta(minutes=5)
    took, lost = envelope("CU-1", expires=deadline), envelope("CU-2", expires=deadline)
    provider = ScriptedProvider(clock)
    crashed_while_sending(outbox, took, provider)
    crashed_while_sending(outbox, lost)
    suppressions = InMemorySuppressions()
    suppressions.suppress("sms", took.message.to)  # STOP arrived after the warning went out
    clock.advance(timedelta(seconds=600))  # recovered after both deadlines
    dispatch = dispatcher(outbox, provider, clock, suppressions=suppressions)
    outcomes = {lease.message_id: dispatch.handle(lease) for lease in outbox.reclaim("sms", "w2", 0, 10)}
    assert outcomes == {took.id: "reconciled", lost.id: "expired"}
    assert outbox.state(took.id)["state"] == "sent"  # the customer has it: the all-clear must follow
    assert outbox.accepted("INC-1", "warning") == {"CU-1"}
    assert provider.sends() == 1


def test_a_lookup_that_keeps_failing_expires_at_the_deadline(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope(expires=T0 + timedelta(seconds=30))
    provider = ScriptedProvider(clock, lookup_fails=True)
    crashed_while_sending(outbox, env)
    outcomes = drive(outbox, dispatcher(outbox, provider, clock), clock, until=settled(outbox, env))
    assert outcomes[-1][2] == "expired"
    assert {o for _, _, o in outcomes[:-1]} <= {"retrying"}
    assert provider.sends() == 0
    assert "could not be read" in outbox.history("INC-1", "CU-1")[env.id][-1]["detail"]


def test_email_has_no_lookup_and_is_sent_again_at_least_once(outbox: InMemoryOutbox, clock: Clock) -> None:
    env = envelope(channel="email")
    outbox.enqueue([env], T0)
    outbox.begin(outbox.take("email", "dead", 1, 0)[0], T0)
    provider = ScriptedProvider(clock)
    dispatch = dispatcher(outbox, provider, clock, channels=("sms", "email"))
    assert dispatch.handle(outbox.reclaim("email", "w2", 0, 10)[0]) == "sent"
    assert provider.lookups == []


# -- the rest of the pipeline ----------------------------------------------------------------------


def test_sms_asks_for_a_status_callback_and_email_does_not(outbox: InMemoryOutbox, clock: Clock) -> None:
    sms, email = envelope("CU-1"), envelope("CU-2", channel="email")
    outbox.enqueue([sms, email], T0)
    provider = ScriptedProvider(clock)
    dispatch = dispatcher(outbox, provider, clock, channels=("sms", "email"),
                          status_callback=lambda mid: f"https://fw.example/twilio/status?m={mid}")
    drive(outbox, dispatch, clock, until=settled(outbox, sms, email))
    callbacks = {mid: callback for mid, _, callback in provider.calls}
    assert callbacks == {sms.id: f"https://fw.example/twilio/status?m={sms.id}", email.id: None}


def test_an_all_clear_waits_for_its_warning_in_flight_then_follows_it(outbox: InMemoryOutbox, clock: Clock) -> None:
    warning, clear = envelope(), envelope(kind="resolved", channel="email")
    outbox.enqueue([warning], T0)
    in_flight = outbox.take("sms", "w0", 1, 0)[0]
    outbox.begin(in_flight, T0)
    outbox.enqueue([clear], T0)
    provider = ScriptedProvider(clock)
    dispatch = dispatcher(outbox, provider, clock, channels=("sms", "email"))
    assert dispatch.handle(outbox.take("email", "w1", 1, 0)[0]) == "waiting"
    assert outbox.state(clear.id)["state"] == "retrying"
    outbox.settle(in_flight, "sent", clock(), SendResult(ok=True, provider_id="SM-w"))
    outcomes = drive(outbox, dispatch, clock, until=settled(outbox, clear))
    assert [(mid, o) for _, mid, o in outcomes] == [(clear.id, "sent")]
    assert outcomes[0][0] >= T0 + WAIT_FOR_WARNING


def test_an_all_clear_taken_before_its_queued_warning_waits_and_follows_it(outbox: InMemoryOutbox,
                                                                           clock: Clock) -> None:
    warning, clear = envelope(), envelope(kind="resolved")
    outbox.enqueue([warning, clear], T0)  # different kinds: both decided, warning first in the queue
    provider = ScriptedProvider(clock)
    dispatch = dispatcher(outbox, provider, clock)
    first, second = outbox.take("sms", "w1", 2, 0)
    assert first.message_id == warning.id
    assert dispatch.handle(second) == "waiting"  # a sibling thread took the warning: it goes first
    assert dispatch.handle(first) == "sent"
    outcomes = drive(outbox, dispatch, clock, until=settled(outbox, clear))
    assert [(mid, o) for _, mid, o in outcomes] == [(clear.id, "sent")]
    assert provider.sends() == 2


def test_an_all_clear_before_its_deferred_warning_went_sends_neither(outbox: InMemoryOutbox, clock: Clock) -> None:
    warning, clear = envelope(not_before=T0 + timedelta(hours=8)), envelope(kind="resolved")
    outbox.enqueue([warning, clear], T0)  # the warning waits for the customer's morning; the all-clear drops both
    provider = ScriptedProvider(clock)
    dispatch = dispatcher(outbox, provider, clock)
    outbox.promote_due(T0 + timedelta(hours=9))
    assert outbox.take("sms", "w1", 10, 0) == []
    assert provider.sends() == 0 and dispatch.channels.send
    assert outbox.funnel("INC-1")["superseded"] == 2
