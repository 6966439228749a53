"""Records in batches: what a source partition hands the dataflow as one item.

Bytewax costs a few microseconds per item and per operator; a record costs less than one
to count. So a source partition's poll travels as one `RawBatch`: its records' bytes with
their positions, the partition named once. An `Origin` is built only for a record that
becomes a dead letter. The last batch of a partition that ends (a file, a topic read
without tailing) says so, so event time stops waiting for it.

>>> batch = RawBatch("cases", 0, [(7, b'{"ts": "2026-11-20T14:03:11Z"}')])
>>> batch.key, batch.origin(7)
('cases#0', Origin(source='cases', partition=0, offset=7, line=None))
>>> RawBatch("replay.jsonl", None, [], by_line=True).origin(3)
Origin(source='replay.jsonl', partition=None, offset=None, line=3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forewarn.records import DeadLetter, Origin

RawRecord = tuple[Origin, bytes]
"""One record with its origin: what a per-record source (the NWS poller) emits."""


def partition_name(source: str, partition: int | None) -> str:
    """The name of an input partition: a Kafka topic and partition (`cases#0`), or a file."""
    return source if partition is None else f"{source}#{partition}"


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """An input partition, named once for every record of a batch: builds a record's `Origin` on demand."""

    source: str
    index: int | None = None
    by_line: bool = False

    @property
    def key(self) -> str:
        return partition_name(self.source, self.index)

    def origin(self, position: int | None) -> Origin:
        if self.by_line:
            return Origin(self.source, self.index, line=position)
        return Origin(self.source, self.index, position)


@dataclass(slots=True)
class RawBatch:
    """Records read from one input partition in one poll, in order.

    `records` holds (position, bytes) pairs — a Kafka offset, or a file line when `by_line` —
    and the dead letters of reads that failed (an overlong line, a consumer error). `end` marks
    the partition's last batch.
    """

    source: str
    partition: int | None
    records: list[tuple[int | None, bytes] | DeadLetter] = field(default_factory=list)
    by_line: bool = False
    end: bool = False

    @property
    def key(self) -> str:
        return partition_name(self.source, self.partition)

    @property
    def info(self) -> PartitionInfo:
        return PartitionInfo(self.source, self.partition, self.by_line)

    def origin(self, position: int | None) -> Origin:
        return self.info.origin(position)


def as_batch(item: RawBatch | RawRecord | DeadLetter) -> RawBatch:
    """A source's item as a batch: a `RawBatch` as it is; a per-record source's (origin, bytes) or dead letter
    as a batch of one, so every source travels the same way."""
    if isinstance(item, RawBatch):
        return item
    if isinstance(item, DeadLetter):
        return RawBatch(item.origin.source, item.origin.partition, [item])
    origin, raw = item
    if origin.line is not None:
        return RawBatch(origin.source, origin.partition, [(origin.line, raw)], by_line=True)
    return RawBatch(origin.source, origin.partition, [(origin.offset, raw)])
