"""Throughput of the detection flow on the demo scenario, beside a plain-loop reference.

The reference does the same parse + pane counting in a plain Python loop with no
Bytewax, so the ratio shows what the dataflow machinery costs per record.

    python -m bench.bench_flow [--customers 20000] [--days 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import timedelta
from pathlib import Path

from bytewax.testing import run_main

from forewarn.demo.scenario import generate
from forewarn.detectors.topic import pane_index
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import file_io
from forewarn.parsing import parse_record
from forewarn.records import Case, Origin
from forewarn.settings import Settings


def reference(lines: list[bytes], slide: timedelta) -> int:
    counts: Counter[tuple[str, int, str]] = Counter()
    for n, line in enumerate(lines):
        record = parse_record(line, Origin("bench", line=n))
        if isinstance(record, Case):
            counts[(record.topic or "", pane_index(record.ts, slide), record.region)] += 1
    return len(counts)


def flow_run(settings: Settings, events: Path, out: Path) -> None:
    for old in out.glob("*.jsonl"):
        old.unlink()
    run_main(build_flow(settings, file_io(settings, [events], out, outreach=None)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--cases-per-day", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenario = generate(customers=args.customers, days=args.days, cases_per_day=args.cases_per_day)
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        scenario.write(Path(tmp))
        events = Path(tmp) / "events.jsonl"
        lines = events.read_bytes().splitlines()
        n = len(lines)
        print(f"{n} case records, {len(scenario.customers)} customers, window {settings.detection.window}, "
              f"slide {settings.detection.slide}")
        print(f"{'run':<28}{'best s':>10}{'records/s':>14}")
        best_ref = min(_timed(lambda: reference(lines, settings.detection.slide)) for _ in range(args.repeat))
        print(f"{'reference: plain loop':<28}{best_ref:>10.3f}{n / best_ref:>14,.0f}")
        out = Path(tmp) / "out"
        best_flow = min(_timed(lambda: flow_run(settings, events, out)) for _ in range(args.repeat))
        print(f"{'bytewax detect flow':<28}{best_flow:>10.3f}{n / best_flow:>14,.0f}")
        print(f"flow / reference time: {best_flow / best_ref:.1f}x")
        tracemalloc.start()
        flow_run(settings, events, out)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak Python heap during one flow run: {peak / 2**20:.1f} MiB")


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
