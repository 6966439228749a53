"""Delivery benchmarks (issue 11): rate held, unthrottled throughput, and how fast the flow decides.

    python -m bench.bench_delivery [--sections rate,throughput,enqueue] [--seconds 60] [--workers 2]

Real parts: a redis-server on a free port, the Twilio stand-in (the official `twilio` client's wire
format) in a process of its own, and `forewarn deliver` worker processes. Each figure is printed
beside a reference measured in the same run:

- rate held: `sms.rate_per_second` 50 and 200, two workers sharing the pace, for `--seconds`; the
  achieved rate at the stand-in (accepts in the steady span) against the configured one (goal: within 5 %);
- unthrottled: messages/s reaching the stand-in from N workers, with duplicates counted, beside a
  plain loop of the same `messages.create` requests from 16 threads of one process (goal ≥ 500/s);
- enqueue: messages/s the flow's outreach decides and writes to the Redis outbox (render, envelope,
  decided mark and stream entry), beside Redis's own rate for the same number of pipelined XADDs
  (goal ≥ 20,000/s).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import yaml

from tests.servers.ports import stop_process

ROOT = Path(__file__).resolve().parents[1]
FROM = "+15005550006"


@dataclass
class Row:
    name: str
    figure: str
    reference: str
    goal: str
    met: bool

    def line(self) -> str:
        return (f"{self.name:<44}{self.figure:>14}  {self.reference:<30}{self.goal:<24}"
                f"{'met' if self.met else 'missed':>7}")


def emit(row: Row) -> None:
    print(row.line(), flush=True)


# --- the stand-in in a process of its own ---------------------------------------------------------

def _serve_standin(port_out: Any, stats_in: Any) -> None:
    from tests.servers.twilio_standin import start_standin, stop_standin

    state, server, thread = start_standin()
    port_out.send((state.base_url, state.account_sid, state.auth_token))
    while True:
        command = stats_in.recv()
        if command == "stop":
            stop_standin(state, server, thread)
            return
        if command == "reset":
            state.reset()
            stats_in.send(0)
        else:
            with state._lock:
                messages = list(state.messages)
            stats_in.send(Counter(m.to for m in messages))


class Standin:
    """The Twilio stand-in in a process of its own (it must not share the workers' or the bench's GIL)."""

    def __init__(self) -> None:
        parent_port, child_port = mp.Pipe()
        self.control, child_control = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(target=_serve_standin, args=(child_port, child_control),
                                                    daemon=True)
        self.proc.start()
        self.base_url, self.account_sid, self.auth_token = parent_port.recv()

    def stats(self) -> Counter[str]:
        self.control.send("stats")
        return self.control.recv()  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.control.send("reset")
        self.control.recv()

    def stop(self) -> None:
        self.control.send("stop")
        self.proc.join(5)


# --- filling the outbox and running workers -------------------------------------------------------

def numbers(n: int, offset: int = 0) -> list[str]:
    return [f"+1512{(5_000_000 + offset + i):07d}" for i in range(n)]


def fill_outbox(redis_url: str, n: int, incident: str, offset: int = 0) -> float:
    """Enqueue `n` SMS envelopes (one incident); return the seconds it took."""
    from forewarn.connectors.redis_outbox import RedisOutbox
    from forewarn.envelopes import Envelope
    from forewarn.records import Message, MessageKey

    outbox = RedisOutbox(redis.Redis.from_url(redis_url))
    now = datetime.now(UTC)
    envelopes = [Envelope(Message(MessageKey(incident, f"CU-{offset + i}", "warning"), "sms", to,
                                  f"Service notice {incident}: an outage near you."), now, now + timedelta(hours=1))
                 for i, to in enumerate(numbers(n, offset))]
    started = time.perf_counter()
    outbox.enqueue(envelopes, now)
    return time.perf_counter() - started


def write_config(path: Path, redis_url: str, base_url: str, rate: float | None) -> Path:
    sms: dict[str, Any] = {"from_number": FROM, "base_url": base_url}
    if rate is not None:
        sms["rate_per_second"] = rate
    path.write_text(yaml.safe_dump({
        "redis": {"url": redis_url}, "sms": sms, "outreach": {"channels": ["sms"]},
        "delivery": {"concurrency": {"sms": 32}, "batch": 200}}))
    return path


def start_workers(config: Path, n: int, log: Path, standin: Standin) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "TWILIO_ACCOUNT_SID": standin.account_sid, "TWILIO_AUTH_TOKEN": standin.auth_token}
    out = log.open("ab")
    from forewarn.flows.cluster import forewarn_command

    return [subprocess.Popen([*forewarn_command(), "deliver", "-c", str(config)],
                             stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT) for _ in range(n)]


def accepted(standin: Standin) -> int:
    return sum(standin.stats().values())


# --- sections ------------------------------------------------------------------------------------

def section_rate(redis_url: str, standin: Standin, tmp: Path, seconds: float, workers: int) -> None:
    for rate in (50.0, 200.0):
        standin.reset()
        redis.Redis.from_url(redis_url).flushall()
        fill_outbox(redis_url, int(rate * (seconds + 20)), f"INC-RATE-{int(rate)}")
        procs = start_workers(write_config(tmp / f"rate{int(rate)}.yaml", redis_url, standin.base_url, rate),
                              workers, tmp / "workers.log", standin)
        try:
            _wait_for(lambda r=rate: accepted(standin) > r * 2, 60, "workers to start sending")
            start_count, started = accepted(standin), time.monotonic()
            time.sleep(seconds)
            achieved = (accepted(standin) - start_count) / (time.monotonic() - started)
        finally:
            for proc in procs:
                stop_process(proc)
        error = achieved / rate - 1
        emit(Row(f"rate held at {rate:.0f}/s, {workers} workers, {seconds:.0f}s", f"{achieved:.1f}/s",
                 f"{rate:.0f}/s configured", "within 5 %", abs(error) <= 0.05))
        print(f"    error {error:+.2%}", flush=True)


def section_throughput(redis_url: str, standin: Standin, tmp: Path, workers: int, n: int) -> None:
    standin.reset()
    redis.Redis.from_url(redis_url).flushall()
    fill_outbox(redis_url, n, "INC-FAST")
    procs = start_workers(write_config(tmp / "fast.yaml", redis_url, standin.base_url, None), workers,
                          tmp / "workers.log", standin)
    try:
        _wait_for(lambda: accepted(standin) > 0, 60, "the first send")
        started = time.monotonic()
        _wait_for(lambda: accepted(standin) >= n, 600, f"{n} sends")
        seconds = time.monotonic() - started
    finally:
        for proc in procs:
            stop_process(proc)
    time.sleep(1)
    counts = standin.stats()
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    reference = plain_loop(standin, 3_000)
    figure = n / seconds
    emit(Row(f"unthrottled, {workers} workers, {n:,} SMS", f"{figure:,.0f}/s", f"plain loop {reference:,.0f}/s",
             "≥ 500/s, 0 duplicates", figure >= 500 and duplicates == 0))
    print(f"    duplicates {duplicates}; recipients reached {len(counts):,} of {n:,}", flush=True)


def plain_loop(standin: Standin, n: int, threads: int = 16) -> float:
    """The same create requests from one process, 16 threads, no outbox: the HTTP path's own rate."""
    from twilio.rest import Client

    client = Client(standin.account_sid, standin.auth_token)
    client.api.base_url = standin.base_url
    client.edge = client.region = None
    targets = numbers(n, offset=9_000_000)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda to: client.messages.create(to=to, from_=FROM, body="plain loop"), targets))
    return n / (time.perf_counter() - started)


