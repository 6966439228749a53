"""`forewarn detect` on data nobody on the project wrote: Boston's 311 requests of 2015."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.connectors.csv_cases import BOSTON_311, read_csv_cases

BOSTON = Path(__file__).resolve().parents[3] / "shared" / "data" / "complaints" / "boston311_2015"
FILES = ["Heat - Excessive  Insufficient.csv", "Misc. Snow Complaint.csv"]

pytestmark = pytest.mark.skipif(not BOSTON.is_dir(), reason="shared Boston 311 data is not beside the checkout")


@pytest.fixture(scope="module")
def boston_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = [r for name in FILES for r in read_csv_cases(BOSTON / name, BOSTON_311)]
    records.sort(key=lambda r: r["ts"])
    path = tmp_path_factory.mktemp("boston") / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _detect(args: list[str]) -> list[dict]:
    result = CliRunner().invoke(app, ["detect", *args])
    assert result.exit_code == 0, result.output
    output = Path(args[args.index("--output") + 1])
    return [orjson.loads(line) for line in output.read_bytes().splitlines()]


def test_spikes_have_the_documented_shape_and_find_the_known_events(boston_jsonl: Path, tmp_path: Path) -> None:
    spikes = _detect(["--input", str(boston_jsonl), "--output", str(tmp_path / "spikes.jsonl")])
    for spike in spikes:
        assert set(spike["key"]) == {"topic", "region"}
        start, end = datetime.fromisoformat(spike["window_start"]), datetime.fromisoformat(spike["window_end"])
        # the default window (1h) or one of the longer scales judged beside it (2h, 4h), whichever decided
        assert spike["window_start"].endswith("Z") and end - start in {timedelta(hours=h) for h in (1, 2, 4)}
        assert spike["observed"] > spike["expected"] >= 0 and spike["score"] > 0
    days = {(s["key"]["topic"], s["window_start"][:10]) for s in spikes}
    # The arctic cold snap of 2015-01-08 and the snow complaints after the Jan 26-27 blizzard (data README).
    assert ("Heat - Excessive  Insufficient", "2015-01-08") in days
    assert ("Misc. Snow Complaint", "2015-01-28") in days or ("Misc. Snow Complaint", "2015-01-27") in days
    quiet_summer = [s for s in spikes if s["key"]["topic"] == "Misc. Snow Complaint" and "2015-06" in s["window_start"]]
    assert quiet_summer == []


def test_window_and_slide_options_change_the_windows(boston_jsonl: Path, tmp_path: Path) -> None:
    spikes = _detect(["--input", str(boston_jsonl), "--output", str(tmp_path / "s.jsonl"),
                      "--window", "2h", "--slide", "30m"])
    assert spikes
    assert {datetime.fromisoformat(s["window_end"]) - datetime.fromisoformat(s["window_start"]) for s in spikes} \
        >= {timedelta(hours=2)}  # the main window is the option's (the 4h scale is judged beside it)
    for spike in spikes:
        start, end = datetime.fromisoformat(spike["window_start"]), datetime.fromisoformat(spike["window_end"])
        assert end - start in (timedelta(hours=2), timedelta(hours=4)) and start.minute in (0, 30)


def test_bad_durations_fail_with_a_clear_message(boston_jsonl: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["detect", "--input", str(boston_jsonl), "--output",
                                      str(tmp_path / "s.jsonl"), "--window", "1h", "--slide", "25m"])
    assert result.exit_code != 0
    assert "whole multiple" in result.output
    result = CliRunner().invoke(app, ["detect", "--input", str(boston_jsonl), "--output",
                                      str(tmp_path / "s.jsonl"), "--window", "soon"])
    assert result.exit_code != 0
    assert "not understood" in result.output


def test_report_plots_the_top_keys_and_lists_the_alarms(boston_jsonl: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    spikes = _detect(["--input", str(boston_jsonl), "--output", str(tmp_path / "s.jsonl"),
                      "--report", str(report)])
    page = report.read_text()
    assert page.count("<img ") >= 2 and "data:image/png;base64," in page
    assert 'alt="Heat - Excessive  Insufficient @ *"' in page
    assert "2015-01-08" in page  # the cold snap's alarm is in the table
    assert "<th>raised</th>" in page and page.count("<td>") == 8 * (page.count("<tr>") - 1)  # a cell per column
    assert page.count("<tr>") - 1 <= len(spikes)  # alarms fold consecutive spike windows
    assert not (tmp_path / "s.windows.jsonl").exists()


def test_a_sparse_real_stream_loses_no_record_to_the_time_bounds(tmp_path: Path) -> None:
    """Water complaints come a few a day, hours apart: the replay's time bounds once refused 45% of Boston's
    requests (every record after a quiet hour); now only a last record that nothing followed can be refused."""
    records = sorted(read_csv_cases(BOSTON / "No Utilities Residential - Water.csv", BOSTON_311), key=lambda r: r["ts"])
    cases = tmp_path / "water.jsonl"
    cases.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    _detect(["--input", str(cases), "--output", str(tmp_path / "spikes.jsonl")])
    letters = tmp_path / "spikes.dead_letters.jsonl"
    refused = [orjson.loads(line) for line in letters.read_bytes().splitlines()] if letters.exists() else []
    assert len(records) > 200 and len(refused) <= 1
    assert all(letter["origin"]["line"] == len(records) for letter in refused), "only the last record"


def test_cases_the_company_opened_itself_are_read_and_not_counted(tmp_path: Path) -> None:
    """Boston's street-light outages logged by city staff (Employee Generated, the City Worker App, the
    Maximo work-order sync) alarm on their own; named as `detection.internal_channels` they count nowhere,
    and are no dead letters either."""
    staff = ["Employee Generated", "City Worker App", "Maximo Integration"]
    records = sorted((r for r in read_csv_cases(BOSTON / "Street Light Outages.csv", BOSTON_311)
                      if r.get("channel") in staff), key=lambda r: r["ts"])
    cases = tmp_path / "staff.jsonl"
    cases.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    config = tmp_path / "internal.yaml"
    config.write_text("detection:\n  internal_channels: [" + ", ".join(staff) + "]\n")

    counted = _detect(["--input", str(cases), "--output", str(tmp_path / "counted.jsonl")])
    ignored = _detect(["--input", str(cases), "--output", str(tmp_path / "ignored.jsonl"), "-c", str(config)])

    assert len(records) > 2000 and counted, "the staff's own reports alarm when they count"
    assert ignored == []
    assert not (tmp_path / "ignored.dead_letters.jsonl").exists() or not (
        tmp_path / "ignored.dead_letters.jsonl").read_bytes().strip()
