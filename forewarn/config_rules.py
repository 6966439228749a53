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
from urllib.parse import urlsplit

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
