"""Times as the customer reads them: in their own time zone and their language's style.

Message contexts carry `LocalTime`s rather than text, so the renderer can spell a time in the
language of the template it picked: a Spanish speaker who gets an English fallback template
reads an English date, not a Spanish one inside English words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_time


@lru_cache(maxsize=64)
def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")  # a language CLDR does not know: English rather than no message


@lru_cache(maxsize=4096)  # an incident's messages share its times, zones and languages
def local_time(ts: datetime | None, timezone: str, language: str) -> str:
    """`ts` as a short local time, zone abbreviation and day; "" for None.

    CLDR's narrow and no-break spaces become plain ones: either would push an SMS out of the
    GSM-7 alphabet into UCS-2, which halves the characters per segment.

    >>> from datetime import UTC
    >>> ts = datetime(2026, 11, 17, 13, 15, tzinfo=UTC)
    >>> local_time(ts, "America/Chicago", "en"), local_time(ts, "America/Chicago", "es")
    ('7:15 AM CST, Nov 17', '7:15 CST, 17 nov')
    >>> local_time(ts, "America/New_York", "zz"), local_time(None, "UTC", "en")
    ('8:15 AM EST, Nov 17', '')
    """
    if ts is None:
        return ""
    local = ts.astimezone(ZoneInfo(timezone))
    locale = _locale(language)
    day = format_skeleton("MMMd", local, locale=locale)
    text = f"{format_time(local, 'short', locale=locale)} {local.strftime('%Z')}, {day}"
    return text.translate(_PLAIN_SPACES)


_PLAIN_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " ", "\u2009": " "})


@dataclass(frozen=True)
class LocalTime:
    """A moment to show a customer; renders (str) as `local_time`, false when there is no moment.

    >>> from datetime import UTC
    >>> since = LocalTime(datetime(2026, 11, 17, 13, 15, tzinfo=UTC), "America/Chicago", "es")
    >>> f"desde {since}", str(since.in_language("en")), bool(LocalTime(None, "UTC", "en"))
    ('desde 7:15 CST, 17 nov', '7:15 AM CST, Nov 17', False)
    """

    ts: datetime | None
    timezone: str
    language: str

    def __str__(self) -> str:
        return local_time(self.ts, self.timezone, self.language)

    def __bool__(self) -> bool:
        return self.ts is not None

    def in_language(self, language: str) -> LocalTime:
        return replace(self, language=language)
