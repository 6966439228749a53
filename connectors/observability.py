"""The flow process's HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for the orchestrator.

A Starlette app (`observability_app`, which the web app can extend) served by uvicorn from a daemon
thread of the flow process: the Bytewax workers keep the main thread, and a scrape costs them only
the moments the HTTP thread holds the GIL. Also here: the age of the Bytewax recovery store's last
write, read from its files on scrape.

- `/metrics`: the registry in Prometheus' text format (OpenMetrics when asked, gzip when accepted).
- `/healthz`: 200 while the process serves HTTP at all.
- `/readyz`: 200 once `ready()` returns None; else 503 with `{"status": "not ready", "reason": ...}`.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import uvicorn
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from forewarn.batches import RawBatch
from forewarn.metrics import EngineMetrics
from forewarn.settings import ConfigError

log = logging.getLogger(__name__)

Ready = Callable[[], "str | None"]
"""None when ready, else what is missing (shown as the 503's reason)."""


class _Asgi:
    """An ASGI app as a Starlette route endpoint (a plain function would be taken for a request handler)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


def observability_app(registry: CollectorRegistry, ready: Ready) -> Starlette:
    """/metrics, /healthz and /readyz over `registry` and `ready`."""

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        try:
            missing = ready()
        except Exception as exc:  # a failing check means not ready, never a 500 with a traceback
            missing = f"the readiness check failed ({type(exc).__name__})"
        if missing is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": missing}, status_code=503)

    return Starlette(routes=[
        Route("/metrics", _Asgi(make_asgi_app(registry)), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ])


class ObservabilityServer:
    """`app` served on host:port from a daemon thread; `start` binds first, so a taken port fails at once.

    The web app (`forewarn.web`) is served the same way, with its own settings' names in the errors.
    Access logs are off: URLs may carry message ids and unsubscribe tokens.
    """

    def __init__(self, app: Starlette, host: str, port: int, setting: str = "observability.metrics_port", *,
                 host_setting: str = "observability.host", what: str = "/metrics",
                 name: str = "forewarn-observability") -> None:
        self.app = app
        self.host = host
        self.port = port
        self._setting, self._host_setting, self._what, self._name = setting, host_setting, what, name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 5.0) -> ObservabilityServer:
        sock = listen_socket(self.host, self.port, self._setting, self._host_setting, self._what)
        self.port = int(sock.getsockname()[1])
        server = uvicorn.Server(uvicorn_config(self.app, self.host, self.port))
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"{self._what} on {self.host}:{self.port} did not start within {timeout:g}s")
            time.sleep(0.01)
        log.info("%s on %s", self._what, self.url)
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ObservabilityServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def uvicorn_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
                          loop="asyncio", http="h11", server_header=False, timeout_graceful_shutdown=1)


def listen_socket(host: str, port: int, setting: str, host_setting: str = "observability.host",
                  what: str = "/metrics") -> socket.socket:
    """A listening socket on host:port (0: any free port), or a ConfigError naming the settings."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"{host_setting} {host!r} is not an address to listen on ({exc.strerror}): "
                          "use e.g. 127.0.0.1, or 0.0.0.0 inside a container") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} for {what} ({exc.strerror}): another process holds "
                          f"the port, or the address is not this machine's; change {setting} or "
                          f"{host_setting}") from None
    sock.setblocking(False)
    return sock


SNAPSHOT_FILES = ("part-*.sqlite3", "part-*.sqlite3-wal")
"""What Bytewax 0.21 recovery writes in its directory: one SQLite file per partition (and its WAL,
written at every epoch's snapshot: Bytewax runs SQLite in WAL mode)."""


def snapshot_age(directory: Path, clock: Callable[[], float] = time.time) -> Callable[[], float | None]:
    """Seconds since the recovery store in `directory` was last written (None: no store there).

    Bytewax writes the frontier and the changed state at the close of every epoch (recovery's
    snapshot interval), so this grows past that interval only when snapshots stop. Before the
    first snapshot it counts from `python -m bytewax.recovery`."""

    def age() -> float | None:
        newest: float | None = None
        for pattern in SNAPSHOT_FILES:
            for path in directory.glob(pattern):
                try:
                    written = path.stat().st_mtime
                except FileNotFoundError:  # a WAL checkpointed away between glob and stat
                    continue
                newest = written if newest is None else max(newest, written)
        return None if newest is None else max(clock() - newest, 0.0)

    return age


