"""Recovery: a flow stopped and resumed from its snapshot finds what one run over everything finds."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

from forewarn.demo.scenario import generate
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import file_io
from forewarn.settings import Settings


def _spikes(out: Path) -> set[tuple[str, str, str, int]]:
    lines = (out / "spikes.jsonl").read_bytes().splitlines() if (out / "spikes.jsonl").exists() else []
    return {(s["key"]["topic"], s["key"]["region"], s["window_start"], s["observed"])
            for s in map(orjson.loads, lines)}


def test_resumed_flow_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    scenario = generate(seed=11, customers=4_000, regions=12)
    lines = [orjson.dumps(e) for e in scenario.events]
    split = scenario.start + timedelta(days=1, hours=15)  # inside the regional outage
    first = [line for line, e in zip(lines, scenario.events, strict=True)
             if datetime.fromisoformat(e["ts"]) < split]
    settings = Settings()

    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"\n".join(lines) + b"\n")
    run_main(build_flow(settings, file_io(settings, [whole], tmp_path / "once", outreach=None)))
    expected = _spikes(tmp_path / "once")
    assert expected, "the scenario should produce spikes"

    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    events = tmp_path / "events.jsonl"  # the same path in both runs: the source resumes by line
    out = tmp_path / "resumed"
    events.write_bytes(b"\n".join(first) + b"\n")
    config = RecoveryConfig(str(recovery))
    run_main(build_flow(settings, file_io(settings, [events], out, outreach=None)),
             epoch_interval=timedelta(seconds=0), recovery_config=config)
    before = _spikes(out)
    # The lines already read are overwritten with garbage: a resumed source must skip them
    # (no dead letters), and the detectors must come back warm from the snapshot.
    garbage = [b"{not json" for _ in first]
    events.write_bytes(b"\n".join(garbage + lines[len(first):]) + b"\n")
    run_main(build_flow(settings, file_io(settings, [events], out, outreach=None)),
             epoch_interval=timedelta(seconds=0), recovery_config=config)
    after = _spikes(out)

    assert before and before < after
    assert after == expected
    assert not (out / "dead_letters.jsonl").read_bytes(), "the resumed source re-read lines it had done"
