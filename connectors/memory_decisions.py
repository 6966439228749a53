"""The decision layer's verdicts and audit trail in process (the demo's twin of `redis_decisions`).

>>> from datetime import UTC, datetime
>>> from forewarn.decisions import Decision
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> store = InMemoryDecisionStore()
>>> store.save(Decision("INC-1", "no_internet", "TX-453", "high", (), "local", (), "notify", "pending", at))
>>> [d.incident_id for d in store.recent()], [d.approval for d in store.open_decisions()]
(['INC-1'], ['pending'])
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from forewarn.decisions import AuditEntry, Decision


def newest_first(decisions: list[Decision]) -> list[Decision]:
    """By `decided_at`, newest first; ties by incident id, descending (the order Redis's ZREVRANGE
    gives equal scores, so both stores list the same)."""
    return sorted(decisions, key=lambda d: (d.decided_at.timestamp(), d.incident_id), reverse=True)


class InMemoryDecisionStore:
    """`DecisionStore` over dicts; safe to share between threads. Nothing expires: a process's life is short."""

    def __init__(self) -> None:
        self._decisions: dict[str, Decision] = {}
        self._audit: dict[str, list[AuditEntry]] = {}
        self._lock = threading.Lock()

    def save(self, decision: Decision) -> None:
        """Keep `decision`, replacing the one its incident had."""
        with self._lock:
            self._decisions[decision.incident_id] = decision

    def load(self, incident_id: str) -> Decision | None:
        with self._lock:
            return self._decisions.get(incident_id)

    def change(self, incident_id: str, apply: Callable[[Decision | None], Decision | None]) -> Decision | None:
        with self._lock:
            changed = apply(self._decisions.get(incident_id))
            if changed is not None:
                self._decisions[incident_id] = changed
            return changed

    def recent(self, limit: int = 100) -> list[Decision]:
        """At most `limit` decisions, newest first (see `newest_first`)."""
        if limit <= 0:
            return []
        with self._lock:
            decisions = list(self._decisions.values())
        return newest_first(decisions)[:limit]

    def open_decisions(self) -> list[Decision]:
        """Decisions whose incident is still open, newest first."""
        with self._lock:
            decisions = [d for d in self._decisions.values() if d.open]
        return newest_first(decisions)

    def add_audit(self, entry: AuditEntry) -> None:
        with self._lock:
            self._audit.setdefault(entry.incident_id, []).append(entry)

    def audit(self, incident_id: str) -> list[AuditEntry]:
        """The incident's approvals and holds in the order they were added."""
        with self._lock:
            return list(self._audit.get(incident_id, ()))
