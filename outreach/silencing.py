"""Which silence mutes an incident, and how an operator writes a silence's matchers.

A silence names labels an incident must carry, each with one value (`topic=wifi_drops region=TX-453`),
all of them required. The names are the incident's own labels (topic, region, incident) and the traits
of its segment (model, firmware, lot, installed), plus any configured extra trait: every name of the
form `^[a-z][a-z0-9_]{0,31}$` is accepted, because which extra traits exist is configuration, and a
store of silences should not be refused for a trait that a later configuration adds.

>>> from datetime import UTC, datetime, timedelta
>>> from forewarn.decisions import Silence
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> matchers = parse_matchers(["topic=wifi_drops", "region=TX-453,model=R7000"])
>>> matchers
(('topic', 'wifi_drops'), ('region', 'TX-453'), ('model', 'R7000'))
>>> short = Silence("S-1", matchers[:2], at, at + timedelta(hours=1), "maintenance", "ana")
>>> long = Silence("S-2", matchers[:1], at, at + timedelta(hours=4), "known issue", "bo")
>>> labels = {"topic": "wifi_drops", "region": "TX-453", "model": "R7000"}
>>> silencing([long, short], labels, at + timedelta(minutes=30)).id
'S-1'
>>> silencing([long, short], labels, at + timedelta(hours=2)).id
'S-2'
>>> silencing([long, short], {"topic": "no_internet"}, at) is None
True
>>> parse_matchers(["topic=wifi_drops", "topic=no_internet"])
Traceback (most recent call last):
...
ValueError: matcher name 'topic' is given twice (topic=wifi_drops, topic=no_internet): a silence takes one value \
per name; for example: topic=wifi_drops region=TX-453
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from forewarn.decisions import Silence

LABELS = ("topic", "region", "incident", "model", "firmware", "lot", "installed")
"""The built-in names a matcher may use; any configured extra trait may be named too."""
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""What any matcher name looks like: a built-in label or an extra trait (see `targeting.extra_traits`)."""
EXAMPLE = "topic=wifi_drops region=TX-453"


def silencing(silences: Iterable[Silence], labels: Mapping[str, str], at: datetime) -> Silence | None:
    """The silence that mutes an incident with `labels` at `at`, or None.

    When several match, the one that ends first is named (then the lowest id): it is the one an
    operator would see lifted first, so the reason recorded is the one that matters soonest.
    """
    plain = dict(labels)
    found = [s for s in silences if s.active(at) and s.matches(plain)]
    return min(found, key=lambda s: (s.ends_at, s.id), default=None)


def parse_matchers(texts: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`name=value` items (several may share one item, comma-separated) as matchers, in the order given.

    Raises ValueError, saying what is wrong with an example, for an item that is not `name=value`,
    a name that is not a label, an empty value, a name given twice, or no matcher at all.
    """
    matchers: dict[str, str] = {}
    for text in texts:
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue  # "a=1,,b=2" or a trailing comma: nothing was meant there
            name, value = _split(item)
            if name in matchers:
                raise ValueError(f"matcher name {name!r} is given twice ({name}={matchers[name]}, {name}={value}): "
                                 f"a silence takes one value per name; for example: {EXAMPLE}")
            matchers[name] = value
    if not matchers:
        raise ValueError(f"no matcher given: name at least one label as name=value; for example: {EXAMPLE}")
    return tuple(matchers.items())


def _split(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    name, value = name.strip(), value.strip()
    if not sep:
        raise ValueError(f"matcher {item!r} is not name=value; for example: {EXAMPLE}")
    if not NAME.fullmatch(name):
        raise ValueError(f"matcher {item!r}: {name!r} is not a label name; use {', '.join(LABELS)} or an extra "
                         f"trait (lower-case letters, digits and _, starting with a letter); for example: {EXAMPLE}")
    if not value:
        raise ValueError(f"matcher {item!r} has an empty value; for example: {EXAMPLE}")
    return name, value
