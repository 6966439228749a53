"""One record's timestamp can neither stop the flow nor blind a topic (issue 9, item 1).

The demo scenario runs through the full flow over files: clean, and with cases dated 0001
(as the first line), 9999, 2100 and a day ahead mixed in (one at a time and all together). The second run completes,
those cases are dead letters with a time-bound reason and their line, and the spikes and
incidents are the clean run's. Before the time bounds, the 9999 case crashed the flow in
the windowing, and the 2100 and day-ahead cases made the rest of their topic late.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from bytewax.testing import run_main

from forewarn.detectors.topic import TopicDetector
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import file_io
from forewarn.records import PaneCases, WindowVerdict
from forewarn.settings import Settings
from tests.integration.replay_helpers import WALL_CLOCK, Run, read_jsonl, replay, small_scenario, sorted_docs

"""The injected wall clock (a replay does not read it: injected so no run depends on the machine's)."""

OUTLIERS = {  # line (1-based, in the file with them) -> ts
    1: "0001-01-01T00:00:00Z",
    2001: "9999-12-31T23:59:00Z",
    3001: "2100-01-01T00:00:00Z",
    4001: "2026-11-18T12:00:00Z",  # a day ahead of the stream at that point (Nov 17)
}


def _outlier(ts: str) -> bytes:
    return orjson.dumps({"type": "case", "id": f"C-BAD-{ts[:4]}", "ts": ts, "customer_id": "CU-00001",
                         "topic": "no_internet", "region": "IL-031", "text": "internet down"})


def _with_outliers(clean: list[bytes], outliers: dict[int, str]) -> list[bytes]:
    lines = list(clean)
    for line, ts in sorted(outliers.items()):
        lines.insert(line - 1, _outlier(ts))
    return lines


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], Run]:
    """The reference: the scenario as generated, through the same flow."""
    clean = [orjson.dumps(event) for event in small_scenario().events]
    run = replay(clean, tmp_path_factory.mktemp("clean"))
    spikes, incidents, letters = run
    assert spikes and incidents and letters == [], "the clean run is the reference: it must find something"
    return clean, run


@pytest.mark.parametrize("outliers", [{line: ts} for line, ts in OUTLIERS.items()] + [
    {1: "2100-01-01T00:00:00Z"}, OUTLIERS], ids=[ts[:10] for ts in OUTLIERS.values()] + ["2100-first", "all"])
def test_cases_dated_0001_9999_2100_or_a_day_ahead_are_dead_letters_and_change_nothing(
        tmp_path: Path, clean_run: tuple[list[bytes], Run], outliers: dict[int, str]) -> None:
    clean, (spikes, incidents, _) = clean_run

    dirty_spikes, dirty_incidents, dirty_letters = replay(_with_outliers(clean, outliers), tmp_path / "dirty")

    assert sorted(letter["origin"]["line"] for letter in dirty_letters) == sorted(outliers)
    assert all(letter["step"] == "time_bounds" and letter["reason"].startswith("time: ")
               for letter in dirty_letters)
    assert sorted_docs(dirty_spikes) == sorted_docs(spikes)
    assert sorted_docs(dirty_incidents) == sorted_docs(incidents)


def test_a_stateful_step_that_raises_dead_letters_its_pane_and_the_flow_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault in a detector (not a bad record) must not stop the flow: the pane becomes a dead letter."""
    t0 = datetime(2026, 11, 16, tzinfo=UTC)
    broken_pane = t0 + timedelta(hours=1)
    process = TopicDetector.process
    judged: list[datetime] = []

    def failing(self: TopicDetector, index: int, cases: dict[str, PaneCases]) -> list[WindowVerdict]:
        if self.pane_start(index) == broken_pane:
            raise ZeroDivisionError("float division by zero")
        judged.append(self.pane_start(index))
        return process(self, index, cases)

    monkeypatch.setattr(TopicDetector, "process", failing)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(
        orjson.dumps({"ts": (t0 + timedelta(minutes=m)).isoformat(), "topic": "billing", "region": "R1"}) + b"\n"
        for m in range(0, 180, 5)))
    settings = Settings()
    io = file_io(settings, [events], tmp_path / "out", outreach=None)
    io.now = lambda: WALL_CLOCK
    run_main(build_flow(settings, io))

    letters = read_jsonl(tmp_path / "out" / "dead_letters.jsonl")
    assert len(letters) == 1
    letter = letters[0]
    assert letter["step"] == "detect"
    assert "'billing'" in letter["reason"] and "ZeroDivisionError: float division by zero" in letter["reason"]
    assert letter["origin"] == {"source": f"pane billing at {broken_pane.isoformat()}"}
    assert max(judged) == t0 + timedelta(minutes=165), "the panes after the failing one were still judged"
