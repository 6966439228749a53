"""Valid records are not lost at the edge (issue 9): a UTF-8 byte order mark, or an unrelated
extra field holding a number beyond a double's range, no longer dead-letters a case; the fallback
that reads them admits nothing else orjson refuses."""

from __future__ import annotations

import orjson
import pytest

from forewarn.parsing import parse_record
from forewarn.records import Case, DeadLetter, Origin

CASE = {"type": "case", "id": "C-1", "ts": "2026-11-20T14:03:11Z", "topic": "no_internet", "region": "TX-453"}
TELEMETRY = {"type": "telemetry", "ts": "2026-11-20T14:03:00Z", "device_id": "D-9", "metric": "wan_down",
             "value": 1.0, "region": "TX-453", "model": "R7000", "firmware": "2.1.7"}


def test_a_leading_utf8_byte_order_mark_is_not_a_reason_to_drop_a_case() -> None:
    case = parse_record(b"\xef\xbb\xbf" + orjson.dumps(CASE), Origin("cases"))
    assert isinstance(case, Case) and case.id == "C-1"


def test_an_unrelated_extra_number_beyond_a_double_keeps_the_case_and_its_text() -> None:
    raw = orjson.dumps(CASE)[:-1] + b', "score": 1e400, "ratio": 0.5}'
    case = parse_record(raw, Origin("cases"))
    assert isinstance(case, Case) and case.model_extra == {"score": "1e400", "ratio": 0.5}


def test_a_huge_number_where_a_number_is_needed_is_still_refused_by_field() -> None:
    raw = orjson.dumps(TELEMETRY).replace(b'"value":1.0', b'"value":1e400')
    letter = parse_record(raw, Origin("telemetry"))
    assert isinstance(letter, DeadLetter) and letter.reason.startswith("value: ")


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": "\\ud800"}', b"\xef\xbb\xbf\xff"])
def test_the_fallback_admits_nothing_orjson_refuses_for_other_reasons(raw: bytes) -> None:
    letter = parse_record(raw, Origin("cases"))
    assert isinstance(letter, DeadLetter) and letter.reason.startswith("malformed JSON: ")
