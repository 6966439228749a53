"""A real redis-server on a free port: never the machine's shared instance on 6379."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.servers.ports import free_port, wait_until

INSTALL_HINT = "redis-server is not installed: run `apt-get install -y redis-server` (see .ci/run)"


@contextmanager
def spawned_redis(workdir: Path | None = None) -> Iterator[str]:
    """Run redis-server on a free loopback port, without persistence; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="fw-redis-") as scratch:
        folder = workdir or Path(scratch)
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            # our process, not another's on the same port (xdist workers each start one): it must still be running
            wait_until(lambda: proc.poll() is None and bool(redis.Redis.from_url(url).ping()),
                       f"redis-server on port {port}")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Spawn redis-server for the test session and yield its URL."""
    if shutil.which("redis-server") is None:
        pytest.fail(INSTALL_HINT)
    with spawned_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    yield redis_server
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the session's Redis, emptied before the test."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