def section_enqueue(redis_url: str, n: int) -> None:
    from forewarn.connectors.memory import InMemoryCustomerIndex
    from forewarn.connectors.redis_outbox import RedisOutbox
    from forewarn.connectors.templates import JinjaRenderer
    from forewarn.outreach.audience import Recipient
    from forewarn.outreach.enqueue import Enqueuer
    from forewarn.outreach.planner import Outreach, OutreachReport
    from forewarn.records import Customer, Incident
    from forewarn.settings import BUNDLED_CONFIG

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    customers = [Customer(id=f"CU-{i}", region=f"TX-{i % 20:03d}", phone=to, timezone="America/Chicago",
                          email=f"c{i}@example.com" if i % 3 else None, preferred_channel="sms" if i % 4 else "email")
                 for i, to in enumerate(numbers(n))]
    recipients = [Recipient(c, c.preferred_channel, c.contact(c.preferred_channel) or "") for c in customers]
    now = datetime.now(UTC)
    incident = Incident("INC-BENCH-no_internet-TX", "no_internet", "TX-001", "opened", now, now, now, 40, 4.0, 1, 1)
    outreach = Outreach(InMemoryCustomerIndex(), Enqueuer(RedisOutbox(client)), JinjaRenderer(BUNDLED_CONFIG /
                                                                                                  "templates"))
    report = OutreachReport(incident)
    started = time.perf_counter()
    outreach._send(report, incident, "warning", recipients)
    seconds = time.perf_counter() - started
    assert report.outcomes["enqueued"] == n, report.outcomes
    client.flushall()
    pipe = client.pipeline(transaction=False)
    started = time.perf_counter()
    for i in range(n):
        pipe.xadd("bench:stream", {"id": f"INC|CU-{i}|warning|sms"})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    raw = n / (time.perf_counter() - started)
    figure = n / seconds
    emit(Row(f"decide + enqueue, {n:,} recipients", f"{figure:,.0f}/s", f"pipelined XADD {raw:,.0f}/s",
             "≥ 20,000/s", figure >= 20_000))


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="enqueue,throughput,rate")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    from tests.servers.redis_server import spawned_redis

    sections = args.sections.split(",")
    print(f"{'measure':<44}{'figure':>14}  {'reference (same run)':<30}{'goal':<24}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fw-bench-delivery-") as scratch, spawned_redis() as redis_url:
        tmp = Path(scratch)
        standin = Standin()
        try:
            if "enqueue" in sections:
                section_enqueue(redis_url, args.messages)
            if "throughput" in sections:
                section_throughput(redis_url, standin, tmp, args.workers, args.messages)
            if "rate" in sections:
                section_rate(redis_url, standin, tmp, args.seconds, args.workers)
        finally:
            standin.stop()


if __name__ == "__main__":
    main()
