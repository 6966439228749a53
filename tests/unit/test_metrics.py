"""The engine's metrics (issue 10, item 5): each method against a registry of the test's own, bounded
labels, the snapshot age of a real Bytewax recovery store, and the counts of a real flow over files."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from bytewax.recovery import init_db_dir
from bytewax.testing import TestingSource, run_main
from prometheus_client import CollectorRegistry

from forewarn.connectors.observability import MeteredSource, part_origin, snapshot_age
from forewarn.flows.early_warning import build_flow
from forewarn.flows.observability import instrument
from forewarn.flows.wiring import file_io
from forewarn.metrics import LATENCY_BUCKETS, OTHER, REASON_CATEGORIES, EngineMetrics, reason_category
from forewarn.parsing import parse_record
from forewarn.records import DeadLetter, Origin, Spike
from forewarn.settings import ConfigError, Settings, load_settings

T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now.timestamp()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def label_values(registry: CollectorRegistry, family: str, label: str) -> set[str]:
    return {s.labels[label] for m in registry.collect() if m.name == family for s in m.samples if label in s.labels}


def spike(topic: str = "no_internet", end: datetime = T0) -> Spike:
    return Spike(topic, "TX-453", end - timedelta(hours=1), end, 40, 5.0, 1e-9, 9.0, "seasonal")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_records_in_counts_per_source_and_partition(registry: CollectorRegistry) -> None:
    metrics = EngineMetrics(registry)
    metrics.records_in("cases", 0, 1000)
    metrics.records_in("cases", 0, 500)
    metrics.records_in("cases", 1, 7)
    metrics.records_in("/data/replay.jsonl", None, 3)
    assert value(registry, "forewarn_records_in_total", source="cases", partition="0") == 1500
    assert value(registry, "forewarn_records_in_total", source="cases", partition="1") == 7
    assert value(registry, "forewarn_records_in_total", source="/data/replay.jsonl", partition="") == 3


def _parse_letter(raw: bytes, **kw: object) -> DeadLetter:
    letter = parse_record(raw, Origin("cases", 0, 12), **kw)  # type: ignore[arg-type]
    assert isinstance(letter, DeadLetter), letter
    return letter


def test_dead_letters_count_by_step_and_a_bounded_reason_category(registry: CollectorRegistry) -> None:
    metrics = EngineMetrics(registry)
    origin = Origin("cases", 0, 99)
    letters = {
        "malformed": _parse_letter(b"{oops"),
        "too_large": _parse_letter(b'{"x": "' + b"a" * 2000 + b'"}', max_bytes=512),
        "invalid": _parse_letter(b'{"ts": "2026-11-20 14:03:11", "region": "TX-453"}'),
        "type_refused": _parse_letter(b'{"type": "telepathy", "ts": "2026-11-20T14:03:11Z"}'),
        # The texts of the flow's own steps (flows/steps.py, detectors/): their prefixes are the contract.
        "late": DeadLetter("count_panes", "late: 2026-11-20T13:00:00+00:00 arrived after its 0:15:00 pane of "
                           "topic 'no_internet' closed (allowed lateness 0:10:00)", origin, b"{}"),
        "time_bounds": DeadLetter("time_bounds", "time: 1990-01-01T00:00:00+00:00 is before 2000-01-01T00:00:00"
                                  "+00:00; a reset clock?", origin, b"{}"),
        "duplicate": DeadLetter("dedup", "duplicate: case id already counted at 2026-11-20T14:00:00+00:00",
                                origin, b"{}"),
        "region_capped": DeadLetter("cap_regions", "region capped: topic 'x' already has 5000 regions", origin,
                                    b"{}"),
        "step_failed": DeadLetter("detect", "detect failed for key 'no_internet': ZeroDivisionError: x",
                                  origin, b"{}"),
        "consumer_error": DeadLetter("read", "Kafka consumer error: KafkaError{code=_TRANSPORT}", origin, b""),
        "unknown_source": DeadLetter("parse", "source weird is not configured to carry any record type", origin,
                                     b""),
    }
    for category, letter in letters.items():
        assert reason_category(letter.step, letter.reason) == category, letter.reason
    metrics.dead_letters(letters.values())
    metrics.dead_letter(letters["malformed"])
    assert value(registry, "forewarn_dead_letters_total", step="parse", reason="malformed") == 2
    assert value(registry, "forewarn_dead_letters_total", step="count_panes", reason="late") == 1
    assert value(registry, "forewarn_dead_letters_total", step="detect", reason="step_failed") == 1
    # A late record is also a late record of its source.
    assert value(registry, "forewarn_late_records_total", source="cases") == 1
    assert label_values(registry, "forewarn_late_records", "source") == {"cases"}


def test_free_text_reasons_never_become_label_values(registry: CollectorRegistry) -> None:
    """Reasons quote record values (ids, times, field contents): 1,000 different ones make no new series."""
    metrics = EngineMetrics(registry)
    origin = Origin("cases", 0, 1)
    for i in range(1000):
        metrics.dead_letter(DeadLetter("parse", f"field_{i}: value {i} is not valid", origin, b""))
        metrics.dead_letter(DeadLetter("read", f"a reason nobody foresaw #{i}", origin, b""))
        metrics.dead_letter(DeadLetter(f"Step With Spaces {i}", "late: x", origin, b""))
    reasons = label_values(registry, "forewarn_dead_letters", "reason")
    steps = label_values(registry, "forewarn_dead_letters", "step")
    assert reasons <= set(REASON_CATEGORIES) and reasons == {"invalid", OTHER}
    assert steps == {"parse", "read", OTHER}
    assert value(registry, "forewarn_dead_letters_total", step="parse", reason="invalid") == 1000


def test_spikes_count_per_topic_and_time_their_decision(registry: CollectorRegistry) -> None:
    metrics = EngineMetrics(registry)
    metrics.spike(spike("no_internet"), decided_at=T0 + timedelta(seconds=0.3), newest_event=T0)
    metrics.spike(spike("no_internet"), decided_at=T0 + timedelta(minutes=2))  # from the window's end
    metrics.spike(spike("wifi_drops"), decided_at=T0 - timedelta(seconds=5))  # early firing: clamped at 0
    assert value(registry, "forewarn_spikes_total", topic="no_internet") == 2
    assert value(registry, "forewarn_spikes_total", topic="wifi_drops") == 1
    hist = "forewarn_event_to_decision_seconds"
    assert value(registry, hist + "_count") == 3
    assert value(registry, hist + "_sum") == pytest.approx(120.3)
    assert value(registry, hist + "_bucket", le="0.01") == 1  # the clamped one
    assert value(registry, hist + "_bucket", le="0.25") == 1
    assert value(registry, hist + "_bucket", le="0.5") == 2
    assert value(registry, hist + "_bucket", le="60.0") == 2
    assert value(registry, hist + "_bucket", le="120.0") == 3
    assert LATENCY_BUCKETS[0] == 0.01 and LATENCY_BUCKETS[-1] == 1800.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    metrics.decision_latency(4000.0)
    assert value(registry, hist + "_bucket", le="1800.0") == 3
    assert value(registry, hist + "_bucket", le="+Inf") == 4


def test_pane_lag_is_now_minus_the_oldest_open_pane_and_grows_while_stalled(registry: CollectorRegistry) -> None:
    clock = Clock()
    metrics = EngineMetrics(registry, clock=clock)
    assert value(registry, "forewarn_pane_lag_seconds") == 0.0  # nothing open
    metrics.oldest_open_pane(T0 - timedelta(minutes=5), worker="0")
    metrics.oldest_open_pane(T0 - timedelta(minutes=20), worker="1")
    assert value(registry, "forewarn_pane_lag_seconds") == 1200.0
    clock.now = T0 + timedelta(minutes=1)  # no call: a stalled flow's lag keeps growing
    assert value(registry, "forewarn_pane_lag_seconds") == 1260.0
    metrics.oldest_open_pane(None, worker="1")
    assert value(registry, "forewarn_pane_lag_seconds") == 360.0


def test_open_incidents_are_set_per_key_so_a_replayed_epoch_does_not_count_twice(
        registry: CollectorRegistry) -> None:
    metrics = EngineMetrics(registry)
    metrics.open_incidents("no_internet", 2)
    metrics.open_incidents("wifi_drops", 1)
    metrics.open_incidents("no_internet", 2)  # the same state again (at-least-once after recovery)
    assert value(registry, "forewarn_open_incidents") == 3
    metrics.open_incidents("no_internet", 0)
    assert value(registry, "forewarn_open_incidents") == 1


def test_consumer_lag_per_topic_partition(registry: CollectorRegistry) -> None:
    metrics = EngineMetrics(registry)
    metrics.consumer_lag("cases", 0, 1234)
    metrics.consumer_lag("cases", 0, 17)
    metrics.consumer_lag("cases", 3, -2)  # a watermark behind the position (a race): never negative
    assert value(registry, "forewarn_consumer_lag_records", topic="cases", partition="0") == 17
    assert value(registry, "forewarn_consumer_lag_records", topic="cases", partition="3") == 0


def test_snapshot_age_of_a_real_recovery_store(tmp_path: Path, registry: CollectorRegistry) -> None:
    EngineMetrics(registry)  # without recovery: NaN, which no alert on age > N fires on
    assert math.isnan(value(registry, "forewarn_snapshot_age_seconds") or 0.0)
    assert snapshot_age(tmp_path)() is None  # no store here
    init_db_dir(tmp_path, 2)
    age = snapshot_age(tmp_path)
    fresh = age()
    assert fresh is not None and 0.0 <= fresh < 30.0
    old = time.time() - 600
    for path in tmp_path.iterdir():
        os.utime(path, (old, old))
    other = CollectorRegistry()
    EngineMetrics(other, snapshot_age=age)
    assert value(other, "forewarn_snapshot_age_seconds") == pytest.approx(600, abs=5)
    (tmp_path / "part-1.sqlite3").touch()  # one partition written now: the newest write counts
    assert value(other, "forewarn_snapshot_age_seconds") == pytest.approx(0, abs=5)


def test_readiness_needs_checked_edges_and_a_running_flow(registry: CollectorRegistry) -> None:
    metrics = EngineMetrics(registry)
    assert "start-up checks" in (metrics.readiness() or "")
    metrics.readiness.edges_checked()
    assert "not running" in (metrics.readiness() or "")
    metrics.flow_running()
    assert metrics.readiness() is None
    metrics.readiness.flow_stopped("shutting down")
    assert metrics.readiness() == "shutting down"


def test_records_are_counted_per_batch_call(registry: CollectorRegistry) -> None:
    """The flow calls once per batch with the batch's size (what a call costs is for bench/, not a test)."""
    metrics = EngineMetrics(registry)
    n = 50_000
    for _ in range(n):
        metrics.records_in("cases", 0, 1000)
    assert value(registry, "forewarn_records_in_total", source="cases", partition="0") == n * 1000


