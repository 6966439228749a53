"""The Kafka source's idle sleep: its back-off logic, with a scripted partition and an injected clock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from forewarn.connectors.kafka import IDLE_POLL, IdleSleepPartition, IdleSleepSource, kafka_source
from forewarn.settings import KafkaSettings

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


class Scripted(StatefulSourcePartition[str, int]):
    """Returns the scripted batches in turn, then ends; its state is the number of items read."""

    def __init__(self, batches: list[list[str]], start: int = 0) -> None:
        self.batches = list(batches)
        self.read = start
        self.closed = False

    def next_batch(self) -> Iterable[str]:
        if not self.batches:
            raise StopIteration()
        batch = self.batches.pop(0)
        self.read += len(batch)
        return batch

    def snapshot(self) -> int:
        return self.read

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_an_empty_batch_sleeps_and_a_full_one_reads_on_at_once() -> None:
    clock = Clock()
    part = IdleSleepPartition(Scripted([["a"], [], [], ["b", "c"], []]), 100 * MS, 100 * MS, clock)
    assert part.next_awake() is None  # at start: read at once
    assert list(part.next_batch()) == ["a"]
    assert part.next_awake() is None
    assert list(part.next_batch()) == []
    assert part.next_awake() == T0 + 100 * MS
    assert part.next_awake() == T0 + 100 * MS  # asked again: the same answer
    clock.now = T0 + 100 * MS
    assert list(part.next_batch()) == []
    assert part.next_awake() == T0 + 200 * MS  # no growth by default
    assert list(part.next_batch()) == ["b", "c"]
    assert part.next_awake() is None
    assert list(part.next_batch()) == []
    assert part.next_awake() == clock.now + 100 * MS


def test_the_sleep_doubles_up_to_its_cap_and_resets_on_records() -> None:
    clock = Clock()
    part = IdleSleepPartition(Scripted([[], [], [], [], ["x"], []]), 100 * MS, 500 * MS, clock)
    sleeps = []
    for _ in range(4):
        part.next_batch()
        awake = part.next_awake()
        assert awake is not None
        sleeps.append(awake - clock.now)
    assert sleeps == [100 * MS, 200 * MS, 400 * MS, 500 * MS]
    part.next_batch()
    assert part.next_awake() is None
    part.next_batch()
    assert part.next_awake() == clock.now + 100 * MS


def test_state_end_and_close_are_the_wrapped_partitions() -> None:
    inner = Scripted([["a", "b"], []], start=5)
    part = IdleSleepPartition(inner, IDLE_POLL, IDLE_POLL)
    part.next_batch()
    part.next_batch()
    assert part.snapshot() == 7
    with pytest.raises(StopIteration):
        part.next_batch()
    part.close()
    assert inner.closed


class TwoParts(FixedPartitionedSource[str, int]):
    def __init__(self) -> None:
        self.resumed: dict[str, int | None] = {}

    def list_parts(self) -> list[str]:
        return ["0-cases", "0-telemetry"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Scripted:
        self.resumed[for_part] = resume_state
        return Scripted([], start=resume_state or 0)


def test_the_source_keeps_partition_names_and_resume_state() -> None:
    inner = TwoParts()
    source = IdleSleepSource(inner, 50 * MS)
    assert source.list_parts() == ["0-cases", "0-telemetry"]
    part = source.build_part("in", "0-cases", 42)
    assert inner.resumed == {"0-cases": 42}
    assert part.snapshot() == 42


def test_kafka_source_is_wrapped_with_the_configured_sleep() -> None:
    source = kafka_source(["127.0.0.1:9"], ["cases"], True, 10, idle_poll=250 * MS)
    assert (source.idle_poll, source.idle_max) == (250 * MS, 250 * MS)
    with pytest.raises(ValueError, match="positive"):
        IdleSleepSource(TwoParts(), timedelta(0))


def test_idle_poll_setting() -> None:
    assert KafkaSettings(brokers=["k:9092"]).idle_poll == IDLE_POLL
    assert KafkaSettings(brokers=["k:9092"], idle_poll="250ms").idle_poll == 250 * MS
    with pytest.raises(ValueError, match="positive"):
        KafkaSettings(brokers=["k:9092"], idle_poll="0s")


class Waits(Scripted):
    """A partition with its own wake-up time."""

    def __init__(self, batches: list[list[str]], awake: datetime | None) -> None:
        super().__init__(batches)
        self.awake = awake

    def next_awake(self) -> datetime | None:
        return self.awake


def test_a_wrapped_partitions_own_wait_is_kept() -> None:
    clock = Clock()
    later = T0 + timedelta(seconds=5)
    part = IdleSleepPartition(Waits([["a"], []], later), 100 * MS, 100 * MS, clock)
    assert part.next_awake() == later
    part.next_batch()
    assert part.next_awake() == later
    part.next_batch()
    assert part.next_awake() == later  # later than the idle sleep: the wrapped wait wins
    soon = Waits([[]], T0 + 10 * MS)
    part = IdleSleepPartition(soon, 100 * MS, 100 * MS, clock)
    part.next_batch()
    assert part.next_awake() == T0 + 100 * MS
