"""Which silence mutes an incident (`silencing`), and how operators' matchers are read (`parse_matchers`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from forewarn.decisions import Silence
from forewarn.outreach.silencing import parse_matchers, silencing

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)
LABELS = {"topic": "wifi_drops", "region": "TX-453", "model": "R7000", "firmware": "2.1.7"}


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def silence(sid: str, start: float, end: float, *matchers: tuple[str, str]) -> Silence:
    return Silence(sid, matchers or (("topic", "wifi_drops"),), at(start), at(end), "maintenance", "ana")


# -- silencing ----------------------------------------------------------------------------------


def test_no_silence_silences_nothing() -> None:
    assert silencing([], LABELS, T0) is None


def test_a_silence_mutes_only_while_active() -> None:
    s = silence("S-1", 1, 3)
    assert [silencing([s], LABELS, at(h)) for h in (0, 1, 2.9, 3)] == [None, s, s, None]


def test_every_matcher_must_match() -> None:
    both = silence("S-1", 0, 4, ("topic", "wifi_drops"), ("region", "TX-453"))
    assert silencing([both], LABELS, T0) is both
    assert silencing([both], {**LABELS, "region": "TX-001"}, T0) is None
    assert silencing([both], {"topic": "wifi_drops"}, T0) is None, "a missing label does not match"
    assert silencing([silence("S-2", 0, 4, ("lot", "L-1"))], LABELS, T0) is None


def test_of_several_matching_the_one_ending_first_is_named() -> None:
    long = silence("S-long", -2, 8)
    short = silence("S-short", 0, 2, ("region", "TX-453"))
    tie = silence("S-a-tie", -1, 2, ("model", "R7000"))
    elsewhere = silence("S-elsewhere", 0, 1, ("region", "TX-001"))
    assert silencing([long, short, elsewhere], LABELS, T0) is short
    assert silencing([short, long], LABELS, T0) is short, "the order given does not matter"
    assert silencing([long, short, tie], LABELS, T0) is tie, "equal ends: the lowest id"
    assert silencing([long, short, tie], LABELS, at(3)) is long


def test_labels_may_be_any_mapping_and_any_iterable_of_silences() -> None:
    from types import MappingProxyType

    s = silence("S-1", 0, 1)
    assert silencing(iter([s]), MappingProxyType(LABELS), T0) is s


# -- parse_matchers -------------------------------------------------------------------------------


def test_items_and_comma_separated_items_are_read_in_order() -> None:
    assert parse_matchers(["topic=wifi_drops", "region=TX-453"]) == (("topic", "wifi_drops"), ("region", "TX-453"))
    assert parse_matchers(["topic=wifi_drops,region=TX-453", "lot=L-2211"]) == (
        ("topic", "wifi_drops"), ("region", "TX-453"), ("lot", "L-2211"))
    assert parse_matchers([" model = R7000 , firmware=2.1.7,"]) == (("model", "R7000"), ("firmware", "2.1.7"))


def test_every_built_in_label_and_an_extra_trait_is_accepted() -> None:
    names = ("topic", "region", "incident", "model", "firmware", "lot", "installed", "battery_backup", "t" + "x" * 31)
    parsed = parse_matchers([f"{name}=v{n}" for n, name in enumerate(names)])
    assert [name for name, _ in parsed] == list(names)


def test_a_value_keeps_everything_after_the_first_equals_sign() -> None:
    assert parse_matchers(["incident=INC-a=b"]) == (("incident", "INC-a=b"),)


@pytest.mark.parametrize(("texts", "problem"), [
    ([], "no matcher given"),
    (["", " , "], "no matcher given"),
    (["wifi_drops"], "'wifi_drops' is not name=value"),
    (["topic=wifi_drops", "region"], "'region' is not name=value"),
    (["topic="], "'topic=' has an empty value"),
    (["topic=  "], "has an empty value"),
    (["=wifi_drops"], "'' is not a label name"),
    (["Topic=wifi_drops"], "'Topic' is not a label name"),
    (["1st=x"], "'1st' is not a label name"),
    (["my-trait=x"], "'my-trait' is not a label name"),
    (["t" + "x" * 32 + "=v"], "is not a label name"),
    (["topic=a", "topic=b"], "'topic' is given twice \\(topic=a, topic=b\\)"),
    (["region=TX-1,region=TX-1"], "'region' is given twice"),
])
def test_refusals_say_what_is_wrong_and_show_an_example(texts: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_matchers(texts)
    assert str(caught.value).endswith("for example: topic=wifi_drops region=TX-453")
