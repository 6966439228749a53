"""At send time, the decision layer's word again: a message queued before an operator held the incident, or
before a silence or its resolution, is withheld instead of sent.

The dispatcher asks `Withholding.reason(incident_id, kind)` after `begin`, as it asks about opt-outs (a
resolution withholds nothing: the all-clear logic orders those messages); the
decision (and the silences) are read at most once a second, so a burst of one incident's messages costs one read.
An all-clear is never withheld: it goes to whoever the warning reached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from forewarn.decisions import Decision, Silence
from forewarn.interfaces import DecisionStore, Outbox, SilenceStore
from forewarn.outreach.gate import why_not
from forewarn.outreach.silencing import silencing
from forewarn.records import MessageKey, MessageKind


@dataclass
class Withholding:
    decisions: DecisionStore
    silences: SilenceStore | None = None
    outbox: Outbox | None = None
    """Where the covering of overlapping incidents is recorded (`Outbox.covered`, `Outbox.warning_fate`)."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    ttl: float = 1.0
    _cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reason(self, incident_id: str, kind: MessageKind) -> str | None:
        """Why the message must not go now; None when it may."""
        if kind == "resolved":
            return None
        decision: Decision | None = self._cached(f"decision:{incident_id}",
                                                 lambda: self.decisions.load(incident_id))
        if decision is None:
            return None  # decided without a gate (a flow without the playbook)
        # a resolution is not a reason: warnings already queued go, and the all-clear follows them (or supersedes
        # the ones still waiting for a morning), as `DeliveryQueue.begin` orders it
        still = replace(decision, open=True)
        if not still.messages_customers:
            return why_not(still)
        if self.silences is not None:
            store = self.silences
            now = self.clock()
            silences: list[Silence] = self._cached("silences", lambda: store.active(now))
            if (silence := silencing(silences, dict(decision.labels), now)) is not None:
                return f"silenced by {silence.id}"
        return None

    def carried_by(self, key: MessageKey) -> tuple[Literal["covered", "wait"], str] | None:
        """For a warning an overlapping incident's warning carries: "covered" once that warning went (this one
        is not sent), "wait" while it may still go; None when this one must go itself (nothing carries it, or
        the carrying warning will not go: held, silenced, expired, failed, opted out)."""
        if key.kind != "warning" or self.outbox is None:
            return None
        outbox = self.outbox
        found: Mapping[str, str] = self._cached(f"covered:{key.incident_id}", lambda: outbox.covered(key.incident_id))
        by = found.get(key.customer_id)
        if by is None:
            return None
        fate = outbox.warning_fate(by, key.customer_id)
        if fate == "told":
            return "covered", by
        return ("wait", by) if fate == "pending" else None

    def _cached(self, key: str, load: Callable[[], Any]) -> Any:
        """`load()`, read again at most once per `ttl` seconds: a burst of messages costs one read, not one each."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
        value = load()
        with self._lock:
            self._cache[key] = (now, value)
            if len(self._cache) > 10_000:
                self._cache.clear()  # a bound, not a policy: the next reads refill it
        return value
