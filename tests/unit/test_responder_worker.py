"""The responder worker over the in-process responder outbox, with scripted senders and a clock the test moves.

Each test drives `run_once` itself and moves the clock a second at a time, so "sent once", "not retried" and
"held while the breaker is open" are counted in the senders' own logs, at the clock's times; no sleeps, no
wall-clock timing. One test runs the worker's thread for real (start, drain, stop).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest

from forewarn.connectors.memory_responder_outbox import InMemoryResponderOutbox
from forewarn.decisions import ResponderEvent, ResponderStage, ResponderTarget
from forewarn.flows.responder_worker import ResponderWorker
from forewarn.outreach.breaker import Backoff, Breaker
from forewarn.records import SendResult
from tests.recording import T0, Clock

SECRET = "R0UT1NG-KEY-e93f"


def event(incident: str = "INC-1", stage: ResponderStage = "trigger", target: ResponderTarget = "pagerduty", *,
          decided: datetime = T0, expires: timedelta = timedelta(hours=1)) -> ResponderEvent:
    payload = {"routing_key": SECRET, "event_action": stage, "dedup_key": incident,
               "payload": {"summary": f"{incident}: no internet in TX-453", "severity": "error", "source": "fw"}}
    return ResponderEvent(incident, stage, target, payload, decided, decided + expires)


def ok() -> SendResult:
    return SendResult(ok=True, provider_id="dedup")


def busy(retry_after: float | None = None) -> SendResult:
    return SendResult(ok=False, retryable=True, reason="429 Too Many Requests", retry_after=retry_after)


def server_error() -> SendResult:
    return SendResult(ok=False, retryable=True, uncertain=True, reason="500 Internal Server Error")


def bad_request() -> SendResult:
    return SendResult(ok=False, reason="400 Bad Request: invalid event (routing key malformed)")


class ScriptedSender:
    """Answers from a script (then `ok` for ever) and logs each call with the clock's time."""

    def __init__(self, clock: Clock, script: Iterable[SendResult] = ()) -> None:
        self.clock = clock
        self.script = list(script)
        self.calls: list[tuple[datetime, str]] = []

    def send(self, event: ResponderEvent) -> SendResult:
        self.calls.append((self.clock(), event.id))
        return self.script.pop(0) if self.script else ok()

    @property
    def ids(self) -> list[str]:
        return [event_id for _, event_id in self.calls]


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def outbox() -> InMemoryResponderOutbox:
    return InMemoryResponderOutbox()


def worker(outbox: InMemoryResponderOutbox, clock: Clock, pagerduty: ScriptedSender,
           slack: ScriptedSender | None = None, **options: object) -> ResponderWorker:
    senders = {"pagerduty": pagerduty, **({"slack": slack} if slack else {})}
    return ResponderWorker(outbox, senders, Backoff(timedelta(seconds=1), timedelta(minutes=5)),  # type: ignore[arg-type]
                           clock=clock, rand=lambda: 1.0, **options)  # type: ignore[arg-type]


def drive(work: ResponderWorker, clock: Clock, until: Callable[[], bool], *, step: float = 1.0,
          most: float = 3600.0) -> list[tuple[datetime, str, str]]:
    """Run the worker once a `step` of the clock until `until()`; every outcome with its time."""
    outcomes: list[tuple[datetime, str, str]] = []
    start = clock()
    while not until():
        assert clock() - start <= timedelta(seconds=most), "never settled"
        outcomes += [(clock(), event_id, outcome) for event_id, outcome in work.run_once()]
        clock.advance(timedelta(seconds=step))
    return outcomes


def settled(outbox: InMemoryResponderOutbox, *events: ResponderEvent) -> Callable[[], bool]:
    return lambda: all(outbox.state(e.id)["state"] in ("sent", "failed", "expired") for e in events)


# -- retries -----------------------------------------------------------------------------------------


