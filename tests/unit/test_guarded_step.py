"""A stateful step that raises turns its item into a dead letter naming step, key, exception and origin."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from forewarn.batches import RawBatch
from forewarn.detectors.time_bounds import TimeBounds
from forewarn.flows.partitions import PartitionRules
from forewarn.flows.steps import Guarded, item_origin, pane_origin
from forewarn.records import Case, DeadLetter, Origin
from forewarn.sources import SourceKinds

ORIGIN = Origin("cases", partition=2, offset=4711)
PHONE = "+15125550142"


def _case(ts: datetime = datetime(2026, 11, 17, 10, tzinfo=UTC)) -> Case:
    return Case(id="C-1", ts=ts, region="TX-453", topic="no_internet", customer_id="CU-1",
                text=f"call me on {PHONE}")


def _fails(state: int | None, item: tuple[Origin, Case]) -> tuple[int, list[str]]:
    raise OverflowError("date value out of range")


def _counts(state: int | None, item: tuple[Origin, Case]) -> tuple[int, list[str]]:
    return (state or 0) + 1, [item[1].region]


def test_a_raising_mapper_yields_a_dead_letter_naming_step_key_exception_and_origin(
        caplog: pytest.LogCaptureFixture) -> None:
    guarded = Guarded("detect", _fails, lambda item: item[1].topic or "", item_origin)
    with caplog.at_level(logging.ERROR):
        state, letter = guarded(7, (ORIGIN, _case()))
    assert state == 7, "the key keeps its state"
    assert isinstance(letter, DeadLetter)
    assert letter.step == "detect" and letter.origin == ORIGIN
    assert "'no_internet'" in letter.reason and "OverflowError: date value out of range" in letter.reason
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1
    for part in ("detect", "no_internet", "OverflowError", "date value out of range", "4711", "'partition': 2"):
        assert part in logged[0]
    assert PHONE not in caplog.text and PHONE.encode() not in letter.raw, "no record content in logs or letter"
    assert orjson.loads(letter.raw)["error"].startswith("OverflowError")


def test_a_mapper_that_works_is_passed_through_unchanged() -> None:
    guarded = Guarded("count", _counts, lambda item: "k", item_origin)
    assert guarded(None, (ORIGIN, _case())) == (1, ["TX-453"])
    assert guarded(1, (ORIGIN, _case())) == (2, ["TX-453"])


def test_describing_a_bad_item_cannot_raise_in_turn() -> None:
    def broken(item: object) -> Any:
        raise KeyError("no such field")

    guarded = Guarded("incidents", _fails, broken, broken)
    _, letter = guarded(None, (ORIGIN, _case()))
    assert isinstance(letter, DeadLetter) and letter.origin == Origin("incidents")


def test_a_pane_is_named_by_its_key_and_start() -> None:
    origin = pane_origin(timedelta(minutes=15))(("no_internet", 0, {}))
    assert origin == Origin("pane no_internet at 2000-01-03T00:00:00+00:00")


def test_records_are_keyed_by_their_input_partition() -> None:
    assert RawBatch("cases", 2).key == "cases#2"
    assert RawBatch("/data/events.jsonl", None, by_line=True).key == "/data/events.jsonl"


def _rules(now: datetime, live: bool) -> PartitionRules:
    return PartitionRules({"cases": SourceKinds.only("case")}, 64 * 1024, TimeBounds(), live=live,
                          slide=timedelta(minutes=15), shards=2, now=lambda: now)


def _read(logic: Any, cases: list[Case], offset: int = 4711, end: bool = False) -> tuple[list[Any], list[DeadLetter]]:
    """The cases the partition step passes on (by offset) and its dead letters."""
    raw: list[tuple[int | None, bytes] | DeadLetter] = [
        (offset + n, case.model_dump_json().encode()) for n, case in enumerate(cases)]
    routed, _ = logic.on_item(RawBatch("cases", 2, raw, end=end))
    passed = sorted(c.position for kind, item in routed if kind == "shard" for c in item[1].cases)
    return passed, [item for kind, item in routed if kind == "letter"]


def test_check_times_dead_letters_an_outlier_with_its_reason_and_origin() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    logic = _rules(now, live=True)(None)
    assert _read(logic, [_case(now)]) == ([4711], [])
    passed, [letter] = _read(logic, [_case(datetime(2100, 1, 1, tzinfo=UTC))])
    assert passed == []
    assert letter.step == "time_bounds" and letter.origin == ORIGIN and "ahead of the wall clock" in letter.reason


def test_a_replay_gate_refuses_what_it_still_holds_at_the_end_and_resumes_from_its_snapshot() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    rules = _rules(now, live=False)
    logic = rules(None)
    t0 = datetime(2026, 11, 17, tzinfo=UTC)
    assert _read(logic, [_case(t0 + timedelta(minutes=m)) for m in range(5)], offset=0) == ([0, 1, 2, 3, 4], [])
    assert _read(logic, [_case(t0 + timedelta(days=1))]) == ([], [])  # held: one record cannot push the clock
    resumed = rules(logic.snapshot())
    passed, [letter] = _read(resumed, [], end=True)
    assert passed == [] and letter.origin == ORIGIN and "ahead of its stream" in letter.reason


def test_a_partition_that_carries_no_cases_gives_the_detection_shards_no_clock() -> None:
    """A customers topic (or the NWS poller) says nothing about case time: in a replay it would hold every
    pane open until it ended, and the poller never ends."""
    now = datetime(2026, 11, 30, tzinfo=UTC)
    rules = PartitionRules({"customers": SourceKinds.only("customer"), "cases": SourceKinds.only("case")}, 64 * 1024,
                           TimeBounds(), live=False, slide=timedelta(minutes=15), shards=2, now=lambda: now)
    customer = b'{"id": "CU-1", "region": "TX-453"}'
    routed, _ = rules(None).on_item(RawBatch("customers", 0, [(1, customer)]))
    assert [kind for kind, _ in routed] == ["record"]
    routed, _ = rules(None).on_item(RawBatch("cases", 0, [(1, _case(now).model_dump_json().encode())]))
    assert sorted(kind for kind, _ in routed) == ["shard", "shard"], "a cases partition tells every shard"
