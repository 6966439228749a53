"""Operators' silences in Redis, shared by the flow, the CLI and the web app.

Layout (default prefix "fw"): one hash, `fw:silences`, field = silence id, value = the silence's JSON
(`Silence.to_json`). One key, so every command touches one slot and the store works unchanged on a
Redis Cluster; silences are few (operators add them by hand), so reading the whole hash is cheap.
A silence stays until it has been over for `keep` (30 days by default); `all()` drops the older
ones (HDEL) as it reads, so the hash does not grow without end.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from forewarn.connectors.memory_silences import KEEP, by_start, check_silence, ended, ended_at
from forewarn.connectors.redis_keys import RedisClient
from forewarn.decisions import Silence


def silences_key(prefix: str) -> str:
    """The hash of every silence.

    >>> silences_key("fw")
    'fw:silences'
    """
    return f"{prefix}:silences"


class RedisSilenceStore:
    """`SilenceStore` over one Redis hash; any number of processes may share it. `add` replaces a silence
    of the same id."""

    def __init__(self, client: RedisClient, prefix: str = "fw", keep: timedelta = KEEP,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self.prefix = prefix
        self.keep = keep
        self.clock = clock
        self._key = silences_key(prefix)

    def add(self, silence: Silence) -> None:
        check_silence(silence)
        self.client.hset(self._key, silence.id, silence.to_json())  # type: ignore[arg-type]

    def all(self) -> list[Silence]:
        """Every silence, by start; those that ended more than `keep` ago are deleted first."""
        raw: dict[bytes, bytes] = self.client.hgetall(self._key)  # type: ignore[assignment]
        silences = [Silence.from_json(doc) for doc in raw.values()]
        horizon = self.clock() - self.keep
        old = [s.id for s in silences if ended(s, horizon)]
        if old:
            # No WATCH needed: only `expire` rewrites a silence, and never one that has already ended.
            self.client.hdel(self._key, *old)
        return by_start(s for s in silences if not ended(s, horizon))

    def active(self, at: datetime) -> list[Silence]:
        return [s for s in self.all() if s.active(at)]

    def expire(self, silence_id: str, at: datetime) -> bool:
        """End the silence at `at`; WATCH makes two operators expiring it at once agree on one end."""
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self._key)
                    raw = pipe.hget(self._key, silence_id)
                    changed = None if raw is None else ended_at(Silence.from_json(raw), at)  # type: ignore[arg-type]
                    if changed is None:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.hset(self._key, silence_id, changed.to_json())  # type: ignore[arg-type]
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue  # the hash changed between HGET and HSET (another silence, maybe): read again
