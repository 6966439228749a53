"""The engine benchmarks (issue 10): each figure beside a reference measured in the same run.

    python -m bench.bench_engine [--quick] [section ...]

Sections (all by default, in this order):

- ``detection``: Forewarn's detection path (what ``forewarn detect FILE -c CONFIG`` runs:
  ``flows.offline.run_detect``, called in-process) over seeded JSONL case records (20 topics x 200
  regions, 5-minute slide, 1-hour window, one worker, a few surges), beside a plain-Python loop doing
  the same work in the same process (orjson parse, pane per record, per (topic, pane, region) counts,
  window sums over 12 panes, a threshold check per key at each pane close).
  Goals: >= 150,000 records/s per worker, and >= 0.5x the plain loop. ``--records N``.
- ``kafka``: N case records on a real Tansu broker; a plain confluent-kafka consume loop reads them all,
  then the Forewarn flow does (``kafka_source``, tail false, replay mode, as ``production_io`` builds it;
  it stops at the end of the partition). Goal >= 0.5x the plain loop. ``--kafka-records N``.
- ``latency``: event to decision, live. A child process tails a topic with detection at ``--slide``
  (default 15m, the default config) and ``--lateness``; background cases cover the warm-up, then
  ``--keys`` keys without background get ``--surge`` cases each, every ``--gap`` s, stamped with their send
  time, the keys' starts ``--stagger`` s apart (so their tipping records meet the flow's polls at different
  phases). Spikes fired early are asked for where the flow can (FlowIO.early_spikes). For each
  key's first spike, latency = arrival at the spikes sink - send time of the k-th surge record, k the
  spike's observed count. Reference: how long the same records took to reach the flow's source.
  Goal p99 <= 1 s. ``--timeout`` bounds the wait.
- ``scale``: the production flow (``production_io``, Kafka + Redis, outreach with no channels) run with
  ``python -m bytewax.run`` as 1 process x 1 worker, then 2 processes x 1 worker (``-i/-a``), over a
  2-partition cases topic: records/s of each, the ratio (goal >= 1.6x), whether the spikes are the same,
  and the late dead letters. ``--scale-records N``.
- ``state``: pickled bytes per key of the state the flow keeps per key, at 10,000 and 100,000 keys
  (goal <= 2 KB a key), beside a plain ring of 12 counts per key.

Each section ends with its rows: figure, reference, ratio, goal, met/missed; a summary repeats them.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import select
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.engine_data import generate_cases, reference_loop
from forewarn.durations import parse_duration
from tests.servers.ports import stop_process

SECTIONS = ("detection", "kafka", "latency", "scale", "state")
ROOT = Path(__file__).resolve().parents[1]


# --- result rows ----------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    figure: str
    reference: str
    ratio: str
    goal: str
    met: bool | None
    """None: not measured (e.g. no spike within the timeout)."""

    @property
    def verdict(self) -> str:
        return "n/a" if self.met is None else ("met" if self.met else "missed")


ROWS: list[Row] = []
_HEAD = f"{'measure':<36}{'figure':>18}{'reference':>18}{'ratio':>9}  {'goal':<16}{'':>7}"


def print_rows(rows: list[Row]) -> None:
    print(_HEAD)
    for r in rows:
        print(f"{r.name:<36}{r.figure:>18}{r.reference:>18}{r.ratio:>9}  {r.goal:<16}{r.verdict:>7}")


def emit(*rows: Row) -> None:
    ROWS.extend(rows)
    print_rows(list(rows))


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "-"


# --- shared helpers -------------------------------------------------------------------------------

def write_config(path: Path, detection: dict[str, Any], **sections: Any) -> Path:
    path.write_text(yaml.safe_dump({"detection": detection, **sections}, sort_keys=False))
    return path


def detection_config(window: str = "1h", slide: str = "5m", **more: Any) -> dict[str, Any]:
    return {"window": window, "slide": slide, **more}


@contextmanager
def broker(workdir: Path) -> Iterator[str]:
    from tests.servers.kafka_broker import tansu

    with tansu(workdir / "tansu.log") as bootstrap:
        yield bootstrap


def produce(bootstrap: str, topic: str, lines: list[bytes], partition_of: Callable[[bytes], int] | None = None
            ) -> float:
    """Produce `lines` in order (per partition); returns the seconds it took, flush included."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                         "batch.num.messages": 10_000, "queue.buffering.max.messages": 1_000_000,
                         "compression.type": "none"})
    started = time.perf_counter()
    for n, line in enumerate(lines):
        while True:
            try:
                if partition_of is None:
                    producer.produce(topic, value=line, partition=0)
                else:
                    producer.produce(topic, value=line, partition=partition_of(line))
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} records were not delivered to the broker")
    return time.perf_counter() - started