def test_a_metered_source_counts_each_batch_and_marks_the_flow_running(registry: CollectorRegistry) -> None:
    metrics = EngineMetrics(registry)
    source = MeteredSource(TestingSource(list(range(25)), batch_size=10), metrics)
    assert source.list_parts() == ["iterable"]
    assert metrics.readiness.__call__() is not None
    part = source.build_part("read", "iterable", None)
    metrics.readiness.edges_checked()
    assert metrics.readiness() is None  # building a partition means the flow runs
    batches = []
    for _ in range(3):
        batches.append(list(part.next_batch()))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert part.snapshot() == 25  # the wrapped partition's own resume state
    assert value(registry, "forewarn_records_in_total", source="iterable", partition="") == 25
    assert part_origin("3-cases") == ("cases", 3)


def _write_jsonl(path: Path, lines: Iterable[bytes]) -> int:
    data = list(lines)
    path.write_bytes(b"\n".join(data) + b"\n")
    return len(data)


def _case(i: int, ts: datetime, case_id: str | None = None) -> bytes:
    return orjson.dumps({"type": "case", "id": case_id or f"C-{i}", "ts": ts.isoformat(), "customer_id": f"CU-{i}",
                         "topic": "no_internet", "region": "TX-453", "text": "modem down"})


def test_an_instrumented_flow_counts_what_it_read_and_every_dead_letter_by_category(tmp_path: Path) -> None:
    """A real replay over files: records read per file, and each dead letter of each step in a named
    category (none in `other`: a reason text the table does not know fails here)."""
    lines = [_case(i, T0 + timedelta(minutes=i)) for i in range(60)]
    lines += [
        b"{oops",  # malformed
        orjson.dumps({"type": "telepathy", "ts": T0.isoformat()}),  # type refused
        orjson.dumps({"type": "case", "ts": "2026-11-20 14:03:11", "region": "TX-453"}),  # invalid
        _case(1000, datetime(1990, 1, 1, tzinfo=UTC)),  # before time_bounds.not_before
        _case(1001, T0 + timedelta(minutes=59), case_id="C-5"),  # a repeated case id
        _case(1002, T0 - timedelta(hours=3)),  # far behind the panes already closed: late
        b'{"pad": "' + b"x" * 70_000 + b'"}',  # over max_record_bytes
    ]
    path = tmp_path / "cases.jsonl"
    n = _write_jsonl(path, lines)
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    settings = Settings()
    io = instrument(file_io(settings, [path], tmp_path / "out", None), metrics)
    run_main(build_flow(settings, io))

    assert value(registry, "forewarn_records_in_total", source=str(path), partition="") == n
    written = [orjson.loads(line) for line in (tmp_path / "out" / "dead_letters.jsonl").read_bytes().splitlines()]
    by_category: dict[str, int] = {}
    for letter in written:
        category = reason_category(letter["step"], letter["reason"])
        by_category[category] = by_category.get(category, 0) + 1
    assert by_category == {"malformed": 1, "type_refused": 1, "invalid": 1, "time_bounds": 1, "duplicate": 1,
                           "late": 1, "too_large": 1}, written
    counted = {(s.labels["step"], s.labels["reason"]): s.value for m in registry.collect()
               if m.name == "forewarn_dead_letters" for s in m.samples if s.name.endswith("_total")}
    assert sum(counted.values()) == len(written)
    assert {reason for _, reason in counted} == set(by_category)
    assert value(registry, "forewarn_late_records_total", source=str(path)) == 1


def test_the_observability_section_is_checked_on_load(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("observability: {metrics_port: 9464, host: 0.0.0.0, log_format: json}\n")
    o = load_settings(config).observability
    assert (o.metrics_port, o.host, o.log_format) == (9464, "0.0.0.0", "json")
    config.write_text("observability: {metrics_port: 0}\n")
    assert load_settings(config).observability.metrics_port is None  # 0 disables
    assert Settings().observability.metrics_port is None  # off unless configured
    config.write_text("observability: {metrics_port: 70000, host: 'http://x', log_format: yaml, port: 1}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert "observability.metrics_port: 70000 is not a TCP port" in message
    assert "observability.host: 'http://x' is not an address to listen on" in message
    assert "observability.log_format" in message
    assert "observability.port: unknown key" in message and "metrics_port, host, log_format" in message
