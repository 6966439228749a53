"""`detection.internal_channels`: cases the company opened itself are read and not counted.

The partition step drops them on the fast path and after full validation alike, comparing the channel
as `Case` keeps it (a number as its text); every other case, and a case without a channel, counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main
from prometheus_client import CollectorRegistry

from forewarn.batches import RawBatch
from forewarn.detectors.time_bounds import TimeBounds
from forewarn.flows.early_warning import build_flow
from forewarn.flows.observability import instrument
from forewarn.flows.partitions import PartitionRules
from forewarn.flows.wiring import file_io
from forewarn.metrics import EngineMetrics
from forewarn.records import DeadLetter
from forewarn.settings import ConfigError, DetectionSettings, Settings, load_settings
from forewarn.sources import SourceKinds

INTERNAL = frozenset({"Employee Generated", "311"})


def read(records: list[dict[str, Any]], internal: frozenset[str] = INTERNAL) -> list[tuple[str, Any]]:
    """What the partition step makes of one batch of `records` from the source "cases"."""
    rules = PartitionRules({"cases": SourceKinds.only("case")}, 64 * 1024, TimeBounds(), live=False,
                           slide=timedelta(minutes=15), shards=2, now=lambda: datetime.now(UTC),
                           internal_channels=internal)
    batch: list[tuple[int | None, bytes] | DeadLetter] = [(n, orjson.dumps(r)) for n, r in enumerate(records)]
    routed, _ = rules(None).on_item(RawBatch("cases", 0, batch, end=True))
    return routed


def counted_ids(records: list[dict[str, Any]], internal: frozenset[str] = INTERNAL) -> list[str]:
    """The ids of the cases the partition step sends to the shards, and no dead letter among its output."""
    routed = read(records, internal)
    assert [item for kind, item in routed if kind == "letter"] == []
    return sorted(case.case_id for kind, item in routed if kind == "shard" for case in item[1].cases)


def case(case_id: str, ts: str = "2026-11-20T14:03:11Z", **fields: Any) -> dict[str, Any]:
    return {"type": "case", "id": case_id, "ts": ts, "topic": "street_lights", "region": "Dorchester", **fields}


def test_an_internal_case_that_is_no_valid_case_is_a_dead_letter_not_dropped() -> None:
    bad = {"type": "case", "id": "staff", "ts": "2026-11-20T14:03:11Z", "channel": "Employee Generated"}  # no region
    [(kind, letter)] = [(kind, item) for kind, item in read([bad]) if kind != "shard"]
    assert kind == "letter" and "region" in letter.reason


def test_the_batch_says_how_many_it_left_uncounted_and_the_metric_adds_them_up() -> None:
    records = [case("a", channel="Employee Generated"), case("b", ts="2026-11-20 14:03:12Z", channel="311"),
               case("c", channel="Citizens Connect App")]
    assert [item for kind, item in read(records) if kind == "internal"] == [("cases", 2)]
    assert [kind for kind, _ in read(records, frozenset())].count("internal") == 0
    metrics = EngineMetrics(CollectorRegistry())
    metrics.internal_cases("cases", 2)
    metrics.internal_cases("cases", 3)
    assert metrics.registry.get_sample_value("forewarn_internal_cases_total", {"source": "cases"}) == 5


def test_internal_cases_count_nowhere_on_either_parse_path() -> None:
    records = [
        case("staff", channel="Employee Generated"),
        case("staff-slow-path", ts="2026-11-20 14:03:12Z", channel="Employee Generated"),  # full validation
        case("numbered", channel=311),  # kept by Case as "311"
        case("resident", channel="Citizens Connect App"),
        case("resident-slow-path", ts="2026-11-20 14:03:13Z", channel="Constituent Call"),
        case("no-channel"),
        case("odd-channel", channel=["Employee Generated"]),  # not a channel Case keeps: counts
        case("case-differs", channel="employee generated"),  # names match exactly
    ]
    assert counted_ids(records) == ["case-differs", "no-channel", "odd-channel", "resident", "resident-slow-path"]
    assert len(counted_ids(records, frozenset())) == len(records), "without the setting every case counts"


def test_the_setting_reads_from_yaml_and_refuses_an_empty_name(tmp_path: Any) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("detection:\n  internal_channels: [Employee Generated, City Worker App]\n")
    assert load_settings(config).detection.internal_channels == {"Employee Generated", "City Worker App"}
    assert DetectionSettings().internal_channels == frozenset()
    config.write_text("detection:\n  internal_channels: [Employee Generated, 311]\n")
    assert load_settings(config).detection.internal_channels == {"Employee Generated", "311"}
    config.write_text("detection:\n  internal_channels:\n")
    assert load_settings(config).detection.internal_channels == frozenset()
    for bad, why in (("[Employee Generated, ' ']", "non-empty"), ("[[a]]", "non-empty"),
                     ("Employee Generated", "must be a list of channel names, not str")):
        config.write_text(f"detection:\n  internal_channels: {bad}\n")
        with pytest.raises(ConfigError, match=r"internal_channels") as raised:
            load_settings(config)
        assert why in str(raised.value) and "e.g. [Employee Generated" in str(raised.value)


def test_a_replay_counts_the_companys_own_cases_in_its_metrics_and_nowhere_else(tmp_path: Path) -> None:
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    records = [case(f"C-{i}", (start + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
                    channel="Employee Generated" if i % 3 == 0 else "Constituent Call") for i in range(30)]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    settings = Settings.model_validate({"detection": {"internal_channels": ["Employee Generated"]}})
    registry = CollectorRegistry()
    run_main(build_flow(settings, instrument(file_io(settings, [path], tmp_path / "out", None),
                                             EngineMetrics(registry))))

    assert registry.get_sample_value("forewarn_internal_cases_total", {"source": str(path)}) == 10
    assert registry.get_sample_value("forewarn_records_in_total", {"source": str(path), "partition": ""}) == 30
    letters = tmp_path / "out" / "dead_letters.jsonl"
    assert not letters.exists() or not letters.read_bytes().strip()