def consume_all(bootstrap: str, topic: str, expected: int | None, quiet: float = 1.0, timeout: float = 300.0
                ) -> tuple[list[bytes], float]:
    """Every value of `topic` by a plain assign-and-consume loop; returns them and the seconds from creating
    the consumer to the last record. Done when every partition reported its end and `expected` records
    (if given) were read, or nothing arrived for `quiet` seconds after the ends (Tansu's offsets lag)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    started = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    values: list[bytes] = []
    last = started
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        pending = set(parts)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            done = not pending and (len(values) >= expected if expected is not None else True)
            if done and (expected is not None or time.perf_counter() - last >= quiet):
                break
            for msg in consumer.consume(1000, 0.2):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise RuntimeError(f"error reading {topic}: {error}")
                values.append(msg.value() or b"")
                last = time.perf_counter()
    finally:
        consumer.close()
    return values, last - started


def percentile(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (q=0.99 of 20 values is the largest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(-(-q * len(ordered) // 1)) - 1))]


# --- 1. detection path ----------------------------------------------------------------------------

def section_detection(args: argparse.Namespace, tmp: Path) -> None:
    from forewarn.flows.offline import run_detect
    from forewarn.settings import load_settings

    n_target = args.records
    print(f"\n== detection: ~{n_target:,} case records, 20 topics x 200 regions, slide 5m, window 1h, one worker")
    data = generate_cases(n_target, seed=args.seed)
    events = tmp / "cases.jsonl"
    started = time.perf_counter()
    n = data.write(events)
    print(f"generated {n:,} records ({events.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f}s; "
          f"surges: " + ", ".join(f"{s.topic}/{s.region} x{s.factor:g}" for s in data.surges))
    config = write_config(tmp / "detect.yaml", detection_config())
    settings = load_settings(config)
    slide_s = int(settings.detection.slide.total_seconds())
    panes = settings.detection.window // settings.detection.slide

    best_ref, ref = float("inf"), None
    for _ in range(args.repeat):
        started = time.perf_counter()
        with events.open("rb") as lines:
            ref = reference_loop(lines, slide_s, panes)
        best_ref = min(best_ref, time.perf_counter() - started)
    assert ref is not None
    best_flow, result = float("inf"), {}
    output = tmp / "detect-out" / "spikes.jsonl"
    output.parent.mkdir(exist_ok=True)
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = run_detect(settings, [events], output)
        best_flow = min(best_flow, time.perf_counter() - started)
    spikes = [orjson.loads(line) for line in output.read_bytes().splitlines()] if output.exists() else []
    keys = {(s["key"]["topic"], s["key"]["region"]) for s in spikes}
    print(f"{'run':<34}{'best s':>9}{'records/s':>14}{'spikes':>9}{'keys':>7}")
    print(f"{'plain loop (reference)':<34}{best_ref:>9.2f}{n / best_ref:>14,.0f}{ref.spikes:>9}{ref.fired_keys:>7}")
    print(f"{'forewarn detect (run_detect)':<34}{best_flow:>9.2f}{n / best_flow:>14,.0f}{len(spikes):>9}"
          f"{len(keys):>7}   dead letters {result.get('dead_letters')}")
    print("(spikes: key-windows that fired; the reference's naive per-key mean also fires on every region of the "
          "national surge and on daily peaks)")
    flow_rate, ref_rate = n / best_flow, n / best_ref
    emit(Row("detection records/s per worker", rate(n, best_flow), rate(n, best_ref),
             f"{flow_rate / ref_rate:.2f}x", ">=150,000/s", flow_rate >= 150_000),
         Row("detection vs plain loop", f"{flow_rate / ref_rate:.2f}x", "1.00x", f"{flow_rate / ref_rate:.2f}x",
             ">=0.5x", flow_rate / ref_rate >= 0.5))


# --- 2. Kafka in ----------------------------------------------------------------------------------

def section_kafka(args: argparse.Namespace, tmp: Path) -> None:
    from bytewax.testing import run_main

    from bench.engine_flows import Counted, PartStats, flow_io_options
    from forewarn.connectors.jsonl import JsonlSink
    from forewarn.connectors.kafka import kafka_source
    from forewarn.flows.early_warning import FlowIO, build_flow
    from forewarn.flows.wiring import encode_spike
    from forewarn.settings import KafkaSettings, load_settings
    from forewarn.sources import SourceKinds
    from tests.servers.kafka_broker import create_topics

    lines = list(generate_cases(args.kafka_records, seed=args.seed).lines())
    n = len(lines)
    print(f"\n== kafka: {n:,} case records on a 1-partition topic of a Tansu broker, read by a plain "
          f"confluent-kafka loop and by the Forewarn flow (tail false)")
    settings = load_settings(write_config(tmp / "kafka.yaml", detection_config()))
    batch = KafkaSettings(brokers=["127.0.0.1:9092"]).batch_size  # the configured default, as production_io
    with broker(tmp) as bootstrap:
        topic = f"bench-cases-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, [topic])
        took = produce(bootstrap, topic, lines)
        print(f"produced in {took:.1f}s ({rate(n, took)})")
        values, plain_s = consume_all(bootstrap, topic, n)
        if len(values) != n:
            print(f"warning: the plain loop read {len(values):,} of {n:,} records")
        stats: list[PartStats] = []
        source = Counted(kafka_source([bootstrap], [topic], False, batch), stats.append)
        out = tmp / "kafka-out"
        io = FlowIO(source=source, types={topic: SourceKinds.only("case")},
                    dead_letters=JsonlSink(out / "dead_letters.jsonl", lambda b: b),
                    spikes=JsonlSink(out / "spikes.jsonl", lambda b: b), encode_spike=encode_spike, replay=True,
                    **flow_io_options(source, {topic}))
        started = time.perf_counter()
        run_main(build_flow(settings, io, "bench-kafka"))
        flow_s = time.perf_counter() - started
    read = sum(s["records"] for s in stats)
    spikes = len((out / "spikes.jsonl").read_bytes().splitlines()) if (out / "spikes.jsonl").exists() else 0
    print(f"{'run':<40}{'s':>9}{'records':>12}{'records/s':>14}")
    print(f"{'plain consume loop (reference)':<40}{plain_s:>9.2f}{len(values):>12,}{len(values) / plain_s:>14,.0f}")
    print(f"{'forewarn flow from Kafka':<40}{flow_s:>9.2f}{read:>12,}{read / flow_s:>14,.0f}   spikes {spikes}")
    if read != n:
        print(f"note: the flow stopped at the end of the partition after {read:,} of {n:,} records")
    ratio = (read / flow_s) / (len(values) / plain_s)
    emit(Row("kafka in: flow vs plain consume", rate(read, flow_s), rate(len(values), plain_s), f"{ratio:.2f}x",
             ">=0.5x", ratio >= 0.5))


# --- 3. event to decision -------------------------------------------------------------------------

class ChildLines:
    """A child's stdout lines, read as they come."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc
        self._buffer = b""

    def poll(self, timeout: float) -> list[str]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout))
        if ready:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            self._buffer += chunk
        lines = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            lines.append(line.decode())
        return lines


