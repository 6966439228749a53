"""When each customer was last messaged, in Redis: what the per-customer daily cap counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from forewarn.connectors.redis_keys import RedisClient, contacts_key


class RedisContactLog:
    """Message times per customer in a sorted set `{prefix}:contacts:{customer}` (score: epoch seconds)."""

    def __init__(self, client: RedisClient, prefix: str = "fw", keep: timedelta = timedelta(days=7)):
        self.client = client
        self.prefix = prefix
        self.keep = keep

    def add(self, customer_id: str, at: datetime, key: str) -> None:
        name = contacts_key(self.prefix, customer_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(name, {key: at.timestamp()})
        pipe.zremrangebyscore(name, "-inf", (at - self.keep).timestamp())
        pipe.expire(name, self.keep)
        pipe.execute()

    def count_since(self, customer_id: str, since: datetime) -> int:
        return int(self.client.zcount(contacts_key(self.prefix, customer_id), since.timestamp(), "+inf"))  # type: ignore[arg-type]

    def counts_since(self, customer_ids: Sequence[str], since: datetime, batch: int = 1_000) -> list[int]:
        counts: list[int] = []
        for start in range(0, len(customer_ids), batch):
            pipe = self.client.pipeline(transaction=False)
            for customer_id in customer_ids[start:start + batch]:
                pipe.zcount(contacts_key(self.prefix, customer_id), since.timestamp(), "+inf")
            counts.extend(int(n) for n in pipe.execute())
        return counts
