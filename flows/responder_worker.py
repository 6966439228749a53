"""The responder worker: drains the responder outbox to PagerDuty and Slack, with retries and a breaker per target.

Responder traffic is a few events per incident, so one thread does it all: take the events due now (the
outbox hands out only the first unsettled event of each incident and target, so a trigger goes before its
acknowledge, and that before its resolve), then for each, in turn:

1. past its deadline → expired, unsent;
2. no sender for its target here → back in the outbox for later (another worker may have one; the deadline
   ends it otherwise);
3. its target's breaker is open → back in the outbox, due when the breaker lets a probe through (no send;
   the outbox counts the hand-out as an attempt all the same, so the backoff after a pause is longer);
4. send, then: accepted → sent; a final error → failed (logged with its reason, never its payload);
   retryable → retried after the backoff (at least the provider's Retry-After), or expired when that would
   pass the deadline; refused credentials → the breaker holds the target and the event goes back untried.

The worker never sleeps while it holds leases: it only waits (`poll`) when a take found nothing. Events of
a batch not reached while half their lease is still left, or when the worker stops, go back to the outbox
due at once, so another worker can take them without waiting for the lease to run out. A send that
outlasts its whole lease may be handed to another worker and go twice (PagerDuty folds duplicates by its
dedup key; Slack would post twice): the senders' timeouts are kept well below `lease`.

>>> from datetime import UTC, datetime, timedelta
>>> from forewarn.connectors.memory_responder_outbox import InMemoryResponderOutbox
>>> from forewarn.decisions import ResponderEvent
>>> from forewarn.records import SendResult
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> class Pager:
...     def send(self, event):
...         return SendResult(ok=True, provider_id="dedup-1")
>>> outbox = InMemoryResponderOutbox()
>>> _ = outbox.enqueue([ResponderEvent("INC-1", "trigger", "pagerduty", {}, at, at + timedelta(hours=1))], at)
>>> ResponderWorker(outbox, {"pagerduty": Pager()}, clock=lambda: at).run_once()
[('INC-1|trigger|0|pagerduty', 'sent')]
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from forewarn.decisions import ResponderEvent, ResponderTarget
from forewarn.interfaces import ResponderOutbox, ResponderSender
from forewarn.outreach.breaker import Backoff, Breaker
from forewarn.records import SendResult

log = logging.getLogger(__name__)

Outcome = Literal["sent", "failed", "retrying", "expired", "paused", "put_back"]

TARGET_HOLD = timedelta(minutes=5)
"""How long refused credentials pause a target before one probe tries again."""
NO_SENDER_WAIT = timedelta(minutes=1)
"""How long an event waits when this worker has no sender for its target."""
_REASON_CHARS = 300


def _reason(result: SendResult) -> str:
    """The sender's reason, bounded (senders name the status and the provider's message, never the payload)."""
    return (result.reason or "no reason given")[:_REASON_CHARS]


class ResponderWorker:
    """Sends what the responder outbox hands out until `stop()`; `run_once()` is one take and its sends.

    Parameters
    ----------
    outbox
        The responder outbox; any number of workers share it.
    senders
        A sender per target ("pagerduty", "slack").
    backoff
        Retry waits (a default `Backoff` when None).
    breakers
        A breaker per target; one with the default settings is made for a target without.
    clock
        Wall time (injected).
    lease
        Seconds an event stays with this worker before another may take it.
    batch
        Events taken at once.
    poll
        Seconds to wait after a take that found nothing.
    rand
        The backoff's jitter (injected in tests).
    """

    def __init__(self, outbox: ResponderOutbox, senders: Mapping[ResponderTarget, ResponderSender],
                 backoff: Backoff | None = None, breakers: Mapping[ResponderTarget, Breaker] | None = None, *,
                 clock: Callable[[], datetime], lease: float = 60.0, batch: int = 20, poll: float = 0.2,
                 rand: Callable[[], float] = random.random) -> None:
        self.outbox = outbox
        self.senders = dict(senders)
        self.backoff = backoff or Backoff()
        self.breakers: dict[ResponderTarget, Breaker] = dict(breakers or {})
        self.clock = clock
        self.lease = lease
        self.batch = batch
        self.poll = poll
        self.rand = rand
        self.counts: Counter[Outcome] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ResponderWorker:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="responder-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the send in flight (if any); the rest of its batch goes back to the outbox, due at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the worker's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until the outbox holds nothing unsettled, leased included (demo, tests); False on timeout.
        An event retrying later counts as unsettled: drain waits for it (or its deadline)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.pending() == 0:
                return True
            time.sleep(0.05)
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.run_once()
            except Exception:  # a Redis blip must not end the worker: log, wait, go on
                log.exception("responder worker loop failed; retrying in 1s")
                self._stop.wait(1.0)
                continue
            if not handled:
                self._stop.wait(self.poll)

    # -- one round ---------------------------------------------------------------------------------

    def run_once(self) -> list[tuple[str, Outcome]]:
        """Take the events due now and handle each in turn; what became of each, in order."""
        outcomes: list[tuple[str, Outcome]] = []
        events = self.outbox.take(self.batch, self.clock(), self.lease)
        taken_at = time.monotonic()
        for i, event in enumerate(events):
            if self._stop.is_set() or time.monotonic() - taken_at > self.lease / 2:
                why = "the worker stopped" if self._stop.is_set() else "its lease ran low"
                outcomes += self._put_back(events[i:], f"{why} before it was sent")
                break
            outcome = self._handle(event)
            self.counts[outcome] += 1
            outcomes.append((event.id, outcome))
        return outcomes

    def _put_back(self, events: list[ResponderEvent], why: str) -> list[tuple[str, Outcome]]:
        now = self.clock()
        for event in events:
            self.outbox.retry(event.id, now, now, why)
            self.counts["put_back"] += 1
        return [(event.id, "put_back") for event in events]

    def breaker(self, target: ResponderTarget) -> Breaker:
        return self.breakers.setdefault(target, Breaker())

    def _handle(self, event: ResponderEvent) -> Outcome:
        now = self.clock()
        if now >= event.expires_at:
            self.outbox.settle(event.id, "expired", now, "deadline passed before it went")
            return "expired"
        sender = self.senders.get(event.target)
        if sender is None:
            log.warning("no %s sender in this worker: %s waits", event.target, event.id)
            self.outbox.retry(event.id, now + NO_SENDER_WAIT, now, f"no {event.target} sender")
            return "paused"
        breaker = self.breaker(event.target)
        if not breaker.allows(now):
            self.outbox.retry(event.id, breaker.reopens_at(now), now, f"{event.target} paused: breaker open")
            return "paused"
        return self._settle(event, self._send(sender, event), breaker)

    def _send(self, sender: ResponderSender, event: ResponderEvent) -> SendResult:
        try:
            return sender.send(event)
        except Exception as exc:  # a sender should answer, not raise: retry it, naming only the error's type
            log.error("the %s sender raised %s for %s; it will be retried", event.target, type(exc).__name__,
                      event.id)
            return SendResult(ok=False, retryable=True, uncertain=True,
                              reason=f"the sender raised {type(exc).__name__}")

    def _settle(self, event: ResponderEvent, result: SendResult, breaker: Breaker) -> Outcome:
        now = self.clock()
        target = event.target
        if result.ok:
            breaker.succeeded()
            self.outbox.settle(event.id, "sent", now, result.provider_id or "")
            return "sent"
        reason = _reason(result)
        if result.halts_channel:
            if breaker.failed(now, hold=TARGET_HOLD):
                log.error("%s paused: %s; its events wait in the outbox", target, reason)
            self.outbox.retry(event.id, breaker.reopens_at(now), now, reason)
            return "paused"
        if not result.retryable:
            breaker.succeeded()  # the provider answered: it is up
            self.outbox.settle(event.id, "failed", now, reason)
            log.warning("%s notification %s failed: %s", target, event.id, reason)
            return "failed"
        if breaker.failed(now):
            log.warning("%s breaker open after repeated failures (%s); its events wait", target, reason)
        attempts = int(self.outbox.state(event.id).get("attempts", "1"))
        due = now + timedelta(seconds=self.backoff.wait(attempts, result.retry_after, self.rand))
        if due >= event.expires_at:
            self.outbox.settle(event.id, "expired", now, f"deadline: {reason}")
            return "expired"
        self.outbox.retry(event.id, due, now, reason)
        return "retrying"
