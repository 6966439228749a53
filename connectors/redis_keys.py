"""Where Forewarn's Redis keys live: one layout, fit for a single Redis and for Redis Cluster.

Redis Cluster hashes a key to one of 16,384 slots and refuses a command (SINTER, MULTI/EXEC,
a Lua script, ...) whose keys lie in different slots. A key's slot is taken from its hash tag,
the text between its first `{` and the next `}`, when it has one. So every group of keys that
one command or transaction touches shares a tag, and everything else is left untagged so that
it spreads over the cluster (`prefix` is "fw" by default):

- customer index, docs: `fw:cust:{id}`, untagged: the docs spread over every shard;
- customer index, sets: `{fw:idx}:{attribute}:{value}`, `{fw:idx}:all`, `{fw:idx}:geo`, tagged
  `fw:idx`: any segment's SINTER (or SINTERCARD) runs on one shard; the addresses that said STOP,
  `{fw:idx}:opt-out:{channel}`, live beside them (`connectors.redis_suppressions`);
- outbox (`connectors.redis_outbox`), tagged per shard `{fw:out:s}`, where an incident's shard s is
  the CRC-32 of its id modulo `delivery.shards`: the streams `{fw:out:s}:q:sms` and `:q:email`, the
  schedule `{fw:out:s}:later`, each message's state `{fw:out:s}:m:{INC|CU|KIND|CHANNEL}`, each
  pair's history `{fw:out:s}:h:{INC|CU}`, and per incident the sets `{fw:out:s}:decided:{INC}:{kind}`
  and `{fw:out:s}:accepted:{INC}:{kind}` and the funnel `{fw:out:s}:funnel:{INC}`. Every Lua script
  touches the keys of one shard only: deciding a batch of an incident's messages (the decided mark
  and the stream entry together), settling, rescheduling, a status callback and its email fallback
  each run on one node, while more shards spread the incidents over the cluster;
- incident store `fw:incident:{id}`, contact log `fw:contacts:{customer}` and a sender identity's
  pace `fw:rate:{identity}`: untagged, each command touches one key.

Any segment may combine any traits, so all of the index's sets share one tag, and so one shard
(they are ids only; the docs, most of the memory, spread). A prefix holding `{` or `}` would
change the tags; settings refuse one on a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import redis
from redis.cluster import ClusterPipeline, RedisCluster

RedisClient: TypeAlias = redis.Redis | RedisCluster
"""What the Redis stores take: a client of one Redis or of a Redis Cluster."""


def is_cluster(client: Any) -> bool:
    """Whether `client` talks to a Redis Cluster (or is a pipeline of one)."""
    return isinstance(client, RedisCluster | ClusterPipeline)


# -- the customer index ------------------------------------------------------------------------


def doc_key(prefix: str, customer_id: str) -> str:
    """A customer's JSON doc; untagged, so the docs spread over the cluster.

    >>> doc_key("fw", "CU-42")
    'fw:cust:CU-42'
    """
    return f"{prefix}:cust:{customer_id}"


def index_tag(prefix: str) -> str:
    """The hash tag of every set of the index: one segment's SINTER stays on one shard.

    >>> index_tag("fw")
    '{fw:idx}'
    """
    return "{" + prefix + ":idx}"


def set_key(prefix: str, attribute: str, value: str) -> str:
    """The set of the customers carrying `value` of `attribute`.

    >>> set_key("fw", "region", "TX-453")
    '{fw:idx}:region:TX-453'
    """
    return f"{index_tag(prefix)}:{attribute}:{value}"


def all_key(prefix: str) -> str:
    """The set of every customer id."""
    return f"{index_tag(prefix)}:all"


def geo_key(prefix: str) -> str:
    """The GEO set of the customers with a location."""
    return f"{index_tag(prefix)}:geo"


# -- the other stores ----------------------------------------------------------------------------


def incident_key(prefix: str, incident_id: str) -> str:
    return f"{prefix}:incident:{incident_id}"


def contacts_key(prefix: str, customer_id: str) -> str:
    return f"{prefix}:contacts:{customer_id}"


# -- commands over keys of many slots --------------------------------------------------------------


def mget(client: RedisClient, keys: Sequence[bytes | str]) -> list[Any]:
    """MGET of keys that may lie in many slots: on a cluster one MGET per slot (not atomic, and
    never needed to be: each doc stands alone), pipelined per node by redis-py."""
    if not keys:
        return []
    if isinstance(client, RedisCluster):
        return client.mget_nonatomic(list(keys))
    return client.mget(keys)  # type: ignore[return-value]


def set_many(pipe: Any, mapping: Mapping[str, bytes | str]) -> None:
    """Queue SETs of keys that may lie in many slots on `pipe`: one MSET on a single Redis; on a
    cluster one SET each, which the cluster pipeline sends to each key's node."""
    if not mapping:
        return
    if is_cluster(pipe):
        for key, value in mapping.items():
            pipe.set(key, value)
    else:
        pipe.mset(mapping)
