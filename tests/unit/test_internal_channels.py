"""`detection.internal_channels`: cases the company opened itself are read and not counted.

The partition step drops them on the fast path and after full validation alike, comparing the channel
as `Case` keeps it (a number as its text); every other case, and a case without a channel, counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from forewarn.batches import RawBatch
from forewarn.detectors.time_bounds import TimeBounds
from forewarn.flows.partitions import PartitionRules
from forewarn.records import DeadLetter
from forewarn.settings import ConfigError, DetectionSettings, load_settings
from forewarn.sources import SourceKinds

INTERNAL = frozenset({"Employee Generated", "311"})


def counted_ids(records: list[dict[str, Any]], internal: frozenset[str] = INTERNAL) -> list[str]:
    """The ids of the cases the partition step sends to the shards, and no dead letter among its output."""
    rules = PartitionRules({"cases": SourceKinds.only("case")}, 64 * 1024, TimeBounds(), live=False,
                           slide=timedelta(minutes=15), shards=2, now=lambda: datetime.now(UTC),
                           internal_channels=internal)
    batch: list[tuple[int | None, bytes] | DeadLetter] = [(n, orjson.dumps(r)) for n, r in enumerate(records)]
    routed, _ = rules(None).on_item(RawBatch("cases", 0, batch, end=True))
    assert [item for kind, item in routed if kind == "letter"] == []
    return sorted(case.case_id for kind, item in routed if kind == "shard" for case in item[1].cases)


def case(case_id: str, ts: str = "2026-11-20T14:03:11Z", **fields: Any) -> dict[str, Any]:
    return {"type": "case", "id": case_id, "ts": ts, "topic": "street_lights", "region": "Dorchester", **fields}


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
    config.write_text("detection:\n  internal_channels: [Employee Generated, ' ']\n")
    with pytest.raises(ConfigError, match=r"internal_channels.*must not be empty"):
        load_settings(config)
