"""Values that used to cost a valid case or stop parsing (issue 9): a case's `channel`, times with no UTC datetime."""

from __future__ import annotations

import orjson
import pytest

from forewarn.parsing import parse_record
from forewarn.records import Case, DeadLetter, Origin


@pytest.mark.parametrize(("channel", "kept"), [
    ("phone", "phone"), (None, None), (7, "7"), (2.5, "2.5"), (True, "True"),
    (["phone", "chat"], None), ({"kind": "chat"}, None),
])
def test_any_channel_value_keeps_the_case(channel: object, kept: str | None) -> None:
    raw = orjson.dumps({"ts": "2026-11-20T14:03:11Z", "topic": "no_internet", "region": "TX-453", "id": "C-1",
                        "channel": channel})
    case = parse_record(raw, Origin("cases", 0, 1))
    assert isinstance(case, Case), getattr(case, "reason", case)
    assert case.channel == kept and case.topic == "no_internet"


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_with_no_utc_datetime_is_a_dead_letter_not_a_crash(ts: str) -> None:
    raw = orjson.dumps({"ts": ts, "topic": "no_internet", "region": "TX-453"})
    letter = parse_record(raw, Origin("cases", 0, 3))
    assert isinstance(letter, DeadLetter) and letter.origin == Origin("cases", 0, 3)
    assert letter.reason == f"ts: timestamp {ts} falls outside the years 1 to 9999 in UTC"
