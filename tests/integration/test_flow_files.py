"""The dataflow over files: late records and telemetry faults, without external services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from bytewax.testing import run_main

from flows.early_warning import build_flow
from flows.wiring import file_io
from forewarn.settings import Settings

T0 = datetime(2026, 11, 16, tzinfo=UTC)


def _write(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _run(settings: Settings, path: Path, out: Path) -> tuple[list[dict], list[dict]]:
    run_main(build_flow(settings, file_io(settings, [path], out, outreach=None)))
    read = lambda name: [orjson.loads(x) for x in (out / name).read_bytes().splitlines()]  # noqa: E731
    return read("spikes.jsonl"), read("dead_letters.jsonl")


def test_a_record_later_than_the_allowed_lateness_is_a_dead_letter_with_its_line(tmp_path: Path) -> None:
    records = [{"ts": (T0 + timedelta(minutes=m)).isoformat(), "topic": "billing", "region": "R1"}
               for m in range(0, 180, 5)]
    records.append({"ts": (T0 + timedelta(minutes=30)).isoformat(), "topic": "billing", "region": "R1"})
    records.append({"ts": (T0 + timedelta(minutes=175)).isoformat(), "topic": "billing", "region": "R1"})
    path = _write(tmp_path / "events.jsonl", records)
    _, letters = _run(Settings(), path, tmp_path / "out")
    assert len(letters) == 1
    assert letters[0]["step"] == "count_panes" and letters[0]["reason"].startswith("late:")
    assert "allowed_lateness" in letters[0]["reason"]
    assert letters[0]["origin"] == {"source": str(path), "line": 37}


def test_telemetry_faults_count_as_their_own_topic_and_spike_per_region(tmp_path: Path) -> None:
    records = []
    for minute in range(0, 2 * 24 * 60, 30):  # two quiet days: one fault every 30 minutes somewhere
        ts = T0 + timedelta(minutes=minute)
        region = f"R{minute // 30 % 5}"
        records.append({"type": "telemetry", "ts": ts.isoformat(), "device_id": f"D-{minute}",
                        "metric": "wan_down", "value": 1.0, "region": region})
        records.append({"type": "telemetry", "ts": ts.isoformat(), "device_id": f"D-{minute}",
                        "metric": "cpu_temp", "value": 61.5, "region": region})
    burst_at = T0 + timedelta(days=2, hours=3)
    records += [{"type": "telemetry", "ts": (burst_at + timedelta(seconds=20 * i)).isoformat(),
                 "device_id": f"B-{i}", "metric": "wan_down", "value": 1.0, "region": "R3"} for i in range(40)]
    records.sort(key=lambda r: r["ts"])
    spikes, letters = _run(Settings(), _write(tmp_path / "telemetry.jsonl", records), tmp_path / "out")
    assert letters == []
    keys = {(s["key"]["topic"], s["key"]["region"]) for s in spikes}
    assert keys == {("telemetry.wan_down", "R3")}
    first = min(datetime.fromisoformat(s["window_end"]) for s in spikes)
    assert burst_at < first <= burst_at + timedelta(minutes=30)
