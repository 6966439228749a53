"""The send ledger in Redis: one key per (incident, customer, kind), claimed before sending.

`{fw:ledger:{incident}}:{customer}|{kind}` (for the default prefix "fw") holds "pending" while
a send is in flight (set with NX and a TTL), then the final outcome as JSON without a TTL.
Customers sent a message are also added to `{fw:ledger:{incident}}:sent:{kind}`. Both share
the incident's hash tag, so `record` writes them in one MULTI/EXEC on Redis Cluster too, and
different incidents spread over the shards (`forewarn.connectors.redis_keys`).

Trade-off of the pending TTL: if the process dies between `claim` and `record`, nobody
knows whether the message went out. The pending claim is then treated as "maybe sent":
the key is not claimable again (and the customer is not re-sent to) until the claim
expires after `claim_ttl`. A short TTL risks a duplicate message after a crash; a long one
delays the retry of a send that never happened. One hour favours never texting twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson

from forewarn.connectors import redis_keys as keys_of
from forewarn.connectors.ledger_records import PENDING, outcome_doc, utc_now
from forewarn.connectors.redis_keys import RedisClient
from forewarn.records import Channel, MessageKey, MessageKind, SendResult

# Delete the key only while it still holds the pending marker: never a final record.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLedger:
    """`Ledger` over Redis keys: SET NX claims, Lua-guarded release, JSON outcomes."""

    def __init__(self, client: RedisClient, prefix: str = "fw", claim_ttl: timedelta = timedelta(hours=1),
                 *, clock: Callable[[], datetime] = utc_now) -> None:
        if claim_ttl <= timedelta(0):
            raise ValueError("claim_ttl must be positive")
        self.client = client
        self.prefix = prefix
        self.claim_ttl = claim_ttl
        self.clock = clock
        # redis-py types register_script for Redis only; RedisCluster has it too (EVALSHA goes to the key's node).
        self._release = client.register_script(_RELEASE_LUA)  # type: ignore[misc]

    def _key(self, key: MessageKey) -> str:
        return keys_of.ledger_key(self.prefix, key)

    def _sent_key(self, incident_id: str, kind: MessageKind) -> str:
        return keys_of.sent_key(self.prefix, incident_id, kind)

    def claim(self, key: MessageKey) -> bool:
        """Reserve `key`; False when it was already sent, failed for good, or is being sent."""
        ttl_ms = max(1, int(self.claim_ttl.total_seconds() * 1000))
        return bool(self.client.set(self._key(key), PENDING, nx=True, px=ttl_ms))

    def release(self, key: MessageKey) -> None:
        """Drop a pending claim (after a retryable failure); a recorded outcome is never removed."""
        self._release(keys=[self._key(key)], args=[PENDING])

    def record(self, key: MessageKey, channel: Channel, outcome: SendResult) -> None:
        """Store the final outcome (no TTL) and, when sent, add the customer to the recipients."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._key(key), outcome_doc(channel, outcome, self.clock()))  # plain SET clears the TTL
        if outcome.ok:
            pipe.sadd(self._sent_key(key.incident_id, key.kind), key.customer_id)
        pipe.execute()

    def recipients(self, incident_id: str, kind: MessageKind) -> set[str]:
        members = self.client.smembers(self._sent_key(incident_id, kind))
        return {m.decode() if isinstance(m, bytes) else m for m in members}  # type: ignore[union-attr]

    def outcome(self, key: MessageKey) -> dict[str, Any] | str | None:
        """The recorded outcome of `key`, "pending" while claimed, or None."""
        raw = self.client.get(self._key(key))
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return PENDING if text == PENDING else dict(orjson.loads(text))
