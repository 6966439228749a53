"""JSONL files as a replay source and as sinks (dead letters, spikes, incident reports)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from forewarn.records import Origin

RawRecord = tuple[Origin, bytes]


class _LinePartition(StatefulSourcePartition[RawRecord, int]):
    def __init__(self, path: Path, resume_line: int | None, batch_size: int):
        self._path = path
        self._file = path.open("rb")
        self._line = 0
        self._batch_size = batch_size
        for _ in range(resume_line or 0):
            self._file.readline()
            self._line += 1

    def next_batch(self) -> list[RawRecord]:
        batch: list[RawRecord] = []
        for raw in self._file:
            self._line += 1
            stripped = raw.strip()
            if stripped:
                batch.append((Origin(str(self._path), line=self._line), stripped))
            if len(batch) >= self._batch_size:
                return batch
        if not batch:
            raise StopIteration
        return batch

    def snapshot(self) -> int:
        return self._line

    def close(self) -> None:
        self._file.close()


class JsonlSource(FixedPartitionedSource[RawRecord, int]):
    """Reads one or more JSONL files; each line travels with its file and line number."""

    def __init__(self, paths: list[Path], batch_size: int = 2000):
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"input file(s) not found: {', '.join(missing)}")
        self.paths = paths
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [str(p) for p in self.paths]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LinePartition:
        return _LinePartition(Path(for_part), resume_state, self.batch_size)


class _FilePartition(StatelessSinkPartition[Any]):
    def __init__(self, handle: IO[bytes], encode: Callable[[Any], bytes]):
        self._handle = handle
        self._encode = encode

    def write_batch(self, items: list[Any]) -> None:
        self._handle.write(b"".join(self._encode(item) + b"\n" for item in items))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class JsonlSink(DynamicSink[Any]):
    """Appends one encoded item per line; each worker past the first writes `name.N.jsonl`."""

    def __init__(self, path: Path, encode: Callable[[Any], bytes]):
        self.path = path
        self.encode = encode

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FilePartition:
        path = self.path if worker_index == 0 else self.path.with_suffix(f".{worker_index}.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        return _FilePartition(path.open("ab"), self.encode)