def section_latency(args: argparse.Namespace, tmp: Path) -> None:
    from confluent_kafka import Producer

    from forewarn.durations import format_duration
    from forewarn.settings import load_settings
    from tests.servers.kafka_broker import create_topics

    slide = parse_duration(args.slide)
    parse_duration(args.lateness)  # a bad value fails here, before any server starts
    window = timedelta(hours=1)
    if window % slide:
        raise SystemExit(f"--slide {args.slide} must divide the 1h window")
    config = write_config(tmp / "latency.yaml", detection_config(slide=args.slide, allowed_lateness=args.lateness))
    warmup = load_settings(config).detection.warmup
    print(f"\n== latency: live (tail) flow, slide {args.slide}, allowed lateness {args.lateness}, "
          f"warm-up {format_duration(warmup)}; "
          f"{args.keys} keys x {args.surge} surge cases stamped with their send time; timeout {args.timeout:g}s")
    rng = random.Random(args.seed)
    with broker(tmp) as bootstrap:
        topic = f"bench-live-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, [topic])
        log = (tmp / "latency-child.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "bench.engine_flows", bootstrap, topic, str(config)],
                                stdout=subprocess.PIPE, stderr=log, cwd=ROOT)
        child = ChildLines(proc)
        reads: list[tuple[float, int]] = []  # (wall time, records read so far)
        spikes: list[tuple[float, str, str, int, float, float]] = []

        def drain(timeout: float) -> None:
            for line in child.poll(timeout):
                parts = line.split()
                if parts[:1] == ["read"]:
                    reads.append((float(parts[2]), int(parts[1])))
                elif parts[:1] == ["spike"]:
                    spikes.append((float(parts[1]), parts[2], parts[3], int(parts[4]), float(parts[5]),
                                   float(parts[6])))

        try:
            # Background: every topic, over warm-up + window + two slides before now, none on the surge keys.
            now = datetime.now(UTC)
            span = warmup + window + 2 * slide
            topics = [f"topic{t:02d}" for t in range(args.keys)]
            stamps = sorted(now - span + (span - timedelta(seconds=5)) * rng.random() for _ in range(args.background))
            plan = [(ts, rng.choice(topics)) for ts in stamps]
            background = [orjson.dumps({"type": "case", "id": f"B-{n}", "ts": ts.isoformat().replace("+00:00", "Z"),
                                        "customer_id": f"CU-{rng.randrange(10**6)}", "topic": t,
                                        "region": f"R{rng.randrange(200):03d}"}) for n, (ts, t) in enumerate(plan)]
            produce(bootstrap, topic, background)
            deadline = time.monotonic() + 120
            while not (reads and reads[-1][1] >= len(background)) and time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"the live flow exited (see {log.name})")
                drain(0.5)
            if not reads or reads[-1][1] < len(background):
                raise RuntimeError(f"the live flow did not read the background within 120s (see {log.name})")
            drain(1.0)
            print(f"background: {len(background):,} cases on {len(topics)} topics over the last "
                  f"{format_duration(span)}, read by the flow")

            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
            keys = [(t, f"S{i:02d}") for i, t in enumerate(topics)]
            surge_of = {t: (t, r) for t, r in keys}
            sent: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
            order: list[float] = []  # send time of each surge record, in the order produced
            surge_start = time.time()
            # Key i starts i * stagger after the first and sends a case every `gap` seconds: the tipping
            # records of the keys meet the flow's polls at different phases.
            schedule = sorted((i * args.stagger + j * args.gap, i, j) for i in range(len(keys))
                              for j in range(args.surge))
            for offset, i, j in schedule:
                topic_name, region = keys[i]
                while (pause := surge_start + offset - time.time()) > 0:
                    drain(pause)
                at = time.time()
                ts = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
                producer.produce(topic, value=orjson.dumps(
                    {"type": "case", "id": f"S-{region}-{j}", "ts": ts, "customer_id": f"CU-S{j}",
                     "topic": topic_name, "region": region}), partition=0)
                producer.poll(0)
                sent[(topic_name, region)].append(at)
                order.append(at)
            producer.flush(10)
            surge_end = time.time()
            deadline = time.monotonic() + args.timeout
            first: dict[tuple[str, str], tuple[float, int, str]] = {}  # surge key -> (arrival, k, region fired)
            while time.monotonic() < deadline and len(first) < len(keys):
                drain(0.25)
                for at, t, r, observed, start, end in spikes:
                    key = surge_of.get(t)
                    if key is None or key in first or r not in (key[1], "*") or end <= surge_start:
                        continue
                    # k: the surge record that tipped the window, its background cases (none on the key) aside
                    others = 0 if r != "*" else sum(1 for ts, bt in plan if bt == t and start <= ts.timestamp() < end)
                    if observed > others:
                        first[key] = (at, observed - others, r)
            waited = time.time() - surge_end
        finally:
            stop_process(proc, timeout=10)
            log.close()

    if os.environ.get("BENCH_DEBUG"):
        print("reads", [(round(t - surge_start, 3), c - len(background)) for t, c in reads if t >= surge_start - 1])
        print("spikes", [(round(at - surge_start, 3), t, r, o) for at, t, r, o, _, _ in spikes if at >= surge_start])
        print("sent", {k: [round(x - surge_start, 3) for x in v] for k, v in sent.items()})
    # Reference: the time each surge record took to reach the flow's source (the read count passing it).
    transit: list[float] = []
    base = len(background)
    for k, at in enumerate(order):
        seen = next((t for t, total in reads if total >= base + k + 1), None)
        if seen is not None:
            transit.append(seen - at)
    if first and len(first) < len(keys):
        for key in keys:
            if key not in first:
                fired = [f"{r} observed {o} in {datetime.fromtimestamp(s, UTC):%H:%M}-"
                        f"{datetime.fromtimestamp(e, UTC):%H:%M} at +{at - surge_start:.1f}s"
                        for at, t, r, o, s, e in spikes if t == key[0] and e > surge_start]
                print(f"  no spike counted for {key[0]}/{key[1]}; spikes of its topic since the surge began: "
                      f"{', '.join(fired) or 'none'}")
    latencies = [at - sent[key][max(1, min(k, len(sent[key]))) - 1] for key, (at, k, _) in first.items()]
    national = sum(1 for _, _, r in first.values() if r == "*")
    print(f"{len(first)} of {len(keys)} surge keys got a spike ({national} reported as their topic's national spike)"
          + ("" if len(first) == len(keys) else f" (waited {waited:.0f}s after the surge)"))
    if transit:
        print(f"broker -> source: p50 {1000 * statistics.median(transit):.0f} ms, "
              f"p99 {1000 * percentile(transit, 0.99):.0f} ms over {len(transit)} surge records")
    ref = f"{percentile(transit, 0.99):.3f}s" if transit else "-"
    if not latencies:
        print(f"no spike within {args.timeout:g}s: a spike waits for its pane to close (slide {args.slide} + "
              f"allowed lateness {args.lateness} after the pane starts)")
        emit(Row(f"event->decision p99 (slide {args.slide})", f"none in {args.timeout:g}s", ref, "-", "<=1s", False))
        return
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    print(f"event -> decision over {len(latencies)} keys: p50 {p50:.3f}s, p99 {p99:.3f}s, "
          f"min {min(latencies):.3f}s, max {max(latencies):.3f}s; tipping surge record k "
          f"{sorted({k for _, k, _ in first.values()})}")
    missing = len(keys) - len(first)
    emit(Row(f"event->decision p50 (slide {args.slide})", f"{p50:.3f}s",
             f"{statistics.median(transit):.3f}s" if transit else "-",
             f"{p50 / statistics.median(transit):.2f}x" if transit else "-", "-", None),
         Row(f"event->decision p99 (slide {args.slide})", f"{p99:.3f}s", ref,
             f"{p99 / percentile(transit, 0.99):.2f}x" if transit else "-",
             "<=1s" + (f" ({missing} none)" if missing else ""), p99 <= 1.0 and not missing))


