"""The dataflow over files: late records and telemetry faults, without external services."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from bytewax.testing import run_main

from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import file_io
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


def test_a_surge_of_faulty_devices_spikes_for_their_model_and_firmware(tmp_path: Path) -> None:
    records = []
    devices = [(f"D-{i:03d}", f"R{i % 5}", ("R7000", "2.1.7") if i % 2 else ("X20", "1.0")) for i in range(100)]
    rng = random.Random(5)
    for step in range(2 * 48):  # two quiet days: every device reports every 30 minutes, a rare fault
        ts = T0 + timedelta(minutes=30 * step)
        for device, region, (model, firmware) in devices:
            fault = rng.random() < 0.01
            records.append({"type": "telemetry", "ts": ts.isoformat(), "device_id": device, "region": region,
                            "model": model, "firmware": firmware, "metric": "wan_down" if fault else "cpu_temp",
                            "value": 1.0 if fault else 55.0})
    burst_at = T0 + timedelta(days=2, hours=3)
    for minute in range(0, 60, 10):  # the firmware's devices start dropping their WAN link everywhere
        for device, region, (model, firmware) in devices:
            records.append({"type": "telemetry", "ts": (burst_at + timedelta(minutes=minute)).isoformat(),
                            "device_id": device, "region": region, "model": model, "firmware": firmware,
                            "metric": "wan_down" if model == "R7000" else "cpu_temp",
                            "value": 1.0 if model == "R7000" else 55.0})
    records.sort(key=lambda r: r["ts"])
    spikes, letters = _run(Settings(), _write(tmp_path / "telemetry.jsonl", records), tmp_path / "out")
    assert letters == []
    assert spikes and all(s["key"]["topic"] == "telemetry.wan_down" for s in spikes)
    assert all(datetime.fromisoformat(s["window_end"]) > burst_at for s in spikes), "quiet days must not fire"
    by_segment = [s for s in spikes if s.get("segment") == {"model": "R7000", "firmware": "2.1.7"}]
    assert by_segment and by_segment[0]["key"]["region"] == "*"
    assert min(datetime.fromisoformat(s["window_end"]) for s in by_segment) <= burst_at + timedelta(minutes=30)
    assert not [s for s in spikes if s.get("segment") == {"model": "X20", "firmware": "1.0"}]


def test_a_device_group_running_hot_is_a_value_anomaly_of_its_segment(tmp_path: Path) -> None:
    rng = random.Random(8)
    devices = [(f"D-{i:03d}", ("R7000", "2.1.7") if i % 2 else ("X20", "1.0")) for i in range(40)]
    hot_from = T0 + timedelta(days=2, hours=6)
    records = []
    for step in range(int(2.5 * 96)):  # every 15 minutes for two and a half days
        ts = T0 + timedelta(minutes=15 * step)
        for device, (model, firmware) in devices:
            hot = model == "R7000" and ts >= hot_from
            records.append({"type": "telemetry", "ts": ts.isoformat(), "device_id": device, "model": model,
                            "firmware": firmware, "metric": "cpu_temp",
                            "value": round((78.0 if hot else 55.0) + rng.gauss(0, 2), 1)})
    spikes, _ = _run(Settings(), _write(tmp_path / "temps.jsonl", records), tmp_path / "out")
    assert spikes, "a 23-degree rise of a model's mean temperature must alarm"
    assert {s["key"]["topic"] for s in spikes} == {"telemetry.cpu_temp"}
    assert all(s.get("segment") == {"model": "R7000", "firmware": "2.1.7"} for s in spikes)
    assert min(datetime.fromisoformat(s["window_start"]) for s in spikes) == hot_from
