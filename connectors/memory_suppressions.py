"""Suppressed addresses in process (the demo's twin of `redis_suppressions`), and how addresses are compared.

An address is kept in one normal form, so "+1 (512) 555-0100" replying STOP suppresses the
"+15125550100" the customer index holds, and "Ana@Example.com" the "ana@example.com":

- SMS: E.164 (`forewarn.records.normalize_phone`); a sender that is not a phone number (a short
  code, an alphanumeric id) is kept as given, trimmed;
- email: trimmed and lower-cased (the local part is case-sensitive by the letter of RFC 5321, but
  no mail provider treats it so, and a missed STOP costs more than a wrongly kept one).

>>> normalize_address("sms", "+1 512-555-0100"), normalize_address("email", " Ana@Example.COM ")
('+15125550100', 'ana@example.com')
>>> suppressions = InMemorySuppressions()
>>> suppressions.suppress("sms", "+1 512 555 0100"), suppressions.suppress("sms", "+15125550100")
(True, False)
>>> suppressions.is_suppressed("sms", "+15125550100"), suppressions.is_suppressed("email", "+15125550100")
(True, False)
>>> suppressions.allow("sms", "+15125550100"), suppressions.is_suppressed("sms", "+15125550100")
(True, False)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import get_args

from forewarn.records import Channel, normalize_phone


def normalize_address(channel: Channel, address: str) -> str:
    """The form `address` is stored and compared in (see the module doc)."""
    if channel not in get_args(Channel):
        raise ValueError(f"not a channel: {channel!r}")
    text = address.strip()
    if channel == "email":
        return text.lower()
    try:
        return normalize_phone(text)
    except ValueError:
        return text


class InMemorySuppressions:
    """`Suppressions` over one set per channel; safe to share between threads."""

    def __init__(self) -> None:
        self._sets: dict[str, set[str]] = {channel: set() for channel in get_args(Channel)}
        self._lock = threading.Lock()

    def suppress(self, channel: Channel, address: str) -> bool:
        """Add `address`; True when it was not suppressed before."""
        key = normalize_address(channel, address)
        with self._lock:
            fresh = key not in self._sets[channel]
            self._sets[channel].add(key)
        return fresh

    def allow(self, channel: Channel, address: str) -> bool:
        """Remove `address`; True when it was suppressed."""
        key = normalize_address(channel, address)
        with self._lock:
            found = key in self._sets[channel]
            self._sets[channel].discard(key)
        return found

    def is_suppressed(self, channel: Channel, address: str) -> bool:
        key = normalize_address(channel, address)
        with self._lock:
            return key in self._sets[channel]

    def are_suppressed(self, channel: Channel, addresses: Sequence[str]) -> list[bool]:
        """`is_suppressed` for many addresses at once, in the same order."""
        keys = [normalize_address(channel, a) for a in addresses]
        with self._lock:
            return [key in self._sets[channel] for key in keys]

    def count(self, channel: Channel) -> int:
        with self._lock:
            return len(self._sets[channel])
