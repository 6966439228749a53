"""The fast path for cases (`forewarn.parsing.fast_case`) never decides differently from full validation.

Whatever the fast path accepts, `Case.model_validate` accepts with the same values; what it
declines goes to full validation, which then writes the dead letter. Hypothesis drives both
with timestamps in many shapes (offsets, fractions, leap seconds, spaces, week dates,
non-ASCII digits, years 1 and 9999) and fields of the wrong type.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from forewarn.parsing import fast_case
from forewarn.records import Case

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
well_formed = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                           timezones=offsets | st.just(UTC)).map(datetime.isoformat)
ODD_TIMES = [
    "2026-11-20T14:03:11Z", "2026-11-20T14:03:11.123Z", "2026-11-20T14:03:11.1234567Z", "2026-11-20 14:03:11Z",
    "2026-11-20t14:03:11z", "2026-11-20T14:03:60Z", "2026-11-20T24:00:00Z", "2026-W47-5T14:03:11Z",
    "20261120T140311Z", "2026-11-20T14:03:11", "2026-11-20T14:03:11+0100", "2026-11-20T14:03:11+01",
    "2026-11-20T14:03:11,5Z", "٢٠٢٦-11-20T14:03:11Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    "2026-02-30T10:00:00Z", "1763647391", "+2026-11-20T14:03:11Z", "2026-11-20T14:03:11.Z",
    "2026-11-20T14:03:11+24:00", "2026-11-20T14:03:11-00:00", "2026-11-20T14:03:11.000000+05:30",
    "2026-11-20T14:03:11.+01:00", "2026-11-20T14:03:11.1a2Z", "2026-11-20T14:03:11+00:99", "2026-11-20T14:03:11+05:60",
    "2026-11-20T14:03:11+24:00", "2026-11-20T14:03:11+2a:00",
]
odd = st.sampled_from(ODD_TIMES)
timestamps = well_formed | odd | st.text(max_size=30) | st.integers() | st.none()
text_or_not = st.none() | st.text(max_size=12) | st.integers() | st.just("") | st.lists(st.text(max_size=3))

cases = st.fixed_dictionaries(
    {"ts": timestamps},
    optional={"region": text_or_not, "topic": text_or_not, "id": text_or_not, "customer_id": text_or_not,
              "text": text_or_not, "channel": text_or_not, "extra": st.integers()},
)


def _full(data: dict[str, Any]) -> Case | None:
    try:
        return Case.model_validate(data)
    except ValidationError:
        return None


@FUZZ
@given(cases)
@example({"ts": "2026-11-20T14:03:11+01:00", "region": "TX-453", "topic": "billing", "id": "C-1"})
@example({"ts": "2026-11-20T14:03:11Z", "region": "TX-453", "topic": ""})
def test_what_the_fast_path_accepts_full_validation_accepts_with_the_same_values(data: dict[str, Any]) -> None:
    fast = fast_case(data)
    if fast is None:
        return  # declined: full validation decides, and writes the dead letter if it refuses
    case = _full(data)
    assert case is not None, f"the fast path accepted what full validation refuses: {data!r}"
    assert fast == (case.ts, case.topic, case.region, case.id, case.customer_id, case.text)
    assert fast[0].tzinfo is UTC


@pytest.mark.parametrize("ts", ODD_TIMES)
def test_every_odd_timestamp_gets_the_same_answer_on_both_paths(ts: str) -> None:
    """Each odd shape beside a valid case, every run (Hypothesis found "...:11.Z": the fast path took it)."""
    data = {"ts": ts, "region": "TX-453", "topic": "billing"}
    fast, case = fast_case(data), _full(data)
    assert fast is None or (case is not None and fast[0] == case.ts), f"{ts!r}: fast {fast}, full {case}"


@FUZZ
@given(well_formed, st.text(min_size=1, max_size=12), st.none() | st.text(min_size=1, max_size=12))
def test_the_fast_path_takes_every_plain_case(ts: str, region: str, topic: str | None) -> None:
    """Plain RFC 3339 cases stay on the fast path (they are nearly all the traffic)."""
    if ts[:4] == "0001" or ts[:4] == "9999":
        return  # may fall outside UTC's years at their offset: full validation says so
    assert fast_case({"ts": ts, "region": region, "topic": topic}) is not None
