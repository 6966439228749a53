"""A real three-node Redis Cluster on free loopback ports: never the machine's shared Redis.

Three `redis-server --cluster-enabled yes` processes (no persistence, no replicas) joined by
`redis-cli --cluster create`, which splits the 16,384 hash slots between them. Each node also
listens on its cluster bus port, its own port + 10,000 (fixed before Redis 7), so the ports are
picked with that one free too.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.servers.ports import free_port, wait_until
from tests.servers.redis_server import INSTALL_HINT

NODES = 3
BUS_OFFSET = 10_000
"""Redis listens for its cluster peers on the client port + 10,000."""


def node_port() -> int:
    """A free loopback port whose cluster bus port (+10,000) is a port and free as well."""
    for _ in range(100):
        port = free_port()
        if port + BUS_OFFSET <= 65535 and _bindable(port + BUS_OFFSET):
            return port
    raise RuntimeError("found no free port pair (port, port + 10000) on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _node_ok(port: int) -> bool:
    """This node sees every slot served: the cluster is usable from it."""
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        info: dict[str, str] = client.cluster("info")  # type: ignore[assignment]
    finally:
        client.close()
    return info.get("cluster_state") == "ok" and int(info.get("cluster_slots_ok", 0)) == 16384


@contextmanager
def _node(binary: str, folder: Path, port: int) -> Iterator[None]:
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", str(folder / f"nodes-{port}.conf"), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--logfile", str(folder / f"redis-{port}.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: bool(redis.Redis(host="127.0.0.1", port=port).ping()), f"cluster node on port {port}")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _create(cli: str, ports: list[int]) -> None:
    done = subprocess.run(
        [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")


@contextmanager
def spawned_cluster(workdir: Path | None = None) -> Iterator[str]:
    """Run a three-node Redis Cluster (no replicas, no persistence); yield a URL of one node.

    A cluster client given that URL discovers the other nodes from it.
    """
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="fw-redis-cluster-") as scratch, ExitStack() as nodes:
        folder = workdir or Path(scratch)
        ports: list[int] = []
        while len(ports) < NODES:
            port = node_port()
            if port not in ports and port + BUS_OFFSET not in ports:
                ports.append(port)
        for port in ports:
            nodes.enter_context(_node(server, folder, port))
        _create(cli, ports)
        for port in ports:
            wait_until(partial(_node_ok, port), f"cluster_state:ok on node {port}", timeout=30)
        yield f"redis://127.0.0.1:{ports[0]}/0"


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Spawn a three-node Redis Cluster for the test session and yield the URL of one node."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail(INSTALL_HINT)
    with spawned_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture
def redis_cluster_url(redis_cluster: str) -> Iterator[str]:
    """The session's cluster, every node emptied before each test."""
    client = RedisCluster.from_url(redis_cluster)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield redis_cluster
    client.close()