X = TypeVar("X")
S = TypeVar("S")
_KAFKA_PART = re.compile(r"(\d+)-(.+)")

LAG_EVERY = 1.0
"""Seconds between two readings of a partition's consumer lag (a cached watermark: no request)."""


def part_origin(part: str) -> tuple[str, int | None]:
    """The (source, partition) a source partition's name stands for: Bytewax names a Kafka partition
    `{index}-{topic}`; any other name (a JSONL file) is the source itself.

    >>> part_origin("0-cases"), part_origin("/data/cases.jsonl")
    (('cases', 0), ('/data/cases.jsonl', None))
    """
    match = _KAFKA_PART.fullmatch(part)
    return (match.group(2), int(match.group(1))) if match else (part, None)


class MeteredPartition(StatefulSourcePartition[X, S], Generic[X, S]):
    """A source partition that counts each batch it reads (one call per batch) and, for a Kafka partition,
    reports its consumer lag at most every `LAG_EVERY` seconds. Items and snapshots are the wrapped
    partition's own: a recovery store written without the wrapper resumes with it."""

    def __init__(self, inner: StatefulSourcePartition[X, S], metrics: EngineMetrics, source: str,
                 partition: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._metrics = metrics
        self._source = source
        self._partition = partition
        self._clock = clock
        self._kafka = _kafka_partition(inner) if partition is not None else None
        self._next_lag = 0.0

    def next_batch(self) -> Iterable[X]:
        batch = self._inner.next_batch()  # StopIteration (the end of a file or non-tailing topic) passes through
        if not isinstance(batch, list | tuple):
            batch = list(batch)
        if batch:
            # A Forewarn source hands over one RawBatch a poll: count its records, not the one item.
            records = sum(len(item.records) if isinstance(item, RawBatch) else 1 for item in batch)
            self._metrics.records_in(self._source, self._partition, records)
        if self._kafka is not None and self._partition is not None and (now := self._clock()) >= self._next_lag:
            self._next_lag = now + LAG_EVERY
            lag = consumer_lag(self._kafka, self._source, self._partition)
            if lag is not None:
                self._metrics.consumer_lag(self._source, self._partition, lag)
        return batch

    def next_awake(self) -> Any:
        return self._inner.next_awake()

    def snapshot(self) -> S:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class MeteredSource(FixedPartitionedSource[X, S], Generic[X, S]):
    """Any fixed-partitioned source (Kafka, JSONL files) whose partitions count what they read into `metrics`;
    building a partition marks the flow as running for /readyz. Partition names, items and resume state are
    the wrapped source's."""

    def __init__(self, inner: FixedPartitionedSource[X, S], metrics: EngineMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def list_parts(self) -> list[str]:
        return list(self.inner.list_parts())

    def build_part(self, step_id: str, for_part: str, resume_state: S | None) -> MeteredPartition[X, S]:
        part = self.inner.build_part(step_id, for_part, resume_state)
        self.metrics.flow_running()
        source, partition = part_origin(for_part)
        return MeteredPartition(part, self.metrics, source, partition)


def _kafka_partition(part: Any) -> Any:
    """Bytewax's own Kafka partition inside the wrappers (`_inner`), if that is what this is."""
    for _ in range(8):
        if hasattr(part, "_consumer") and hasattr(part, "_offset"):
            return part
        part = getattr(part, "_inner", None)
        if part is None:
            return None
    return None


def consumer_lag(part: Any, topic: str, partition: int) -> int | None:
    """High watermark minus the next offset to read, from the consumer's cached watermark (no request); None
    until the partition has a real offset (it starts at OFFSET_BEGINNING/END) or when the consumer cannot say.

    Reads Bytewax 0.21's `_KafkaSourcePartition` (`_consumer`, `_offset`): Bytewax is pinned to that release."""
    offset = getattr(part, "_offset", -1)
    if not isinstance(offset, int) or offset < 0:
        return None
    try:
        _, high = part._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    except Exception:  # a closed consumer or no fetch yet: no reading this time
        return None
    if not isinstance(high, int) or high < 0:
        return None
    return max(high - offset, 0)
