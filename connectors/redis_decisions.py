"""The decision layer's verdicts and audit trail in Redis: what `forewarn incidents` lists and inhibition reads.

Layout (`prefix` is "fw" by default; every key untagged, and no command touches two keys, so it
works unchanged on a Redis Cluster: a save is a non-transactional pipeline of one-key commands):

- `{prefix}:decision:{incident_id}`: string, the `Decision` JSON; expires `keep` after its last save;
- `{prefix}:decisions`: sorted set, incident id -> `decided_at` in epoch seconds, for `recent`
  (newest first); a save trims the entries decided more than `keep` before the decision it saves;
- `{prefix}:decisions:open`: set of the ids whose latest decision has `open` true (a save adds or removes);
- `{prefix}:audit:{incident_id}`: list of `AuditEntry` JSON, oldest first; expires `keep` after its last entry.

The sorted set and the open set outlive some of their decisions (the decision key expires on its own,
and nothing in Redis tells the sets): `recent` and `open_decisions` skip an id whose decision is gone
and remove it. The sets themselves expire `keep` after the last save, when every decision is gone too.
Trimming goes by the saved decision's own time, not the clock, so a replay of last year's data still lists.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import redis

from forewarn.connectors.memory_decisions import newest_first
from forewarn.connectors.redis_keys import RedisClient, mget
from forewarn.decisions import AuditEntry, Decision


class RedisDecisionStore:
    """`DecisionStore` in Redis or a Redis Cluster (layout in the module doc).

    Parameters
    ----------
    client
        A client of one Redis or of a Redis Cluster.
    prefix
        The first part of every key (`redis.prefix`).
    keep
        How long a decision and its audit trail stay after their last change.
    """

    def __init__(self, client: RedisClient, prefix: str = "fw", keep: timedelta = timedelta(days=30)):
        self.client = client
        self.prefix = prefix
        self.keep = keep
        self._recent = f"{prefix}:decisions"
        self._open = f"{prefix}:decisions:open"

    def _decision_key(self, incident_id: str) -> str:
        return f"{self.prefix}:decision:{incident_id}"

    def _audit_key(self, incident_id: str) -> str:
        return f"{self.prefix}:audit:{incident_id}"

    def save(self, decision: Decision) -> None:
        """Keep `decision` (replacing its incident's), list it by `decided_at`, and add it to or drop it
        from the open set."""
        self.client.set(self._decision_key(decision.incident_id), decision.to_json(), ex=self.keep)
        self._list(decision)

    def _list(self, decision: Decision) -> None:
        """The side keys: the listing by time and the open set (idempotent, so a retry or a race is harmless)."""
        incident_id = decision.incident_id
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self._recent, {incident_id: decision.decided_at.timestamp()})
        pipe.zremrangebyscore(self._recent, "-inf", f"({(decision.decided_at - self.keep).timestamp()}")
        pipe.expire(self._recent, self.keep)
        if decision.open:
            pipe.sadd(self._open, incident_id)
            pipe.expire(self._open, self.keep)
        else:
            pipe.srem(self._open, incident_id)
        pipe.execute()

    def change(self, incident_id: str, apply: Callable[[Decision | None], Decision | None]) -> Decision | None:
        """WATCH the decision's one key, apply, and write it back only if nobody wrote it meanwhile (else try
        again); the listings follow with `save`'s side keys, which are idempotent."""
        key = self._decision_key(incident_id)
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    changed = apply(Decision.from_json(raw) if raw is not None else None)  # type: ignore[arg-type]
                    if changed is None:
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    pipe.set(key, changed.to_json(), ex=self.keep)
                    pipe.execute()
                except redis.WatchError:
                    continue
            self._list(changed)
            return changed

    def load(self, incident_id: str) -> Decision | None:
        raw = self.client.get(self._decision_key(incident_id))
        return Decision.from_json(raw) if raw is not None else None  # type: ignore[arg-type]

    def recent(self, limit: int = 100) -> list[Decision]:
        """At most `limit` decisions, newest first; ids whose decision has expired are skipped and removed."""
        found: list[Decision] = []
        stale: list[bytes] = []
        start = 0
        # Page through the sorted set until `limit` live decisions are found: expired ones leave gaps.
        while len(found) < limit:
            ids: list[bytes] = self.client.zrevrange(self._recent, start, start + limit - 1)  # type: ignore[assignment]
            if not ids:
                break
            start += len(ids)
            for incident_id, raw in zip(ids, self._raw_decisions(ids), strict=True):
                if raw is None:
                    stale.append(incident_id)
                elif len(found) < limit:
                    found.append(Decision.from_json(raw))
        if stale:
            self.client.zrem(self._recent, *stale)
        return found

    def open_decisions(self) -> list[Decision]:
        """Decisions whose incident is still open, newest first; expired ids are removed from the open set."""
        ids = sorted(self.client.smembers(self._open))  # type: ignore[arg-type]
        decisions: list[Decision] = []
        stale: list[bytes] = []
        for incident_id, raw in zip(ids, self._raw_decisions(ids), strict=True):
            if raw is None:
                stale.append(incident_id)
                continue
            decision = Decision.from_json(raw)
            # A save cut short can leave a closed decision in the set: skip it, but leave the set to the
            # next save of that incident (removing it here could race a save that reopens it).
            if decision.open:
                decisions.append(decision)
        if stale:
            self.client.srem(self._open, *stale)
        return newest_first(decisions)

    def add_audit(self, entry: AuditEntry) -> None:
        key = self._audit_key(entry.incident_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, entry.to_json())
        pipe.expire(key, self.keep)
        pipe.execute()

    def audit(self, incident_id: str) -> list[AuditEntry]:
        """The incident's approvals and holds, oldest first."""
        raws: list[bytes] = self.client.lrange(self._audit_key(incident_id), 0, -1)  # type: ignore[assignment]
        return [AuditEntry.from_json(raw) for raw in raws]

    def _raw_decisions(self, ids: list[bytes]) -> list[bytes | None]:
        """The decision JSON of each id, None where it has expired; one MGET (per slot on a cluster)."""
        return mget(self.client, [self._decision_key(i.decode()) for i in ids])
