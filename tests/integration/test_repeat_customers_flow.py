"""One customer's flood of cases is one affected customer, not a surge (`detection.repeat_horizon`).

The demo scenario runs through the full flow over files, once as generated and once with one
customer filing forty cases on a quiet topic within the hour, as a script behind one account
would. With the default horizon the spikes and incidents are the scenario's own; with the
horizon off the same flood raises a spike at that customer's region, so the test can fail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main
from prometheus_client import CollectorRegistry

from forewarn.flows.early_warning import build_flow
from forewarn.flows.observability import instrument
from forewarn.flows.wiring import file_io
from forewarn.metrics import EngineMetrics
from forewarn.settings import DetectionSettings, Settings
from tests.integration.replay_helpers import Run, replay, small_scenario, sorted_docs

FLOOD_AT = datetime(2026, 11, 17, 3, 0, tzinfo=UTC)
"""A night hour of the scenario's second day, when account access is quiet."""
TOPIC = "account_access"


def _customer() -> tuple[str, str]:
    """(customer id, region) of the scenario's first customer."""
    first = small_scenario().customers[0]
    return first.id, first.region


def _with_flood(events: list[dict[str, Any]]) -> list[bytes]:
    """The scenario's lines with forty cases of one customer, a minute apart, each in its place in time."""
    customer, region = _customer()
    flood = [{"type": "case", "id": f"FLOOD-{n}", "customer_id": customer, "topic": TOPIC, "region": region,
              "ts": (FLOOD_AT + timedelta(minutes=n)).isoformat().replace("+00:00", "Z"), "channel": "app"}
             for n in range(40)]
    merged = sorted([*events, *flood], key=lambda e: str(e.get("ts", "")))  # the scenario's events are all timed
    return [orjson.dumps(e) for e in merged]


@pytest.fixture(scope="module")
def scenario_alone(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = replay([orjson.dumps(e) for e in small_scenario().events], tmp_path_factory.mktemp("alone"))
    assert run[0] and run[1], "the scenario alone is the reference: it must find something"
    return run


def test_one_customers_forty_cases_in_an_hour_change_no_spike_and_no_incident(
        tmp_path: Path, scenario_alone: Run) -> None:
    spikes, incidents, letters = replay(_with_flood(small_scenario().events), tmp_path)
    assert letters == [], "a customer's repeats are valid cases, not dead letters"
    assert sorted_docs(spikes) == sorted_docs(scenario_alone[0])
    assert sorted_docs(incidents) == sorted_docs(scenario_alone[1])


def test_with_the_horizon_off_the_same_flood_is_a_spike_at_the_customers_region(tmp_path: Path) -> None:
    _, region = _customer()
    settings = Settings(detection=DetectionSettings(repeat_horizon=None))
    spikes, _, _ = replay(_with_flood(small_scenario().events), tmp_path, settings)
    flood_end = FLOOD_AT + timedelta(hours=1)
    assert [s for s in spikes if s["key"] == {"topic": TOPIC, "region": region}
            and FLOOD_AT < datetime.fromisoformat(s["window_end"]) <= flood_end + timedelta(hours=4)]


def test_a_replay_counts_each_topics_repeats_in_its_metrics(tmp_path: Path) -> None:
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    records = [{"type": "case", "id": f"C-{i}", "topic": "billing" if i % 2 else "no_internet", "region": "R1",
                "customer_id": f"CU-{i % 6}", "ts": (start + timedelta(minutes=i)).isoformat()} for i in range(30)]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    settings = Settings()
    registry = CollectorRegistry()
    run_main(build_flow(settings, instrument(file_io(settings, [path], tmp_path / "out", None),
                                             EngineMetrics(registry))))
    # Customers 0, 2 and 4 file the even (no_internet) cases, 1, 3 and 5 the odd: 15 cases, 3 customers each.
    for topic in ("billing", "no_internet"):
        assert registry.get_sample_value("forewarn_repeat_cases_total", {"topic": topic}) == 12
