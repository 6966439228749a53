"""Start-up checks of the edges that are not senders (those check themselves: `TwilioSender.check`,
`SmtpSender.check`; Kafka: `connectors.kafka.check_brokers`).

Each check answers within its timeout and raises ConfigError naming the setting to fix, so
`forewarn run` stops in a second with a sentence instead of a traceback or a silent hang.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError

from forewarn.connectors.redis_keys import RedisClient
from forewarn.settings import ConfigError

_REDIS_CREDENTIALS = "redis://USER:PASSWORD@host:6379/0 (keep the password in FOREWARN_REDIS_URL, not the YAML)"


def redis_location(url: str) -> str:
    """Where a Redis URL points, without its credentials (safe for messages and logs).

    >>> redis_location("redis://forewarn:s3cret@cache.internal:6380/2")
    'cache.internal:6380'
    >>> redis_location("unix:///run/redis.sock")
    '/run/redis.sock'
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.hostname}:{port}"


def check_redis(client: RedisClient, setting: str, location: str) -> None:
    """PING (which also proves the credentials): raise ConfigError naming `setting` when Redis is
    down, silent or refuses us, or is a cluster node reached by a single-node client. Give `client`
    short socket timeouts: they are this check's."""
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise _refusal(exc, setting, location) from None
    if not isinstance(client, RedisCluster) and _cluster_mode(client):
        raise ConfigError(f"Redis at {location} is a node of a Redis Cluster, reached with a single-node client "
                          "(it would fail on every key another node holds): set redis.cluster: true")


def connect_cluster(url: str, setting: str, **options: Any) -> RedisCluster:
    """A Redis Cluster client for `url` (from `setting`). It reads the cluster's slot map as it is made,
    so a node that is down, refuses us or is no cluster fails here: raised as ConfigError naming `setting`."""
    location = redis_location(url)
    try:
        return RedisCluster.from_url(url, **options)
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc  # from_url wraps the first node's error
        if "cluster mode is not enabled" in str(cause).lower():
            raise ConfigError(f"Redis at {location} is not a cluster node: set redis.cluster: false, or point "
                              f"{setting} at a node of the cluster") from None
        raise _refusal(cause, setting, location, "CLUSTER SLOTS") from None


def _refusal(exc: BaseException, setting: str, location: str, command: str = "PING") -> ConfigError:
    """What a failed call to Redis means for the operator, as a ConfigError naming `setting`."""
    if isinstance(exc, ClusterDownError | SlotNotCoveredError):
        return ConfigError(f"Redis Cluster at {location} does not serve every hash slot ({type(exc).__name__}): "
                           f"repair the cluster (redis-cli --cluster check) or fix {setting}")
    if isinstance(exc, redis.AuthenticationError):
        return ConfigError(f"Redis at {location} refused the credentials in {setting}: give the Forewarn user "
                           f"and its password, e.g. {_REDIS_CREDENTIALS}")
    if isinstance(exc, redis.ResponseError):
        # An ACL user without the rights Forewarn needs answers NOPERM, not an auth error.
        return ConfigError(f"Redis at {location} refused {command} ({str(exc).split(' ', 1)[0]}): grant the user "
                           f"in {setting} access to Forewarn's keys and commands")
    return ConfigError(f"Redis at {location} did not answer ({type(exc).__name__}): start Redis or fix {setting}")


def _cluster_mode(client: redis.Redis) -> bool:
    """Whether this Redis runs in cluster mode (CLUSTER INFO answers); any refusal counts as no."""
    try:
        client.execute_command("CLUSTER INFO")
    except (redis.RedisError, OSError):
        return False  # "cluster support disabled", or a user without the right: not ours to judge here
    return True
