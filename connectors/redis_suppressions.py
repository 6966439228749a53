"""Suppressed addresses in Redis: one set per channel, checked before every send.

Layout (default prefix "fw"): `{fw:idx}:opt-out:sms` and `{fw:idx}:opt-out:email`, sets of
normalised addresses (see `forewarn.connectors.memory_suppressions.normalize_address`). They share
the customer index's hash tag, so on a Redis Cluster they live on the index's shard; the hyphen keeps
them apart from every trait's sets (a trait name is letters, digits and `_`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from forewarn.connectors import redis_keys as keys_of
from forewarn.connectors.memory_suppressions import normalize_address
from forewarn.connectors.redis_keys import RedisClient
from forewarn.records import Channel


def suppressed_key(prefix: str, channel: Channel) -> str:
    """The set of the addresses suppressed on `channel`.

    >>> suppressed_key("fw", "sms")
    '{fw:idx}:opt-out:sms'
    """
    return f"{keys_of.index_tag(prefix)}:opt-out:{channel}"


class RedisSuppressions:
    """`Suppressions` over Redis sets; any number of processes may share them."""

    def __init__(self, client: RedisClient, prefix: str = "fw") -> None:
        self.client = client
        self.prefix = prefix
        self._keys = {channel: suppressed_key(prefix, channel) for channel in get_args(Channel)}

    def suppress(self, channel: Channel, address: str) -> bool:
        """Add `address`; True when it was not suppressed before."""
        key = normalize_address(channel, address)
        return int(self.client.sadd(self._keys[channel], key)) == 1  # type: ignore[arg-type]

    def allow(self, channel: Channel, address: str) -> bool:
        """Remove `address`; True when it was suppressed."""
        key = normalize_address(channel, address)
        return int(self.client.srem(self._keys[channel], key)) == 1  # type: ignore[arg-type]

    def is_suppressed(self, channel: Channel, address: str) -> bool:
        key = normalize_address(channel, address)
        return bool(self.client.sismember(self._keys[channel], key))

    def are_suppressed(self, channel: Channel, addresses: Sequence[str]) -> list[bool]:
        """`is_suppressed` for many addresses in one round trip (SMISMEMBER), in the same order."""
        if not addresses:
            return []
        keys = [normalize_address(channel, a) for a in addresses]
        return [bool(found) for found in self.client.smismember(self._keys[channel], keys)]  # type: ignore[union-attr]

    def count(self, channel: Channel) -> int:
        return int(self.client.scard(self._keys[channel]))  # type: ignore[arg-type]
