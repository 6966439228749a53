"""Bytewax pieces of the engine benchmarks: a counting source wrapper, a timing spike sink, and the flows
the benchmark starts in child processes.

- `Counted` wraps any fixed-partitioned source: per partition it counts the items and notes the wall
  time of its first non-empty batch and of its end; it costs one call per batch, nothing per record.
- `SpikeTimes` is a spikes sink that prints each spike with the wall time it arrived at the sink.
- `scale_flow` is `forewarn.flows.live:get_flow` (the production wiring, `production_io`) with a JSONL
  spikes sink and the input counted, for `python -m bytewax.run "bench.engine_flows:scale_flow(...)"`.
- `live_child` runs detection tailing one Kafka topic (`tail`, event time against the wall clock) and
  prints the spikes with their arrival time: the event-to-decision section reads its stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

PartStats = dict[str, Any]
"""One partition's reading: part, records, first (wall time of its first records), end (of its input)."""


def records_in(batch: list[Any] | tuple[Any, ...]) -> int:
    """Records in a source batch: items are records, or `RawBatch`es of records (one per poll)."""
    if hasattr(batch[0], "records"):
        return sum(len(item.records) for item in batch)
    return len(batch)


def flow_io_options(source: Any, case_topics: set[str], **wanted: Any) -> dict[str, Any]:
    """FlowIO keyword arguments for a Kafka source, whichever FlowIO this checkout has: `to_raw` where
    items are per record, `partitions` (the case partitions) where panes close on them, and the `wanted`
    options FlowIO knows (e.g. early_spikes)."""
    import dataclasses

    from forewarn.connectors import kafka
    from forewarn.flows.early_warning import FlowIO

    fields = {f.name for f in dataclasses.fields(FlowIO)}
    options = {name: value for name, value in wanted.items() if name in fields}
    if hasattr(kafka, "to_raw") and "to_raw" in fields:
        options["to_raw"] = kafka.to_raw
    if hasattr(kafka, "case_partitions") and "partitions" in fields:
        options["partitions"] = kafka.case_partitions(source.list_parts(), case_topics)
    return options


class _CountedPartition(StatefulSourcePartition[Any, Any]):
    def __init__(self, part: str, inner: StatefulSourcePartition[Any, Any], report: Callable[[PartStats], None],
                 progress: Callable[[PartStats], None] | None):
        self._inner = inner
        self._report = report
        self._progress = progress
        self._stats: PartStats = {"part": part, "records": 0, "first": None, "end": None, "pid": os.getpid()}

    def next_batch(self) -> Iterable[Any]:
        try:
            batch = self._inner.next_batch()
        except StopIteration:
            self._stats["end"] = time.time()
            self._report(dict(self._stats))
            raise
        if not isinstance(batch, list | tuple):
            batch = list(batch)
        if batch:
            if self._stats["first"] is None:
                self._stats["first"] = time.time()
            self._stats["records"] += records_in(batch)
            if self._progress is not None:
                self._progress(self._stats)
        return batch

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class Counted(FixedPartitionedSource[Any, Any]):
    """`inner` with each partition counted; `report` gets a partition's stats when its input ends."""

    def __init__(self, inner: FixedPartitionedSource[Any, Any], report: Callable[[PartStats], None],
                 progress: Callable[[PartStats], None] | None = None):
        self.inner = inner
        self.report = report
        self.progress = progress

    def list_parts(self) -> list[str]:
        return list(self.inner.list_parts())

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _CountedPartition:
        return _CountedPartition(for_part, self.inner.build_part(step_id, for_part, resume_state), self.report,
                                 self.progress)


class _PrintSpikes(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        now = time.time()
        for spike in items:
            print(f"spike {now:.6f} {spike.topic} {spike.region} {spike.observed} "
                  f"{spike.window_start.timestamp():.0f} {spike.window_end.timestamp():.0f}", flush=True)


class SpikeTimes(DynamicSink[Any]):
    """Prints `spike WALLTIME TOPIC REGION OBSERVED WINDOW_START WINDOW_END` (epoch seconds) for each Spike
    as it reaches the sink."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PrintSpikes:
        return _PrintSpikes()


class _Discard(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        pass


class Discard(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Discard:
        return _Discard()


def _append_json(path: Path) -> Callable[[PartStats], None]:
    def write(stats: PartStats) -> None:
        with path.open("a") as out:
            out.write(json.dumps(stats) + "\n")

    return write


def scale_flow(config: str, out: str) -> Dataflow:
    """The production flow of `config` (as `forewarn.flows.live:get_flow` builds it), plus spikes written to
    OUT/spikes.jsonl (OUT/spikes.N.jsonl from worker N) and each input partition's count and times appended
    to OUT/stats.jsonl when it ends."""
    from forewarn.connectors.jsonl import JsonlSink
    from forewarn.flows.early_warning import build_flow
    from forewarn.flows.wiring import encode_spike, production_io
    from forewarn.settings import load_settings

    settings = load_settings(Path(config))
    io = production_io(settings)
    folder = Path(out)
    io.source = Counted(io.source, _append_json(folder / "stats.jsonl"))  # type: ignore[arg-type]
    io.spikes = JsonlSink(folder / "spikes.jsonl", lambda b: b)
    io.encode_spike = encode_spike
    return build_flow(settings, io)


def live_child(broker: str, topic: str, config: str) -> None:
    """Detection tailing `topic` with the settings of `config`; prints `read N WALLTIME` after each batch read
    (N records so far) and one `spike ...` line per spike (see `SpikeTimes`)."""
    from bytewax.testing import run_main

    from forewarn.connectors.kafka import kafka_source
    from forewarn.flows.early_warning import FlowIO, build_flow
    from forewarn.settings import load_settings
    from forewarn.sources import SourceKinds

    settings = load_settings(Path(config))

    def progress(stats: PartStats) -> None:
        print(f"read {stats['records']} {time.time():.6f}", flush=True)

    source = Counted(kafka_source([broker], [topic], True, 1000), lambda _: None, progress)
    io = FlowIO(source=source, dead_letters=Discard(), types={topic: SourceKinds.only("case")}, spikes=SpikeTimes(),
                replay=False, **flow_io_options(source, {topic}, early_spikes=True))
    run_main(build_flow(settings, io, "bench-live"))


if __name__ == "__main__":
    live_child(*sys.argv[1:4])
