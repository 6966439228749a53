"""A case delivered twice counts once; a topic's regions beyond the cap count in one bucket (issue 9, item 5).

Finding: the same case id delivered twice was counted twice. The demo scenario runs through
the full flow over files, once as generated and once with every case delivered a second
time (ten lines later, as a producer's retry would): the spikes and incidents are the single
delivery's, and each copy is one dead letter with a duplicate reason and its own line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, run_main

from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import file_io
from forewarn.settings import DetectionSettings, Settings
from tests.integration.replay_helpers import Run, read_jsonl, replay, small_scenario, sorted_docs

RETRY_AFTER = 10
"""A copy is delivered this many lines after its original."""


def _delivered_twice(events: list[dict[str, Any]]) -> tuple[list[bytes], dict[int, str]]:
    """Every case again RETRY_AFTER lines later; returns the lines and the 1-based line of each copy -> its id."""
    lines: list[bytes] = []
    copies: dict[int, str] = {}
    pending: list[tuple[int, dict[str, Any]]] = []
    for n, event in enumerate(events):
        lines.append(orjson.dumps(event))
        if event.get("type") == "case":
            pending.append((n + RETRY_AFTER, event))
        while pending and (pending[0][0] <= n or n == len(events) - 1):
            _, case = pending.pop(0)
            lines.append(orjson.dumps(case))
            copies[len(lines)] = case["id"]
    return lines, copies


@pytest.fixture(scope="module")
def once(tmp_path_factory: pytest.TempPathFactory) -> Run:
    spikes, incidents, letters = run = replay([orjson.dumps(e) for e in small_scenario().events],
                                               tmp_path_factory.mktemp("once"))
    assert spikes and incidents and letters == [], "the single delivery is the reference: it must find something"
    return run


def test_every_case_delivered_twice_counts_once_and_each_copy_is_a_duplicate_dead_letter(
        tmp_path: Path, once: Run) -> None:
    spikes, incidents, _ = once
    events = small_scenario().events
    assert all(e["id"] for e in events if e.get("type") == "case"), "the scenario's cases carry ids"
    lines, copies = _delivered_twice(events)

    twice_spikes, twice_incidents, letters = replay(lines, tmp_path)

    assert sorted(letter["origin"]["line"] for letter in letters) == sorted(copies)
    for letter in letters:
        assert letter["step"] == "dedup"
        assert letter["reason"].startswith("duplicate: case id already counted at ")
        assert letter["reason"].endswith("(within detection.dedup_horizon 1d)")
        assert orjson.loads(letter["raw"])["id"] == copies[letter["origin"]["line"]]
    assert sorted_docs(twice_spikes) == sorted_docs(spikes)
    assert sorted_docs(twice_incidents) == sorted_docs(incidents)


def test_a_topics_regions_beyond_the_cap_count_under_overflow_each_case_with_a_dead_letter(tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 16, tzinfo=UTC)
    regions = ["R1", "R2", "R3", "R4"]
    records = [{"ts": (t0 + timedelta(minutes=m)).isoformat(), "topic": "billing", "region": regions[m % 4],
                "id": f"C-{m}"} for m in range(0, 200)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    # one window length: 200 minutes of records fill a 1-hour ring, not the default 4-hour one
    settings = Settings(detection=DetectionSettings(max_regions_per_topic=2, warmup="1h", scales=()))
    io = file_io(settings, [path], tmp_path / "out", outreach=None)
    scored: list[bytes] = []
    io.windows = TestingSink(scored)
    run_main(build_flow(settings, io))

    letters = read_jsonl(tmp_path / "out" / "dead_letters.jsonl")
    capped = [r for r in records if r["region"] in ("R3", "R4")]
    assert sorted(letter["origin"]["line"] for letter in letters) == [int(r["id"][2:]) + 1 for r in capped]
    assert all(letter["step"] == "cap_regions" and letter["reason"].startswith("region capped: topic 'billing'")
               for letter in letters)
    windows = [orjson.loads(w) for w in scored]
    assert {w["region"] for w in windows} == {"*", "R1", "R2", "~overflow"}
    # A case a minute: every full hour holds 60, a quarter each in R1 and R2 and half in the bucket.
    full = t0 + timedelta(minutes=195)  # the last pane, 3:15 to 3:30, holds 5 minutes only
    windows = [w for w in windows if datetime.fromisoformat(w["window_end"]) <= full]
    assert windows, "full windows were scored"
    assert {w["observed"] for w in windows if w["region"] == "*"} == {60}
    assert {w["observed"] for w in windows if w["region"] == "~overflow"} == {30}


@pytest.mark.parametrize(("horizon", "per_hour", "copies_dead_lettered"), [("1d", 60, True), (None, 120, False)],
                         ids=["on", "off"])
def test_the_dedup_horizon_setting_turns_the_check_on_and_off(
        tmp_path: Path, horizon: str | None, per_hour: int, copies_dead_lettered: bool) -> None:
    t0 = datetime(2026, 11, 16, tzinfo=UTC)
    records = [{"ts": (t0 + timedelta(minutes=m)).isoformat(), "topic": "billing", "region": "R1", "id": f"C-{m}"}
               for m in range(200)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" + orjson.dumps(r) + b"\n" for r in records))
    settings = Settings(detection=DetectionSettings(dedup_horizon=horizon, warmup="1h", scales=()))
    io = file_io(settings, [path], tmp_path / "out", outreach=None)
    scored: list[bytes] = []
    io.windows = TestingSink(scored)
    run_main(build_flow(settings, io))

    letters = read_jsonl(tmp_path / "out" / "dead_letters.jsonl")
    assert sorted(letter["origin"]["line"] for letter in letters) == (
        list(range(2, 401, 2)) if copies_dead_lettered else [])
    full = t0 + timedelta(minutes=195)
    national = {w["observed"] for w in map(orjson.loads, scored)
                if w["region"] == "*" and datetime.fromisoformat(w["window_end"]) <= full}
    assert national == {per_hour}
