"""A case's `channel` says how the customer reached us; no value of it may cost the case (issue 9)."""

from __future__ import annotations

import orjson
import pytest

from forewarn.parsing import parse_record
from forewarn.records import Case, Origin


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
