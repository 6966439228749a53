"""The flow process's HTTP endpoint over real HTTP (issue 10, item 5): /metrics in Prometheus' formats,
/healthz, /readyz; scrapes answered while a Bytewax flow with recovery runs in the same process; the
consumer lag of a real Kafka-protocol broker's partition."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import forewarn.connectors.observability as observability
from forewarn.connectors.kafka import kafka_source
from forewarn.connectors.observability import MeteredSource
from forewarn.flows.observability import Observability, start_observability
from forewarn.metrics import EngineMetrics
from forewarn.records import DeadLetter, Origin
from forewarn.settings import ConfigError, Settings
from tests.integration.helpers import produce
from tests.servers.kafka_broker import create_topics
from tests.servers.ports import free_port

pytestmark = pytest.mark.integration


def get(url: str, accept: str | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET; a 4xx/5xx answer is returned, not raised."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def settings_on(port: int | None, **extra: Any) -> Settings:
    return Settings.model_validate({"observability": {"metrics_port": port}, **extra})


@pytest.fixture
def endpoint() -> Iterator[Observability]:
    obs = start_observability(settings_on(free_port()), registry=CollectorRegistry())
    yield obs
    obs.stop()


def test_metrics_health_and_readiness_over_http(endpoint: Observability) -> None:
    assert endpoint.url is not None
    url, metrics = endpoint.url, endpoint.metrics

    assert get(url + "/healthz")[0::2] == (200, b'{"status":"ok"}')
    status, kind, body = get(url + "/readyz")
    assert (status, kind) == (503, "application/json")
    assert orjson.loads(body) == {"status": "not ready", "reason": "the start-up checks of the flow's edges have "
                                                                  "not passed yet"}
    metrics.readiness.edges_checked()
    status, _, body = get(url + "/readyz")
    assert status == 503 and "not running" in orjson.loads(body)["reason"]
    metrics.flow_running()
    assert get(url + "/readyz")[0::2] == (200, b'{"status":"ready"}')

    metrics.records_in("cases", 0, 42)
    metrics.dead_letter(DeadLetter("parse", "malformed JSON: unexpected character", Origin("cases", 0, 7), b"{"))
    metrics.consumer_lag("cases", 0, 9)
    status, kind, body = get(url + "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    text = body.decode()
    for name, kind_ in [("forewarn_records_in_total", "counter"), ("forewarn_dead_letters_total", "counter"),
                        ("forewarn_late_records_total", "counter"), ("forewarn_spikes_total", "counter"),
                        ("forewarn_event_to_decision_seconds", "histogram"), ("forewarn_pane_lag_seconds", "gauge"),
                        ("forewarn_open_incidents", "gauge"), ("forewarn_consumer_lag_records", "gauge"),
                        ("forewarn_snapshot_age_seconds", "gauge")]:
        assert f"# TYPE {name.removesuffix('_total')} {kind_}" in text or f"# TYPE {name} {kind_}" in text, name
    got = samples(body)
    assert got[("forewarn_records_in_total", (("partition", "0"), ("source", "cases")))] == 42
    assert got[("forewarn_dead_letters_total", (("reason", "malformed"), ("step", "parse")))] == 1
    assert got[("forewarn_consumer_lag_records", (("partition", "0"), ("topic", "cases")))] == 9
    assert got[("forewarn_event_to_decision_seconds_bucket", (("le", "1800.0"),))] == 0

    # Prometheus asks for OpenMetrics first: that is served too.
    status, kind, body = get(url + "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and kind.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    assert get(url + "/nothing")[0] == 404


def test_a_stopped_endpoint_no_longer_answers() -> None:
    obs = start_observability(settings_on(free_port()), registry=CollectorRegistry())
    assert obs.url is not None and get(obs.url + "/healthz")[0] == 200
    obs.stop()
    assert obs.metrics.readiness() == "the flow stopped"
    with pytest.raises(urllib.error.URLError):
        get(obs.url + "/healthz")


def test_a_taken_port_fails_at_start_naming_the_setting() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on 127.0.0.1:{port} .*observability.metrics_port"):
            start_observability(settings_on(port), registry=CollectorRegistry())


def test_no_port_no_endpoint() -> None:
    for port in (None, 0):
        obs = start_observability(settings_on(port), registry=CollectorRegistry(), checked=True)
        assert obs.server is None and obs.url is None
        obs.metrics.records_in("cases", 0, 1)  # the flow's calls work all the same


def test_scrapes_are_answered_while_a_bytewax_flow_with_recovery_runs(tmp_path: Path) -> None:
    """The endpoint's thread is served while the Bytewax worker runs, and the snapshot age follows the
    recovery store that this very run writes."""
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)
    old = time.time() - 3600
    for path in recovery.iterdir():  # as if initialised an hour ago: the run's snapshots must bring it down
        os.utime(path, (old, old))
    settings = settings_on(free_port(), recovery={"directory": str(recovery), "snapshot_interval": "1s"})
    obs = start_observability(settings, registry=CollectorRegistry(), checked=True)
    assert obs.url is not None
    before = samples(get(obs.url + "/metrics")[2])
    assert before[("forewarn_snapshot_age_seconds", ())] > 3000
    assert get(obs.url + "/readyz")[0] == 503  # checked, but the flow is not running yet

    def slow() -> Iterator[int]:
        for i in range(60):
            time.sleep(0.05)
            yield i

    scrapes: list[tuple[float, dict[Any, float], int]] = []
    running = threading.Event()

    def scrape() -> None:
        assert obs.url is not None
        while not running.is_set():
            time.sleep(0.01)
        while running.is_set():
            got = samples(get(obs.url + "/metrics")[2])
            scrapes.append((time.monotonic(), got, get(obs.url + "/readyz")[0]))
            time.sleep(0.1)

    flow = Dataflow("metered")
    numbers = op.input("read", flow, MeteredSource(TestingSource(slow()), obs.metrics))
    keyed = op.key_on("one_key", numbers, lambda _: "k")
    sums = op.stateful_map("sum", keyed, lambda total, n: ((total or 0) + n, (total or 0) + n))
    out: list[Any] = []
    def mark(kv: Any) -> Any:
        running.set()  # the flow has produced: scrapes from now on happen mid-run
        return kv

    op.output("out", op.map("mark", sums, mark), TestingSink(out))
    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        run_main(flow, epoch_interval=timedelta(milliseconds=200), recovery_config=RecoveryConfig(str(recovery)))
    finally:
        running.clear()
        scraper.join(5)
        obs.stop()

    assert len(out) == 60
    assert len(scrapes) >= 5, f"only {len(scrapes)} scrapes were answered during a ~3 s run"
    key = ("forewarn_records_in_total", (("partition", ""), ("source", "iterable")))
    counts = [got.get(key, 0.0) for _, got, _ in scrapes]
    assert counts == sorted(counts) and 0 < counts[0] < 60, counts  # read mid-run, growing
    assert all(ready == 200 for _, _, ready in scrapes)
    ages = [got[("forewarn_snapshot_age_seconds", ())] for _, got, _ in scrapes]
    assert min(ages) < 5, ages  # the run's own snapshots


def test_consumer_lag_of_a_real_broker_partition(kafka_broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "LAG_EVERY", 0.0)  # read the lag after every batch
    topic = f"lag-{time.monotonic_ns()}"
    create_topics(kafka_broker, [topic])
    produce(kafka_broker, topic, (b'{"n": %d}' % i for i in range(50)))
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    source = MeteredSource(kafka_source([kafka_broker], [topic], tail=True, batch_size=10), metrics)
    assert source.list_parts() == [f"0-{topic}"]
    part = source.build_part("read", f"0-{topic}", None)
    lag = {"topic": topic, "partition": "0"}
    read = 0
    deadline = time.monotonic() + 20
    try:
        while read < 20:  # batches of at most 10: stops at 20 of the 50
            assert time.monotonic() < deadline, f"read {read} of 50 records in 20 s"
            read += sum(len(batch.records) for batch in part.next_batch())  # one RawBatch a poll
    finally:
        part.close()
    assert read == 20
    assert registry.get_sample_value("forewarn_records_in_total", {"source": topic, "partition": "0"}) == 20
    assert registry.get_sample_value("forewarn_consumer_lag_records", lag) == 30
