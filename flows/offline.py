"""The file-driven commands: detect (backtest), replay (dry-run), customers load, audience preview."""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import redis
from bytewax.testing import run_main

from forewarn import config_rules
from forewarn.connectors.customer_files import read_customers
from forewarn.connectors.health import check_redis, connect_cluster, redis_location
from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.flows.early_warning import build_flow
from forewarn.flows.startup import CHECK_TIMEOUT, redis_target
from forewarn.flows.wiring import file_io, memory_io
from forewarn.interfaces import CustomerIndex
from forewarn.records import Customer, DeadLetter
from forewarn.reports.backtest_report import write_backtest_report
from forewarn.reports.summary import RunSummary
from forewarn.settings import ConfigError, RedisSettings, Secrets, Settings


def run_detect(settings: Settings, inputs: list[Path], output: Path, report: Path | None = None
               ) -> dict[str, object]:
    """Detection alone over JSONL files: spikes to `output`, bad records beside it, optionally a report."""
    out = output.parent
    letters = output.with_name(output.stem + ".dead_letters.jsonl")
    windows = output.with_name(output.stem + ".windows.jsonl")
    for path in (output, letters, windows):
        path.unlink(missing_ok=True)
    io = file_io(settings, inputs, out, outreach=None)
    io.spikes = _sink(output)
    io.dead_letters = _sink(letters)
    if report is not None:
        io.windows = _sink(windows)
    run_main(build_flow(settings, io, "forewarn-detect"))
    result: dict[str, object] = {"spikes": _lines(output), "dead_letters": _lines(letters),
                                 "dead_letters_path": letters}
    if report is not None:
        result["alarms"] = write_backtest_report(report, output, windows, settings.detection.slide.total_seconds())
        windows.unlink(missing_ok=True)
    return result


def _sink(path: Path):  # type: ignore[no-untyped-def]
    from forewarn.connectors.jsonl import JsonlSink

    return JsonlSink(path, lambda b: b)


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def load_memory_index(settings: Settings, path: Path) -> InMemoryCustomerIndex:
    index = InMemoryCustomerIndex(settings.targeting.extra_traits)
    index.upsert(c for c in read_customers(path) if isinstance(c, Customer))
    return index


def run_replay(settings: Settings, inputs: list[Path], out: Path, customers: Path | None) -> RunSummary:
    """The full flow over files with the ledger in memory and sends written to outbox files."""
    if customers is not None:
        index: CustomerIndex = load_memory_index(settings, customers)
    else:
        index = redis_index(settings, None)
    for name in ("incidents.jsonl", "dead_letters.jsonl", "spikes.jsonl", "outbox_sms.jsonl", "outbox_email.jsonl"):
        (out / name).unlink(missing_ok=True)
    io = memory_io(settings, inputs, out, index, upsert_customers=customers is not None)
    run_main(build_flow(settings, io, "forewarn-replay"))
    if io.drain is not None and not io.drain():
        raise RuntimeError("the replay's outbox did not drain in time")
    return RunSummary.from_dir(out)


def redis_connection(settings: Settings, url: str | None, timeout: float = CHECK_TIMEOUT
                     ) -> tuple[redis.Redis, str]:
    """A client for `url`, else the configured Redis (FOREWARN_REDIS_URL first), and the key prefix;
    checked with PING, so a bad URL, a Redis that is down or refuses us is a ConfigError naming the setting."""
    secrets = Secrets()
    if url is None and settings.redis is None and secrets.forewarn_redis_url is None:
        raise ConfigError("no Redis configured: add a redis section to the config, set FOREWARN_REDIS_URL, "
                          "or pass --redis-url")
    redis_settings = settings.redis or RedisSettings()
    if url is not None:
        try:
            config_rules.redis_url(url)
        except ValueError as exc:
            raise ConfigError(f"--redis-url: {exc}") from None
        target, setting = url, "--redis-url"
    else:
        target, setting = redis_target(settings.model_copy(update={"redis": redis_settings}), secrets)
    if redis_settings.cluster:  # the cluster client checks the nodes as it reads the slot map
        try:
            config_rules.redis_cluster_url(target)
        except ValueError as exc:
            raise ConfigError(f"{setting}: {exc}") from None  # the rule never echoes the URL (it may hold a password)
        return cast(redis.Redis, connect_cluster(target, setting)), redis_settings.prefix
    probe = redis.Redis.from_url(target, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        check_redis(probe, setting, redis_location(target))
    finally:
        probe.close()
    return redis.Redis.from_url(target), redis_settings.prefix


def redis_index(settings: Settings, url: str | None) -> RedisCustomerIndex:
    client, prefix = redis_connection(settings, url)
    return RedisCustomerIndex(client, prefix, extra_traits=settings.targeting.extra_traits)


def load_customers(settings: Settings, path: Path, redis_url: str | None) -> tuple[int, int, float]:
    """Upsert customers from CSV/JSONL into Redis; rejected rows are written beside the file."""
    index = redis_index(settings, redis_url)
    started = time.perf_counter()
    rejected_path = path.with_name(path.name + ".rejected.jsonl")
    rejected_path.unlink(missing_ok=True)
    good: list[Customer] = []
    loaded = rejected = 0
    with rejected_path.open("ab") as rejects:
        for item in read_customers(path):
            if isinstance(item, DeadLetter):
                rejects.write(item.to_json() + b"\n")
                rejected += 1
                continue
            good.append(item)
            if len(good) >= 5000:
                loaded += index.upsert(good)
                good.clear()
        loaded += index.upsert(good)
    if not rejected:
        rejected_path.unlink()
    return loaded, rejected, time.perf_counter() - started