# --- 4. scale-out ---------------------------------------------------------------------------------

@dataclass
class ScaleRun:
    processes: int
    records: int
    seconds: float
    spikes: list[bytes]
    late: int
    letters: int


def section_scale(args: argparse.Namespace, tmp: Path) -> None:
    from tests.servers.kafka_broker import create_topics
    from tests.servers.ports import free_port
    from tests.servers.redis_server import spawned_redis

    lines = list(generate_cases(args.scale_records, seed=args.seed).lines())
    n = len(lines)
    print(f"\n== scale: {n:,} case records on a 2-partition topic (by region); the production flow under "
          f"python -m bytewax.run, 1 process x 1 worker, then 2 processes x 1 worker ({os.cpu_count()} cores)")

    span = (orjson.loads(lines[-1])["ts"], orjson.loads(lines[0])["ts"])
    minutes = (datetime.fromisoformat(span[0]) - datetime.fromisoformat(span[1])).total_seconds() / 60
    print(f"event time: {minutes / 60:.0f}h in all; a 1,000-record batch of one partition spans ~"
          f"{2 * 1000 * minutes / n:.0f} min of it (allowed lateness 10m)")

    def partition_of(line: bytes) -> int:
        return zlib.crc32(orjson.loads(line)["region"].encode()) % 2

    runs: list[ScaleRun] = []
    with broker(tmp) as bootstrap, spawned_redis(tmp) as redis_url:
        # The production topic names (a fresh broker): Bytewax 0.21 places input partitions on workers
        # round-robin over the sorted partition names of all inputs ("0-cases", "0-customers", "0-telemetry",
        # "1-cases"), so these names put the two cases partitions on different processes.
        cases = "cases"
        create_topics(bootstrap, [cases], partitions=2)
        create_topics(bootstrap, ["telemetry", "customers"])
        took = produce(bootstrap, cases, lines, partition_of)
        check, _ = consume_all(bootstrap, cases, n)
        print(f"produced in {took:.1f}s; a plain read back finds {len(check):,}")
        for processes in (1, 2):
            suffix = f"{processes}p-{uuid.uuid4().hex[:6]}"
            topics = {"cases": cases, "telemetry": "telemetry", "customers": "customers",
                      "dead_letters": f"dead-letters-{suffix}", "incidents": f"incidents-{suffix}"}
            create_topics(bootstrap, [topics["dead_letters"], topics["incidents"]])
            config = write_config(tmp / f"scale-{processes}.yaml", detection_config(),
                                  kafka={"brokers": [bootstrap], "topics": topics, "tail": False},
                                  redis={"url": redis_url, "prefix": f"b{processes}"},
                                  outreach={"channels": []})
            out = tmp / f"scale-{processes}"
            out.mkdir()
            flow = f"bench.engine_flows:scale_flow('{config}', '{out}')"
            addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
            procs = []
            for i in range(processes):
                cluster = ["-i", str(i), "-a", addresses] if processes > 1 else []
                procs.append(subprocess.Popen([sys.executable, "-m", "bytewax.run", flow, *cluster], cwd=ROOT,
                                              stdout=(out / f"proc{i}.log").open("wb"), stderr=subprocess.STDOUT))
            deadline = time.monotonic() + args.scale_timeout
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.05)
            ended = time.time()
            for p in procs:
                if p.poll() is None:
                    print(f"warning: process {p.pid} still running after {args.scale_timeout:g}s: stopped")
                    stop_process(p, timeout=10)
                elif p.returncode:
                    print(f"warning: process exited with {p.returncode} (see {out}/proc*.log)")
            stats = [orjson.loads(line) for line in (out / "stats.jsonl").read_bytes().splitlines()] \
                if (out / "stats.jsonl").exists() else []
            case_stats = sorted((s for s in stats if s["part"].split("-", 1)[1] == cases), key=lambda s: s["part"])
            records = sum(s["records"] for s in case_stats)
            firsts = [s["first"] for s in case_stats if s["first"]]
            seconds = ended - min(firsts) if firsts else float("nan")
            spikes = sorted(orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)
                            for f in sorted(out.glob("spikes*.jsonl")) for line in f.read_bytes().splitlines())
            letters, _ = consume_all(bootstrap, topics["dead_letters"], None)
            late = sum(1 for v in letters if orjson.loads(v).get("reason", "").startswith("late"))
            if records != n:
                print(f"warning: the flow read {records:,} of {n:,} records (it stops at the first end of partition "
                      "the broker reports)")
            runs.append(ScaleRun(processes, records, seconds, spikes, late, len(letters)))
            print(f"  {processes} x 1: " + ", ".join(
                f"partition {s['part'].split('-', 1)[0]}: {s['records']:,} records, read "
                f"{s['first'] - min(firsts):.1f}-{s['end'] - min(firsts):.1f}s (pid {s['pid']})"
                for s in case_stats) + f"; last exit at {seconds:.1f}s")
    print(f"{'run':<26}{'records':>11}{'s':>8}{'records/s':>12}{'spikes':>8}{'late':>7}{'dead letters':>14}")
    for r in runs:
        print(f"{f'{r.processes} process x 1 worker':<26}{r.records:>11,}{r.seconds:>8.2f}"
              f"{r.records / r.seconds:>12,.0f}{len(r.spikes):>8}{r.late:>7}{r.letters:>14}")
    one, two = runs
    same = one.spikes == two.spikes
    if not same:
        a, b = set(one.spikes), set(two.spikes)
        print(f"spikes differ: {len(a & b)} identical, {len(a - b)} only with 1 process, {len(b - a)} only with 2")
        windows = [{(d["key"]["topic"], d["key"]["region"], d["window_end"]) for d in map(orjson.loads, r.spikes)}
                   for r in runs]
        print(f"  by (key, window) alone: {len(windows[0] & windows[1])} in both, {len(windows[0] - windows[1])} only "
              f"with 1 process, {len(windows[1] - windows[0])} only with 2")
        fields: Counter[str] = Counter()
        by_window = [{(d["key"]["topic"], d["key"]["region"], d["window_end"]): d for d in map(orjson.loads, r.spikes)}
                     for r in runs]
        for window, first in by_window[0].items():
            second = by_window[1].get(window)
            if second is not None:
                fields.update(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
        print(f"  fields that differ between the two runs' spikes of a window: {dict(fields)}")
    print("(seconds: from the first record read to the last process's exit; start-up before the first read "
          "is not counted)")
    ratio = (two.records / two.seconds) / (one.records / one.seconds)
    emit(Row("scale-out 2x1 vs 1x1 records/s", rate(two.records, two.seconds), rate(one.records, one.seconds),
             f"{ratio:.2f}x", ">=1.6x", ratio >= 1.6),
         Row("scale-out: same spikes", "same" if same else "differ", f"{len(one.spikes)} spikes", "-", "identical",
             same),
         Row("scale-out: late dead letters 2x1", str(two.late), f"{one.late} (1x1)", "-", "0", two.late == 0))


# --- 5. state -------------------------------------------------------------------------------------

def pickled(obj: Any) -> int:
    return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def section_state(args: argparse.Namespace, tmp: Path) -> None:
    from forewarn.detectors.dedup import SeenIds
    from forewarn.detectors.panes import Event, add_to_pane, new_pane
    from forewarn.detectors.region_cap import RegionCap
    from forewarn.detectors.time_bounds import TimeBounds
    from forewarn.flows.steps import DetectorFactory
    from forewarn.records import Case, Origin, PaneCases
    from forewarn.settings import DetectionSettings

    sizes = [10_000] if args.quick else [10_000, 100_000]
    detection = DetectionSettings(window=timedelta(hours=1), slide=timedelta(minutes=5), warmup=timedelta(hours=1))
    print(f"\n== state: pickled bytes per key (as recovery stores it) at {', '.join(f'{k:,}' for k in sizes)} keys; "
          f"slide 5m, window 1h")
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    rows: list[Row] = []
    print(f"{'state (its key)':<48}{'keys':>9}{'bytes':>13}{'bytes/key':>11}{'plain ring':>12}")

    def line(name: str, keys: int, total: int, ref: int | None) -> float:
        per = total / keys
        print(f"{name:<48}{keys:>9,}{total:>13,}{per:>11,.0f}{'' if ref is None else f'{ref / keys:>12,.0f}'}")
        return per

    for keys in sizes:
        # Reference: what the plain loop keeps per key, a ring of 12 pane counts.
        ring_ref = pickled({f"R{r:06d}": [r % 3] * 12 for r in range(keys)})
        # The topic detector with `keys` regions, after 36 panes: each region has one case every third pane
        # (its windows stay under min_count, as most keys' do), with its id and reporter.
        detector = DetectorFactory(detection)("topic00")
        regions = [f"R{r:06d}" for r in range(keys)]
        started = time.perf_counter()
        for i in range(36):
            cases = {reg: PaneCases(1, (f"C-{i}-{r}",), (f"CU-{r}",))
                     for r, reg in enumerate(regions) if (i + r) % 3 == 0}
            detector.process(1_000_000 + i, cases)
        fed = time.perf_counter() - started
        det = line("TopicDetector, 36 panes (region in a topic)", keys, pickled(detector), ring_ref)
        # One topic's filling pane: every region with 2 cases so far (ids and reporters kept).
        pane = new_pane()
        for r, reg in enumerate(regions):
            for j in range(2):
                pane = add_to_pane(pane, Event(t0, "topic00", reg, f"C-{j}-{r}", f"CU-{j}-{r}"))
        fold = line("pane fold state, 2 cases each (region)", keys, pickled(pane), None)
        # A topic's dedup state holding `keys` case ids (its cap is dedup_max_ids per topic).
        seen = SeenIds(detection.dedup_horizon or timedelta(days=1), detection.dedup_max_ids)
        for r in range(keys):
            seen.first_count(f"C-{r:08d}", t0 + timedelta(seconds=r))
        dedup_total = pickled(seen)
        dedup = line(f"dedup SeenIds, {min(keys, detection.dedup_max_ids):,} ids (per case id)", keys, dedup_total,
                     None)
        capped = min(keys, detection.max_regions_per_topic)
        cap = line(f"region cap, {capped:,} regions (region)", capped,
                   pickled(RegionCap(detection.max_regions_per_topic, set(regions[:capped]))), None)
        print(f"  (fed the detector 36 panes in {fed:.1f}s; one topic's dedup state is {dedup_total / 2**20:.1f} MiB "
              f"at {min(keys, detection.dedup_max_ids):,} ids, up to dedup_max_ids {detection.dedup_max_ids:,})")
        rows.append(Row(f"state: detector bytes/region ({keys:,})", f"{det:,.0f} B", f"{ring_ref / keys:,.0f} B",
                        f"{det / (ring_ref / keys):.1f}x", "<=2 KB", det <= 2048))
        rows.append(Row(f"state: pane fold bytes/region ({keys:,})", f"{fold:,.0f} B", f"{ring_ref / keys:,.0f} B",
                        f"{fold / (ring_ref / keys):.1f}x", "<=2 KB", fold <= 2048))
        rows.append(Row(f"state: dedup bytes/topic key ({keys:,} ids)", f"{dedup_total:,} B", f"{dedup:,.0f} B/id",
                        "-", "<=2 KB", dedup_total <= 2048))
        rows.append(Row(f"state: region cap bytes/region ({capped:,})", f"{cap:,.0f} B", "-", "-", "<=2 KB",
                        cap <= 2048))
    # The time-bounds gate, one per input partition: its watermark and up to jump_after - 1 held records.
    b = detection.time_bounds
    gate = TimeBounds(b.max_ahead, b.max_age, b.max_stream_ahead, b.jump_after, b.not_before).gate()
    case = Case.model_validate({"id": "C-1", "ts": "2026-01-05T00:00:00Z", "customer_id": "CU-1", "topic": "topic00",
                                "region": "R000001", "channel": "phone"})
    for j in range(detection.time_bounds.jump_after - 1):
        gate.offer(case.ts, (Origin("bench-cases", 0, j), case))
    worst = pickled(gate)
    gate.held.clear()
    gate.support.clear()
    gate.watermark = t0
    steady = pickled(gate)
    print(f"{'time-bounds gate (input partition), steady':<48}{1:>9}{steady:>13,}{steady:>11,}")
    print(f"{'time-bounds gate, ' + str(detection.time_bounds.jump_after - 1) + ' records held (worst)':<48}{1:>9}"
          f"{worst:>13,}{worst:>11,}")
    rows.append(Row("state: time gate bytes/partition", f"{worst:,} B", f"{steady:,} B steady", "-", "<=2 KB",
                    worst <= 2048))
    emit(*rows)


# --- main -----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", metavar="section", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller runs: a few minutes in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--records", type=int, help="detection: records (default 1,000,000; quick 200,000)")
    parser.add_argument("--repeat", type=int, default=1, help="detection: runs of each, the best counts")
    parser.add_argument("--kafka-records", type=int, help="kafka: records (default 200,000; quick 50,000)")
    parser.add_argument("--slide", default="15m", help="latency: detection.slide (default 15m, the default config)")
    parser.add_argument("--lateness", default="10m", help="latency: detection.allowed_lateness (default 10m)")
    parser.add_argument("--keys", type=int, default=20, help="latency: surge keys (default 20)")
    parser.add_argument("--surge", type=int, default=30, help="latency: surge cases per key (default 30)")
    parser.add_argument("--gap", type=float, default=0.1, help="latency: seconds between a key's surge cases")
    parser.add_argument("--stagger", type=float, default=0.173, help="latency: seconds between the keys' starts")
    parser.add_argument("--background", type=int, default=20_000, help="latency: background cases")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="latency: seconds to wait for spikes after the surge (default 90)")
    parser.add_argument("--scale-records", type=int, help="scale: records (default 400,000; quick 100,000)")
    parser.add_argument("--scale-timeout", type=float, default=600.0, help="scale: seconds a run may take")
    args = parser.parse_args(argv)
    if args.records is None:
        args.records = 200_000 if args.quick else 1_000_000
    if args.kafka_records is None:
        args.kafka_records = 50_000 if args.quick else 200_000
    if args.scale_records is None:
        args.scale_records = 100_000 if args.quick else 400_000
    chosen = args.sections or list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    runners: dict[str, Callable[[argparse.Namespace, Path], None]] = {
        "detection": section_detection, "kafka": section_kafka, "latency": section_latency,
        "scale": section_scale, "state": section_state}
    print(f"bench_engine: {', '.join(chosen)}; Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"fw-bench-{name}-") as tmp:
            started = time.perf_counter()
            load = os.getloadavg()[0]
            runners[name](args, Path(tmp))
            print(f"({name}: {time.perf_counter() - started:.0f}s; load average {load:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores)")
    if len(chosen) > 1:
        print("\n== summary")
        print_rows(ROWS)


if __name__ == "__main__":
    main()
