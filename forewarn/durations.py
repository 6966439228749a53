"""Durations as operators write them: 30s, 5m, 1h, 1d, or combinations such as 1h30m."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse a duration; numbers are seconds.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("5m").total_seconds()
    300.0
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    ValueError: duration 'soon' is not understood: use a number with a unit, such as 30s, 5m, 1h or 1d
    >>> parse_duration("-5m")
    Traceback (most recent call last):
    ...
    ValueError: duration '-5m' is negative: it must be positive, such as 30s, 5m, 1h or 1d
    """
    if isinstance(text, timedelta):
        length = text
    elif isinstance(text, int | float):
        length = timedelta(seconds=float(text))
    else:
        length = _parse_text(text)
    if length < timedelta(0):
        # Said plainly: "not understood" sent operators hunting for a unit typo.
        raise ValueError(f"duration {text!r} is negative: it must be positive, such as 30s, 5m, 1h or 1d")
    return length


def _parse_text(text: str) -> timedelta:
    cleaned = text.strip().replace(" ", "")
    sign = -1 if cleaned.startswith("-") else 1
    cleaned = cleaned.removeprefix("-")
    pos, seconds = 0, 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(cleaned):
        raise ValueError(
            f"duration {text!r} is not understood: use a number with a unit, such as 30s, 5m, 1h or 1d"
        )
    return timedelta(seconds=sign * seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest spelling of a whole-second duration.

    >>> format_duration(timedelta(minutes=90))
    '1h30m'
    """
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
