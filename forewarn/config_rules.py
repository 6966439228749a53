"""The value rules of configuration, each failing with what is wrong and an example of right.

Used as pydantic validators by `forewarn.settings`, which prefixes every message with the
key path. They check form only (no network): reachability is checked at start-up.

>>> redis_url("http://localhost:6379")
Traceback (most recent call last):
...
ValueError: 'http://localhost:6379' is not a Redis URL: use redis://host:6379/0, rediss://host:6380/0 (TLS) or unix:///path/to/redis.sock
>>> e164_number("+15125550199")
'+15125550199'
>>> positive_duration("0s")
Traceback (most recent call last):
...
ValueError: must be positive, e.g. 30s (got '0s')
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from forewarn.durations import parse_duration

REDIS_SCHEMES = ("redis", "rediss", "unix")


def unless_none(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`rule` for an optional key: null stays null."""

    def check(value: Any) -> Any:
        return None if value is None else rule(value)

    return check
_REDIS_HINT = "use redis://host:6379/0, rediss://host:6380/0 (TLS) or unix:///path/to/redis.sock"


def tcp_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port: use a number from 1 to 65535, e.g. 587")
    return value


def _url_port(url: str, hint: str) -> None:
    try:
        urlsplit(url).port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        raise ValueError(f"{url!r} has a port that is not a number from 1 to 65535: {hint}") from None


def redis_url(url: str) -> str:
    """redis://, rediss:// (with a host) or unix:// (with a path)."""
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"{url!r} is not a Redis URL: {_REDIS_HINT}")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError(f"{url!r} names no socket path: use unix:///path/to/redis.sock")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{url!r} names no host: {_REDIS_HINT}")
    _url_port(url, _REDIS_HINT)
    return url


def redis_cluster_url(url: str) -> str:
    """A Redis Cluster node: reached over TCP, and database 0 (a cluster has no other).

    Never echoes `url`: it may come from the environment with a password in it.

    >>> redis_cluster_url("redis://node-1.internal:6379/1")
    Traceback (most recent call last):
    ...
    ValueError: a Redis Cluster has only database 0: end the URL with /0 (or no path), e.g. redis://node-1:6379/0
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        raise ValueError("a Redis Cluster is reached over TCP, not a unix socket: use redis://node-1:6379/0 "
                         "or rediss://node-1:6380/0 (any node; the client finds the others)")
    databases = {parts.path.strip("/") or "0", *parse_qs(parts.query).get("db", [])}
    if databases != {"0"}:
        raise ValueError("a Redis Cluster has only database 0: end the URL with /0 (or no path), "
                         "e.g. redis://node-1:6379/0")
    return url


def redis_cluster_prefix(prefix: str) -> str:
    """A key prefix without braces: on a cluster Forewarn puts the hash tags (`{...}`) in its keys itself,
    and a brace of the prefix would move them (see `forewarn.connectors.redis_keys`).

    >>> redis_cluster_prefix("{fw}")
    Traceback (most recent call last):
    ...
    ValueError: '{fw}' holds a brace: Forewarn hash-tags its keys on a cluster itself; use a plain prefix such as fw
    """
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"{prefix!r} holds a brace: Forewarn hash-tags its keys on a cluster itself; "
                         "use a plain prefix such as fw")
    return prefix


def http_url(url: str) -> str:
    """An absolute http(s) URL with a host."""
    parts = urlsplit(url)
    hint = "use an absolute URL such as https://api.example.com"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host: {hint}")
    _url_port(url, hint)
    return url


def broker_address(address: str) -> str:
    """host:port, as librdkafka's bootstrap.servers takes it."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not host:port (port 1-65535): use e.g. kafka-1.internal:9092")
    return address


def e164_number(number: str) -> str:
    """A valid phone number written in E.164 (+ country code and number, no spaces)."""
    import phonenumbers  # here, not at the top: a config without phone numbers should not pay for it

    hint = "write it in E.164, a + and the country code then the number, e.g. +15125550199"
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{number!r} is not a phone number: {hint}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{number!r} is not a valid phone number: {hint}")
    spelled = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if spelled != number:
        raise ValueError(f"{number!r} is not in E.164 form: write {spelled}")
    return number


def email_address(address: str) -> str:
    """A plain address (no display name); the domain need not resolve from here."""
    import email_validator  # here, not at the top: it is slow to import and most commands never need it

    try:
        email_validator.validate_email(address, check_deliverability=False, globally_deliverable=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"{address!r} is not an email address ({exc}): use e.g. alerts@example.com") from None
    return address


def hostname(host: str) -> str:
    if not host.strip() or any(c.isspace() or c in "/:@" for c in host):
        raise ValueError(f"{host!r} is not a host name: use e.g. smtp.example.com (the port goes in its own key)")
    return host


def messaging_service_sid(sid: str) -> str:
    if len(sid) != 34 or not sid.startswith("MG") or not all(c in "0123456789abcdefABCDEF" for c in sid[2:]):
        raise ValueError(f"{sid!r} is not a Messaging Service SID: it is MG and 32 hex digits "
                         "(Twilio Console > Messaging > Services)")
    return sid


def positive_duration(value: Any) -> timedelta:
    length = parse_duration(value)
    if length <= timedelta(0):
        raise ValueError(f"must be positive, e.g. 30s (got {value!r})")
    return length


def listen_port(value: int | None) -> int | None:
    """A TCP port to listen on; 0 or null: do not listen.

    >>> listen_port(0) is None, listen_port(9464)
    (True, 9464)
    """
    if value is None or value == 0:
        return None
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port: use a number from 1 to 65535, e.g. 9464, or 0 or null for none")
    return value


def listen_host(host: str) -> str:
    """An address to listen on: an IPv4 or IPv6 literal, or a host name (no port, no scheme).

    >>> listen_host("::1"), listen_host("0.0.0.0")
    ('::1', '0.0.0.0')
    """
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            return hostname(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an address to listen on: use e.g. 127.0.0.1, or 0.0.0.0 inside "
                             "a container (the port goes in its own key)") from None
    return host
