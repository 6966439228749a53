"""Property-based tests of the parsing edge: whatever arrives, a record or a dead letter, never a crash.

Hypothesis drives `parse_record` with arbitrary bytes, arbitrary JSON and valid cases under
arbitrary extra fields; the properties are that nothing raises, that every input comes out
either as a record of a kind its source accepts or as a dead letter with a reason and the
input's origin, and that a valid case is never lost to a field nobody asked about.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forewarn.parsing import parse_record
from forewarn.records import Case, Customer, DeadLetter, Origin, Telemetry
from forewarn.sources import RECORD_KINDS, RecordKind, SourceKinds

ORIGIN = Origin("cases", 0, 42)
KINDS: dict[type, RecordKind] = {Case: "case", Telemetry: "telemetry", Customer: "customer"}
SOURCES = [SourceKinds.only("case"), SourceKinds.only("telemetry"), SourceKinds.only("customer"),
           SourceKinds.mixed_file()]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
"""Any JSON value orjson can write."""

record_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from([*RECORD_KINDS, "Feature", "FeatureCollection", "complaint"]) | st.text(max_size=6),
        "ts": st.text(max_size=30) | st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
        "id": st.text(max_size=10),
        "topic": st.text(max_size=12) | st.none(),
        "region": st.text(max_size=12) | st.integers(),
        "text": st.text(max_size=40),
        "metric": st.text(max_size=8),
        "value": json_values,
        "device_id": st.text(max_size=8),
        "phone": st.text(max_size=16),
    },
).flatmap(lambda base: st.dictionaries(st.text(max_size=6), json_values, max_size=3).map(lambda extra: extra | base))
"""Dicts shaped like records, with plausible and implausible values: the part of JSON space that reaches
validation rather than stopping at the type check."""


def _judged(result: object, raw: bytes, kinds: SourceKinds) -> None:
    if isinstance(result, DeadLetter):
        assert result.reason and result.origin == ORIGIN and result.step == "parse"
        assert result.raw == raw[: len(result.raw)], "a dead letter keeps the input (or its head) as it came"
        return
    assert type(result) in KINDS, f"parse returned {type(result).__name__}"
    assert KINDS[type(result)] in kinds.accepts, "a record is read only as a kind its source accepts"


@FUZZ
@given(raw=st.binary(max_size=512), kinds=st.sampled_from(SOURCES))
def test_arbitrary_bytes_are_a_record_or_a_dead_letter(raw: bytes, kinds: SourceKinds) -> None:
    _judged(parse_record(raw, ORIGIN, kinds), raw, kinds)


@FUZZ
@given(value=json_values, kinds=st.sampled_from(SOURCES))
def test_arbitrary_json_is_a_record_or_a_dead_letter(value: object, kinds: SourceKinds) -> None:
    raw = json.dumps(value).encode()
    _judged(parse_record(raw, ORIGIN, kinds), raw, kinds)


@FUZZ
@given(record=record_like, kinds=st.sampled_from(SOURCES))
def test_record_shaped_json_is_a_record_or_a_dead_letter(record: dict[str, object], kinds: SourceKinds) -> None:
    raw = json.dumps(record).encode()
    _judged(parse_record(raw, ORIGIN, kinds), raw, kinds)


@FUZZ
@given(
    ts=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
    extra=st.dictionaries(st.text(max_size=8).filter(lambda k: k not in Case.model_fields and k != "type"),
                          json_values, max_size=4),
    mixed=st.booleans(),
)
def test_a_valid_case_is_never_lost_to_its_time_zone_or_extra_fields(ts: datetime, offset_minutes: int,
                                                                      extra: dict[str, object], mixed: bool) -> None:
    local = ts.astimezone(timezone(timedelta(minutes=offset_minutes)))  # the same instant, written elsewhere
    record = extra | {"ts": local.isoformat(), "topic": "no_internet", "region": "TX-453", "id": "C-1"}
    raw = json.dumps(record).encode()
    kinds = SourceKinds.mixed_file() if mixed else SourceKinds.only("case")
    case = parse_record(raw, ORIGIN, kinds)
    assert isinstance(case, Case), getattr(case, "reason", case)
    assert case.ts == ts and case.ts.utcoffset() == timedelta(0)
    assert (case.topic, case.region, case.id) == ("no_internet", "TX-453", "C-1")

