"""JSONL files as a replay source and as sinks (dead letters, spikes, incident reports)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from forewarn.batches import RawBatch
from forewarn.parsing import MAX_RECORD_BYTES
from forewarn.records import DeadLetter, Origin

_SKIP_CHUNK = 64 * 1024
"""How much of an overlong line is read at a time while skipping it."""


class _LinePartition(StatefulSourcePartition[RawBatch, int]):
    """Lines of one file, read at most `max_bytes` (and a line end) at a time, `batch_size` lines a batch.

    A line longer than that is never held whole: its head is kept for the dead letter and
    the rest is read past in bounded chunks, so one huge line costs no more memory than
    a record may.
    """

    def __init__(self, path: Path, resume_line: int | None, batch_size: int, max_bytes: int,
                 keep: Callable[[bytes], bool] | None = None):
        self._path = path
        self._keep = keep
        self._file = path.open("rb")
        self._line = 0
        self._batch_size = batch_size
        self._max_bytes = max_bytes
        self._ended = False
        for _ in range(resume_line or 0):
            if not self._file.readline(max_bytes + 2).endswith(b"\n"):
                self._skip_rest()
            self._line += 1

    def next_batch(self) -> list[RawBatch]:
        """One batch of up to `batch_size` lines; the last one is marked `end`, then StopIteration."""
        if self._ended:
            raise StopIteration
        batch = RawBatch(str(self._path), None, by_line=True)
        records = batch.records
        readline, limit = self._file.readline, self._max_bytes + 2  # the record and a \r\n
        while len(records) < self._batch_size:
            raw = readline(limit)
            if not raw:
                batch.end = self._ended = True
                break
            self._line += 1
            if len(raw) == limit and not raw.endswith(b"\n"):
                records.append(self._overlong(raw))
                continue
            stripped = raw.strip()
            if stripped and (self._keep is None or self._keep(stripped)):
                records.append((self._line, stripped))
        return [batch]

    def _overlong(self, head: bytes) -> DeadLetter:
        size = len(head) + self._skip_rest()
        return DeadLetter("read", f"line of {size} bytes exceeds the {self._max_bytes}-byte limit",
                          Origin(str(self._path), line=self._line), head[:1024])

    def _skip_rest(self) -> int:
        """Read past the rest of the current line; return how many bytes it had."""
        skipped = 0
        while chunk := self._file.readline(_SKIP_CHUNK):
            skipped += len(chunk)
            if chunk.endswith(b"\n"):
                break
        return skipped

    def snapshot(self) -> int:
        return self._line

    def close(self) -> None:
        self._file.close()


class JsonlSource(FixedPartitionedSource[RawBatch, int]):
    """Reads one or more JSONL files, one partition each, as `RawBatch`es: each line travels with its
    line number, and a line longer than `max_bytes` is a dead letter instead."""

    def __init__(self, paths: list[Path], batch_size: int = 2000, max_bytes: int = MAX_RECORD_BYTES,
                 keep: Callable[[bytes], bool] | None = None):
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"input file(s) not found: {', '.join(missing)}")
        self.paths = paths
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self.keep = keep
        """Lines it returns False for are left out (the demo's customers who skip a call once warned)."""

    def list_parts(self) -> list[str]:
        return [str(p) for p in self.paths]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LinePartition:
        return _LinePartition(Path(for_part), resume_state, self.batch_size, self.max_bytes, self.keep)


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