def test_429_then_500_then_ok_is_sent_once_after_the_backoff(outbox: InMemoryResponderOutbox, clock: Clock) -> None:
    trigger = event()
    outbox.enqueue([trigger], T0)
    pagerduty = ScriptedSender(clock, [busy(retry_after=30), server_error()])
    outcomes = drive(worker(outbox, clock, pagerduty), clock, settled(outbox, trigger))
    assert [o for _, _, o in outcomes] == ["retrying", "retrying", "sent"]
    assert [at for at, _ in pagerduty.calls] == [T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=32)], \
        "the 429's Retry-After (30 s, above the 1 s backoff) is honoured; then 2 s (the second attempt's backoff)"
    assert outbox.state(trigger.id) == {"state": "sent", "attempts": "3", "detail": "dedup"}
    clock.advance(timedelta(hours=2))
    assert worker(outbox, clock, pagerduty).run_once() == [] and len(pagerduty.calls) == 3


def test_a_bad_request_fails_and_is_not_retried(outbox: InMemoryResponderOutbox, clock: Clock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    trigger = event()
    outbox.enqueue([trigger], T0)
    pagerduty = ScriptedSender(clock, [bad_request()])
    work = worker(outbox, clock, pagerduty)
    with caplog.at_level(logging.WARNING):
        assert work.run_once() == [(trigger.id, "failed")]
    for _ in range(120):
        clock.advance(timedelta(seconds=30))
        assert work.run_once() == []
    assert pagerduty.ids == [trigger.id], "sent once, never again"
    state = outbox.state(trigger.id)
    assert state["state"] == "failed" and "400 Bad Request" in state["detail"]
    assert "400 Bad Request" in caplog.text and trigger.id in caplog.text, "the reason is logged"
    assert SECRET not in caplog.text, "the payload (its routing key) is not"


def test_an_event_past_its_deadline_expires_unsent(outbox: InMemoryResponderOutbox, clock: Clock) -> None:
    stale = event("INC-1", expires=timedelta(minutes=5))
    outbox.enqueue([stale], T0)
    clock.advance(timedelta(minutes=6))
    pagerduty = ScriptedSender(clock)
    assert worker(outbox, clock, pagerduty).run_once() == [(stale.id, "expired")]
    assert pagerduty.calls == [] and outbox.state(stale.id)["state"] == "expired"


def test_a_retry_that_would_pass_the_deadline_expires(outbox: InMemoryResponderOutbox, clock: Clock) -> None:
    short = event(expires=timedelta(seconds=60))
    outbox.enqueue([short], T0)
    pagerduty = ScriptedSender(clock, [server_error(), busy(retry_after=120)])
    outcomes = drive(worker(outbox, clock, pagerduty), clock, settled(outbox, short))
    assert [o for _, _, o in outcomes] == ["retrying", "expired"]
    assert len(pagerduty.calls) == 2
    assert outbox.state(short.id)["state"] == "expired" and "429" in outbox.state(short.id)["detail"]


# -- the breaker -------------------------------------------------------------------------------------


def test_an_open_breaker_holds_its_events_and_sends_them_after_the_cooldown(
        outbox: InMemoryResponderOutbox, clock: Clock) -> None:
    storm = [event(f"INC-{i}") for i in range(5)]
    chat = event("INC-0", target="slack")
    outbox.enqueue([*storm, chat], T0)
    pagerduty = ScriptedSender(clock, [server_error(), server_error(), server_error()])
    slack = ScriptedSender(clock)
    breaker = Breaker(failures=3, cooldown=timedelta(seconds=60))
    work = worker(outbox, clock, pagerduty, slack, breakers={"pagerduty": breaker})

    drive(work, clock, lambda: clock() >= T0 + timedelta(seconds=59))
    assert len(pagerduty.calls) == 3, "three failures open the breaker; nothing else tries PagerDuty"
    assert breaker.state(clock()) == "open"
    assert slack.ids == [chat.id], "Slack is not held up"
    assert {outbox.state(e.id)["state"] for e in storm} == {"retrying"}, "held in the outbox, none lost"
    assert work.counts["paused"] >= 2

    drive(work, clock, settled(outbox, *storm))
    assert all(at >= T0 + timedelta(seconds=60) for at, _ in pagerduty.calls[3:]), "nothing during the cooldown"
    assert sorted(pagerduty.ids[3:]) == sorted(e.id for e in storm), "after it, each event goes once"
    assert {outbox.state(e.id)["state"] for e in storm} == {"sent"}
    assert breaker.state(clock()) == "closed"


def test_refused_credentials_hold_the_target_without_failing_the_event(
        outbox: InMemoryResponderOutbox, clock: Clock) -> None:
    trigger = event()
    outbox.enqueue([trigger], T0)
    pagerduty = ScriptedSender(clock, [SendResult(ok=False, halts_channel=True, reason="403 Forbidden")])
    work = worker(outbox, clock, pagerduty)
    assert work.run_once() == [(trigger.id, "paused")]
    assert outbox.state(trigger.id)["state"] == "retrying"
    drive(work, clock, settled(outbox, trigger), step=30)
    assert [at for at, _ in pagerduty.calls][1] >= T0 + timedelta(minutes=5), "probed again after the hold"
    assert outbox.state(trigger.id)["state"] == "sent"


# -- order -------------------------------------------------------------------------------------------


def test_trigger_acknowledge_resolve_go_in_order_when_enqueued_together(
        outbox: InMemoryResponderOutbox, clock: Clock) -> None:
    stages: list[ResponderStage] = ["resolve", "acknowledge", "trigger"]
    pd = [event(stage=s) for s in stages]
    chat = [event(stage=s, target="slack") for s in stages]
    outbox.enqueue([*pd, *chat], T0)
    pagerduty = ScriptedSender(clock, [server_error()])  # the trigger has to be retried: the others wait
    slack = ScriptedSender(clock)
    drive(worker(outbox, clock, pagerduty, slack), clock, settled(outbox, *pd, *chat))
    order = ["INC-1|trigger|0|pagerduty", "INC-1|trigger|0|pagerduty", "INC-1|acknowledge|0|pagerduty",
             "INC-1|resolve|0|pagerduty"]
    assert pagerduty.ids == order
    assert slack.ids == [i.replace("pagerduty", "slack") for i in order[1:]]


def test_a_failed_trigger_does_not_keep_its_resolve_for_ever(outbox: InMemoryResponderOutbox, clock: Clock) -> None:
    trigger, resolve = event(stage="trigger"), event(stage="resolve")
    outbox.enqueue([resolve, trigger], T0)
    pagerduty = ScriptedSender(clock, [bad_request()])
    drive(worker(outbox, clock, pagerduty), clock, settled(outbox, trigger, resolve))
    assert pagerduty.ids == [trigger.id, resolve.id]


# -- the thread --------------------------------------------------------------------------------------


class BlockingSender:
    """Accepts each event; the first waits until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sent: list[str] = []

    def send(self, event: ResponderEvent) -> SendResult:
        if not self.sent:
            self.entered.set()
            self.release.wait(10)
        self.sent.append(event.id)
        return ok()


def test_the_thread_drains_and_stops(outbox: InMemoryResponderOutbox) -> None:
    now = datetime.now(UTC)
    events = [event(f"INC-{i}", decided=now) for i in range(5)]
    outbox.enqueue(events, now)
    sender = BlockingSender()
    work = ResponderWorker(outbox, {"pagerduty": sender}, clock=lambda: datetime.now(UTC), poll=0.01).start()
    try:
        assert sender.entered.wait(10)
        sender.release.set()
        assert work.drain(10)
    finally:
        work.stop()
    assert sorted(sender.sent) == sorted(e.id for e in events)
    assert not work.running


def test_stopping_puts_the_rest_of_a_batch_back(outbox: InMemoryResponderOutbox) -> None:
    now = datetime.now(UTC)
    events = [event(f"INC-{i}", decided=now) for i in range(5)]
    outbox.enqueue(events, now)
    sender = BlockingSender()
    work = ResponderWorker(outbox, {"pagerduty": sender}, clock=lambda: datetime.now(UTC), poll=0.01).start()
    assert sender.entered.wait(10)
    stopper = threading.Thread(target=work.stop)
    stopper.start()
    while not work.stopping:
        stopper.join(0.01)
    sender.release.set()  # the send in flight finishes; the other four are not sent
    stopper.join(10)
    assert not stopper.is_alive() and not work.running
    assert len(sender.sent) == 1
    assert work.counts["put_back"] == 4
    rest = [e for e in events if e.id not in sender.sent]
    assert {outbox.state(e.id)["state"] for e in rest} == {"retrying"}
    assert sorted(e.id for e in outbox.take(10, datetime.now(UTC), lease=60)) == sorted(e.id for e in rest), \
        "due at once for another worker, not after their lease"
