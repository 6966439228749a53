"""The JSONL reader caps line length while reading (issue 9): an overlong line is never held whole;
it becomes a dead letter with its line number and the limit, and the lines after it are read."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

from forewarn.connectors.jsonl import JsonlSource
from forewarn.parsing import MAX_RECORD_BYTES
from forewarn.records import DeadLetter

HUGE = 24 * 1024 * 1024
"""A line of 24 MiB: far beyond the limit, small enough for a test file."""


def _read_all(source: JsonlSource, path: Path, resume: int | None = None) -> list[Any]:
    """Every record of every batch as (origin, bytes) or a dead letter; only the last batch is marked end."""
    part = source.build_part("read", str(path), resume)
    items: list[Any] = []
    ends: list[bool] = []
    try:
        while True:
            for batch in part.next_batch():
                ends.append(batch.end)
                items.extend(r if isinstance(r, DeadLetter) else (batch.origin(r[0]), r[1]) for r in batch.records)
    except StopIteration:
        assert ends and ends[-1] and not any(ends[:-1]), f"end marks {ends}: only the last batch ends"
        return items
    finally:
        part.close()


def _file_with_a_huge_line(path: Path) -> Path:
    with path.open("wb") as out:
        out.write(b'{"n": 1}\n')
        out.write(b'{"text": "' + b"x" * HUGE + b'"}\n')
        out.write(b'{"n": 3}\r\n\n')
        out.write(b'{"n": 5}')  # no line end at the end of the file
    return path


def test_an_overlong_line_is_a_dead_letter_with_its_line_and_the_limit(tmp_path: Path) -> None:
    path = _file_with_a_huge_line(tmp_path / "events.jsonl")
    items = _read_all(JsonlSource([path]), path)
    [letter] = [item for item in items if isinstance(item, DeadLetter)]
    assert letter.step == "read" and letter.origin.source == str(path) and letter.origin.line == 2
    assert letter.reason == f"line of {HUGE + 13} bytes exceeds the {MAX_RECORD_BYTES}-byte limit"
    assert len(letter.raw) <= 1024
    assert [(o.line, raw) for o, raw in (i for i in items if not isinstance(i, DeadLetter))] == [
        (1, b'{"n": 1}'), (3, b'{"n": 3}'), (5, b'{"n": 5}')]


def test_an_overlong_line_is_never_held_in_memory(tmp_path: Path) -> None:
    path = _file_with_a_huge_line(tmp_path / "events.jsonl")
    source = JsonlSource([path])
    tracemalloc.start()
    try:
        _read_all(source, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MAX_RECORD_BYTES, f"reading held {peak} bytes at once"


def test_a_line_at_the_limit_is_read_whole(tmp_path: Path) -> None:
    line = b'{"t": "' + b"y" * (MAX_RECORD_BYTES - 9) + b'"}'
    assert len(line) == MAX_RECORD_BYTES
    path = tmp_path / "events.jsonl"
    path.write_bytes(line + b"\r\n" + line)
    items = _read_all(JsonlSource([path]), path)
    assert [raw for _, raw in items] == [line, line]


def test_resuming_after_an_overlong_line_skips_it_in_bounded_reads(tmp_path: Path) -> None:
    path = _file_with_a_huge_line(tmp_path / "events.jsonl")
    items = _read_all(JsonlSource([path]), path, resume=2)
    assert [(o.line, raw) for o, raw in items] == [(3, b'{"n": 3}'), (5, b'{"n": 5}')]
