"""The outbox in this process, for the demo and dry runs: the same states and rules as `RedisOutbox`.

Queues are deques per channel; a taken message stays leased (with the time it was taken) until it is
settled or rescheduled, so `reclaim` can hand out what a stopped worker left, as XAUTOCLAIM does.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from time import monotonic
from typing import Any, Literal

from forewarn.envelopes import (
    ACCEPTED_STATES,
    FINAL_STATES,
    TOLD_STATES,
    WAITING_STATES,
    Begun,
    Envelope,
    Fate,
    Lease,
    falls_back,
    fate_of,
    message_id,
    parse_message_id,
    warning_ids,
)
from forewarn.records import Channel, MessageKey, MessageKind, SendResult


@dataclass
class _Held:
    envelope: Envelope
    state: str
    attempts: int = 0
    first_attempt_at: datetime | None = None
    uncertain: bool = False
    provider_id: str = ""
    reason: str = ""
    fallback_queued: bool = False


@dataclass
class _Queue:
    waiting: deque[tuple[str, str]] = field(default_factory=deque)  # (entry id, message id)
    leased: dict[str, tuple[str, float]] = field(default_factory=dict)  # entry id -> (message id, taken at)


class InMemoryOutbox:
    """`Outbox` and `DeliveryQueue` over dicts and deques, guarded by one lock."""

    def __init__(self) -> None:
        self._messages: dict[str, _Held] = {}
        self._decided: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._accepted: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._held_out: dict[str, set[str]] = defaultdict(set)
        self._covered: dict[str, dict[str, str]] = defaultdict(dict)
        self._funnels: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._history: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self._queues: dict[str, _Queue] = defaultdict(_Queue)
        self._later: dict[str, datetime] = {}
        self._ids = count(1)
        self._lock = threading.Condition()

    # -- deciding ----------------------------------------------------------------------------------

    def enqueue(self, envelopes: Sequence[Envelope], now: datetime) -> list[str]:
        new = []
        with self._lock:
            for envelope in envelopes:
                key = envelope.key
                decided = self._decided[(key.incident_id, key.kind)]
                if key.customer_id in decided:
                    continue
                decided.add(key.customer_id)
                deferred = envelope.not_before is not None and not envelope.urgent and envelope.not_before > now
                state = "deferred" if deferred else "enqueued"
                if key.kind == "resolved" and self._night_warnings_superseded(key, now):
                    state = "superseded"  # fixed while its warning waited for the customer's morning
                self._messages[envelope.id] = _Held(envelope, state)
                self._event(envelope.id, "decided", now)
                self._event(envelope.id, state, now)
                self._count(key.incident_id, "decided", state)
                if state == "deferred":
                    assert envelope.not_before is not None
                    self._later[envelope.id] = envelope.not_before
                elif state == "enqueued":
                    self._push(envelope.channel, envelope.id)
                new.append(envelope.id)
            self._lock.notify_all()
        return new

    def _night_warnings_superseded(self, key: MessageKey, now: datetime) -> bool:
        warning = MessageKey(key.incident_id, key.customer_id, "warning")
        held = {mid: self._messages[mid] for c in ("sms", "email")
                if (mid := message_id(warning, c)) in self._messages}
        deferred = [mid for mid, h in held.items() if h.state == "deferred"]
        if not deferred or any(h.state not in ("deferred", "superseded") for h in held.values()):
            return False
        for mid in deferred:
            self._messages[mid].state = "superseded"
            self._later.pop(mid, None)
            self._count(key.incident_id, "superseded")
            self._event(mid, "superseded", now, "resolved before it was sent")
        return True

    def hold_out(self, incident_id: str, customer_ids: Sequence[str]) -> None:
        with self._lock:
            self._held_out[incident_id].update(customer_ids)

    def held_out(self, incident_id: str) -> set[str]:
        with self._lock:
            return set(self._held_out.get(incident_id, ()))

    def waiting(self, incident_id: str, customer_ids: Sequence[str]) -> set[str]:
        with self._lock:
            return {c for c in customer_ids for mid in warning_ids(incident_id, c)
                    if (held := self._messages.get(mid)) is not None and held.state in WAITING_STATES}

    def warning_fate(self, incident_id: str, customer_id: str) -> Fate | None:
        return fate_of([s for mid in warning_ids(incident_id, customer_id) if (s := self.state(mid).get("state"))])

    def cover(self, incident_id: str, covered_by: Mapping[str, str]) -> None:
        with self._lock:
            self._covered[incident_id].update(covered_by)

    def covered(self, incident_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._covered.get(incident_id, {}))

    def decided(self, incident_id: str, kind: MessageKind) -> set[str]:
        with self._lock:
            return set(self._decided.get((incident_id, kind), ()))

    def accepted(self, incident_id: str, kind: MessageKind) -> set[str]:
        with self._lock:
            return set(self._accepted.get((incident_id, kind), ()))

    def funnel(self, incident_id: str) -> dict[str, int]:
        with self._lock:
            return dict(self._funnels.get(incident_id, {}))

    def history(self, incident_id: str, customer_id: str) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            events: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for event in self._history.get((incident_id, customer_id), ()):
                events[event["id"]].append({k: v for k, v in event.items() if k != "id"})
            return dict(events)

    def state(self, mid: str) -> dict[str, str]:
        with self._lock:
            held = self._messages.get(mid)
            if held is None:
                return {}
            return {"state": held.state, "attempts": str(held.attempts), "provider_id": held.provider_id,
                    "reason": held.reason, "channel": held.envelope.channel}

    # -- delivering --------------------------------------------------------------------------------

    def promote_due(self, now: datetime, limit: int = 1_000) -> int:
        with self._lock:
            due = sorted((at, mid) for mid, at in self._later.items() if at <= now)[:limit]
            moved = 0
            for _, mid in due:
                del self._later[mid]
                held = self._messages[mid]
                if held.state in ("deferred", "retrying"):
                    held.state = "enqueued"
                    self._push(held.envelope.channel, mid)
                    moved += 1
            if moved:
                self._lock.notify_all()
            return moved

    def take(self, channel: Channel, consumer: str, count: int, block: float) -> list[Lease]:
        with self._lock:
            queue = self._queues[channel]
            if not queue.waiting and block > 0:
                self._lock.wait(block)
            leases: list[Lease] = []
            while queue.waiting and len(leases) < count:
                entry, mid = queue.waiting.popleft()
                queue.leased[entry] = (mid, monotonic())
                leases.append(Lease(channel, 0, entry, mid))
            return leases

    def reclaim(self, channel: Channel, consumer: str, idle: float, count: int) -> list[Lease]:
        with self._lock:
            queue = self._queues[channel]
            now = monotonic()
            stale = [(entry, mid) for entry, (mid, at) in queue.leased.items() if now - at >= idle][:count]
            for entry, mid in stale:
                queue.leased[entry] = (mid, now)
            return [Lease(channel, 0, entry, mid, deliveries=2) for entry, mid in stale]

    def touch(self, leases: Sequence[Lease], consumer: str) -> None:
        with self._lock:
            now = monotonic()
            for lease in leases:
                queue = self._queues[lease.channel]
                if (held := queue.leased.get(lease.entry_id)) is not None:
                    queue.leased[lease.entry_id] = (held[0], now)

    def begin(self, lease: Lease, now: datetime) -> Begun:
        with self._lock:
            held = self._messages.get(lease.message_id)
            if held is None or held.state in FINAL_STATES or held.state in ("deferred", "retrying"):
                self._ack(lease)
                return Begun("done")
            key = held.envelope.key
            if key.kind == "resolved":
                verdict = self._all_clear_verdict(lease, key, now)
                if verdict is not None:
                    return verdict
            elif key.kind != "warning" and any(
                    message_id(MessageKey(key.incident_id, key.customer_id, "resolved"), c) in self._messages
                    for c in ("sms", "email")):
                # the all-clear is decided: an acknowledgement or update still waiting is stale
                self._finish(lease, "superseded", now, "resolved before it was sent")
                return Begun("supersede")
            verdict_name: Literal["send", "reconcile"] = \
                "reconcile" if held.state == "sending" or held.uncertain else "send"
            held.attempts += 1
            held.first_attempt_at = held.first_attempt_at or now
            held.state = "sending"
            self._event(lease.message_id, "sending", now, f"attempt {held.attempts}")
            return Begun(verdict_name, held.envelope, held.attempts, held.first_attempt_at)

    def _all_clear_verdict(self, lease: Lease, key: MessageKey, now: datetime) -> Begun | None:
        warning = MessageKey(key.incident_id, key.customer_id, "warning")
        states = {mid: self._messages[mid] for c in ("sms", "email")
                  if (mid := message_id(warning, c)) in self._messages}
        if any(h.state in ("sending", "enqueued", "retrying") for h in states.values()):
            return Begun("wait")  # it (or an SMS's email fallback) goes out or fails soon, and the all-clear after it
        if any(h.state in TOLD_STATES for h in states.values()):
            return None
        # waiting for the customer's morning: by then the problem is fixed, so neither is sent
        pending = [mid for mid, h in states.items() if h.state == "deferred"]
        if not pending:
            self._finish(lease, "skipped", now, "the warning never reached the customer")
            return Begun("skip")
        for mid in pending:
            self._messages[mid].state = "superseded"
            self._later.pop(mid, None)
            self._count(key.incident_id, "superseded")
            self._event(mid, "superseded", now, "resolved before it was sent")
        self._finish(lease, "superseded", now, "resolved before the warning was sent")
        return Begun("supersede")

    def settle(self, lease: Lease, state: str, now: datetime, result: SendResult | None = None) -> None:
        with self._lock:
            held = self._messages.get(lease.message_id)
            if held is not None and held.state not in FINAL_STATES:
                held.provider_id = (result.provider_id if result else None) or ""
                held.uncertain = False
                reason = result.reason if result else ""
                self._finish(lease, state, now, reason)
                if falls_back(state, result):
                    self._fall_back(held, now, f"the SMS {state}: {reason}")
            else:
                self._ack(lease)
            if held is not None and (state in ACCEPTED_STATES or held.state in ACCEPTED_STATES):
                key = held.envelope.key
                self._accepted[(key.incident_id, key.kind)].add(key.customer_id)

    def retry(self, lease: Lease, due: datetime, now: datetime, result: SendResult) -> None:
        self._reschedule(lease, due, now, result.reason, result.uncertain, "retrying")

    def release(self, lease: Lease, due: datetime, now: datetime, reason: str, *, quiet: bool = False) -> None:
        self._reschedule(lease, due, now, reason, False, "released", quiet)

    def _reschedule(self, lease: Lease, due: datetime, now: datetime, reason: str, uncertain: bool,
                    what: str, quiet: bool = False) -> None:
        with self._lock:
            held = self._messages.get(lease.message_id)
            if held is not None and held.state not in FINAL_STATES:
                # put back from 'sending' (reclaimed from a crashed worker, or refused by the channel):
                # an earlier try may have reached the provider, so the next one reconciles first
                held.uncertain = held.uncertain or uncertain or (held.state == "sending" and what == "released")
                held.state, held.reason = "retrying", reason
                self._later[lease.message_id] = due
                if not quiet:
                    self._event(lease.message_id, what, now, reason)
            self._ack(lease)

    def record_status(self, message_id_: str, status: str, now: datetime, detail: str = "") -> bool:
        key, _ = parse_message_id(message_id_)
        with self._lock:
            held = self._messages.get(message_id_)
            if held is None:
                return False
            if status not in ("delivered", "undelivered", "failed") or held.state in (status, "delivered"):
                return True
            if held.state not in ("sent", "sending", "retrying", "enqueued"):
                return True
            held.state, held.reason = status, detail
            self._count(key.incident_id, status)
            self._accepted[(key.incident_id, key.kind)].add(key.customer_id)
            self._event(message_id_, status, now, detail)
            if status != "delivered":
                self._fall_back(held, now, f"the SMS was {status}")
            return True

    def backlog(self, channel: Channel) -> int:
        with self._lock:
            queue = self._queues[channel]
            return len(queue.waiting) + len(queue.leased)

    def scheduled(self, before: datetime | None = None) -> int:
        with self._lock:
            return sum(1 for at in self._later.values() if before is None or at <= before)

    # -- under the lock ------------------------------------------------------------------------------

    def _push(self, channel: str, mid: str) -> None:
        self._queues[channel].waiting.append((f"{next(self._ids)}-0", mid))

    def _ack(self, lease: Lease) -> None:
        self._queues[lease.channel].leased.pop(lease.entry_id, None)

    def _finish(self, lease: Lease, state: str, now: datetime, reason: str) -> None:
        held = self._messages[lease.message_id]
        held.state, held.reason = state, reason
        self._count(held.envelope.key.incident_id, state)
        self._event(lease.message_id, state, now, reason)
        self._ack(lease)

    def _fall_back(self, held: _Held, now: datetime, why: str) -> None:
        """An SMS that could not reach the customer goes to their email, once, when it has one."""
        fallback = held.envelope.fallback
        if held.envelope.channel != "sms" or fallback is None or held.fallback_queued \
                or fallback.id in self._messages:
            return
        held.fallback_queued = True
        self._messages[fallback.id] = _Held(fallback, "enqueued")
        self._push("email", fallback.id)
        self._count(fallback.key.incident_id, "fallback")
        self._event(fallback.id, "fallback", now, why)
        self._lock.notify_all()

    def _count(self, incident_id: str, *stages: str) -> None:
        for stage in stages:
            self._funnels[incident_id][stage] += 1

    def _event(self, mid: str, state: str, now: datetime, detail: str = "") -> None:
        key, _ = parse_message_id(mid)
        self._history[(key.incident_id, key.customer_id)].append(
            {"id": mid, "state": state, "at": now, "detail": detail})
