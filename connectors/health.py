"""Start-up checks of the edges that are not senders (those check themselves: `TwilioSender.check`,
`SmtpSender.check`; Kafka: `connectors.kafka.check_brokers`).

Each check answers within its timeout and raises ConfigError naming the setting to fix, so
`forewarn run` stops in a second with a sentence instead of a traceback or a silent hang.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

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


def check_redis(client: redis.Redis, setting: str, location: str) -> None:
    """PING (which also proves the credentials): raise ConfigError naming `setting` when Redis is
    down, silent or refuses us. Give `client` short socket timeouts: they are this check's."""
    try:
        client.ping()
    except redis.AuthenticationError:
        raise ConfigError(f"Redis at {location} refused the credentials in {setting}: give the Forewarn user "
                          f"and its password, e.g. {_REDIS_CREDENTIALS}") from None
    except redis.ResponseError as exc:
        # An ACL user without the rights Forewarn needs answers NOPERM, not an auth error.
        raise ConfigError(f"Redis at {location} refused PING ({str(exc).split(' ', 1)[0]}): grant the user "
                          f"in {setting} access to Forewarn's keys and commands") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise ConfigError(f"Redis at {location} did not answer ({type(exc).__name__}): start Redis or fix "
                          f"{setting}") from None
