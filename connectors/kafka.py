"""Kafka in and out: raw records with their positions, and JSON sinks to topics."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage, KafkaSource, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka.admin import AdminClient

from forewarn.batches import RawBatch
from forewarn.records import DeadLetter, Origin

KafkaItem = KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None]
"""What Bytewax's Kafka source emits: a message, or (with `raise_on_errors=False`) a consumer error."""

X = TypeVar("X")
S = TypeVar("S")

IDLE_POLL = timedelta(milliseconds=100)
"""How long an idle partition sleeps after an empty poll (`kafka.idle_poll`).

Measured (`python -m bench.bench_idle`): at 100 ms an idle flow is already at the cost of a Bytewax
worker with no input at all (~3 % of a core, the engine's own loop), so by default the sleep does
not grow: growing to 0.5 s saved nothing measurable and added ~0.2 s to the first record's latency."""


class BrokerUnreachable(RuntimeError):
    """The brokers did not answer in time; Bytewax's source would otherwise hang silently."""


def check_brokers(brokers: list[str], topics: list[str], timeout: timedelta,
                  extra: dict[str, str] | None = None, probe_timeout: float = 2.0) -> None:
    """Fail fast with a clear message when the brokers are down or a topic is missing.

    A plain TCP connect comes first: librdkafka waits out the whole `timeout` even when every
    broker refuses at once, and a start-up error should take a second, not `timeout`."""
    probe = min(probe_timeout, timeout.total_seconds())
    if not any(_accepts(broker, probe) for broker in brokers):
        raise BrokerUnreachable(
            f"Kafka brokers {','.join(brokers)} did not answer within {probe:g}s (none accepts a connection); "
            "check kafka.brokers in the config and that the broker is running"
        )
    admin = AdminClient({"bootstrap.servers": ",".join(brokers), **(extra or {})})
    try:
        metadata = admin.list_topics(timeout=timeout.total_seconds())
    except Exception as exc:  # confluent-kafka raises KafkaException for timeouts
        raise BrokerUnreachable(
            f"Kafka brokers {','.join(brokers)} did not answer within {timeout.total_seconds():.0f}s ({exc}); "
            "check kafka.brokers in the config and that the broker is running"
        ) from None
    missing = [t for t in topics if t not in metadata.topics]
    if missing:
        raise BrokerUnreachable(
            f"Kafka topic(s) {', '.join(missing)} do not exist on {','.join(brokers)}; create them "
            "(see README: kafka-topics --create) or fix kafka.topics in the config"
        )


def _accepts(broker: str, timeout: float) -> bool:
    """Whether host:port accepts a TCP connection within `timeout` seconds."""
    host, _, port = broker.rpartition(":")
    if not port.isdigit():
        return True  # not host:port: leave the judgement to librdkafka
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError:
        return False
    return True


class IdleSleepPartition(StatefulSourcePartition[X, S], Generic[X, S]):
    """A source partition that sleeps while it has nothing to read, instead of polling every millisecond.

    After an empty batch, `next_awake` lies `idle_poll` ahead, doubling on each further empty batch
    up to `idle_max`; the first batch with records puts it back to None (Bytewax calls `next_batch`
    again at once), so a busy partition reads exactly as the wrapped one does. Items and snapshots
    are the wrapped partition's own: resume state is unchanged."""

    def __init__(self, inner: StatefulSourcePartition[X, S], idle_poll: timedelta, idle_max: timedelta,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if idle_poll <= timedelta(0):
            raise ValueError(f"idle_poll must be positive (got {idle_poll})")
        self._inner = inner
        self._idle_poll = idle_poll
        self._idle_max = max(idle_max, idle_poll)
        self._clock = clock
        self._sleep = idle_poll
        self._awake: datetime | None = None

    def next_batch(self) -> Iterable[X]:
        batch = self._inner.next_batch()  # StopIteration (end of a non-tailing topic) passes through
        if not isinstance(batch, list | tuple):
            batch = list(batch)
        if batch:
            self._awake = None
            self._sleep = self._idle_poll
        else:
            self._awake = self._clock() + self._sleep
            self._sleep = min(self._sleep * 2, self._idle_max)
        return batch

    def next_awake(self) -> datetime | None:
        inner = self._inner.next_awake()  # always None for Kafka; a wrapped partition's own wait is kept
        if self._awake is None or (inner is not None and inner > self._awake):
            return inner
        return self._awake

    def snapshot(self) -> S:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class IdleSleepSource(FixedPartitionedSource[X, S], Generic[X, S]):
    """Any fixed-partitioned source whose partitions sleep while idle (see `IdleSleepPartition`).

    Partition names, items and resume state are the wrapped source's, so a recovery store written
    with the bare source resumes with this one and the other way round."""

    def __init__(self, inner: FixedPartitionedSource[X, S], idle_poll: timedelta = IDLE_POLL,
                 idle_max: timedelta | None = None) -> None:
        if idle_poll <= timedelta(0):
            raise ValueError(f"idle_poll must be positive (got {idle_poll})")
        self.inner = inner
        self.idle_poll = idle_poll
        self.idle_max = idle_poll if idle_max is None else max(idle_max, idle_poll)

    def list_parts(self) -> list[str]:
        return list(self.inner.list_parts())

    def build_part(self, step_id: str, for_part: str, resume_state: S | None) -> IdleSleepPartition[X, S]:
        part = self.inner.build_part(step_id, for_part, resume_state)
        return IdleSleepPartition(part, self.idle_poll, self.idle_max)


class BatchingPartition(StatefulSourcePartition[RawBatch, int | None]):
    """One Kafka partition's polls as `RawBatch`es: one dataflow item per poll, not one per message.

    A poll with nothing in it is no item at all (so `IdleSleepPartition` sees an idle partition);
    the end of a topic read without tailing is one last batch marked `end`. Resume state is the
    wrapped partition's offset."""

    def __init__(self, inner: StatefulSourcePartition[KafkaItem, int | None], topic: str, partition: int) -> None:
        self._inner = inner
        self._topic = topic
        self._partition = partition
        self._ended = False

    def next_batch(self) -> list[RawBatch]:
        if self._ended:
            raise StopIteration
        try:
            messages = self._inner.next_batch()
        except StopIteration:
            self._ended = True
            return [RawBatch(self._topic, self._partition, end=True)]
        if not messages:
            return []
        return [RawBatch(self._topic, self._partition, [_position(m) for m in messages])]

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> int | None:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


def _position(msg: KafkaItem) -> tuple[int | None, bytes] | DeadLetter:
    """A message as (offset, bytes), or the dead letter of a consumer error."""
    if isinstance(msg, KafkaError):
        inner = msg.msg
        origin = Origin(str(inner.topic), inner.partition, inner.offset)
        return DeadLetter("read", f"Kafka consumer error: {msg.err}", origin, inner.value or b"")
    return msg.offset, msg.value or b""


class BatchingSource(FixedPartitionedSource[RawBatch, int | None]):
    """Bytewax's Kafka source with each poll as one `RawBatch` (see `BatchingPartition`); partition
    names and resume state are Bytewax's own, so a recovery store carries over."""

    def __init__(self, inner: KafkaSource) -> None:
        self.inner = inner

    def list_parts(self) -> list[str]:
        return list(self.inner.list_parts())

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> BatchingPartition:
        index, topic = for_part.split("-", 1)  # Bytewax names a Kafka partition "INDEX-TOPIC"
        return BatchingPartition(self.inner.build_part(step_id, for_part, resume_state), topic, int(index))


def case_partitions(parts: list[str], topics: set[str]) -> list[str]:
    """The input partitions (`topic#index`) of Bytewax Kafka partition names on `topics`.

    >>> case_partitions(["0-cases", "1-cases", "0-telemetry"], {"cases"})
    ['cases#0', 'cases#1']
    """
    named = (part.split("-", 1) for part in parts)
    return [f"{topic}#{index}" for index, topic in named if topic in topics]


def kafka_source(brokers: list[str], topics: list[str], tail: bool, batch_size: int,
                 extra: dict[str, str] | None = None,
                 idle_poll: timedelta = IDLE_POLL,
                 idle_max: timedelta | None = None) -> IdleSleepSource[RawBatch, int | None]:
    """Bytewax's Kafka source, with errors passed on as data rather than raised, sleeping while idle.

    Bytewax's own partitions poll the consumer every millisecond when the topic is quiet; these
    sleep `idle_poll` after an empty poll (doubling up to `idle_max` if one is given; by default
    they do not grow) and read at full speed again from the first batch that has records. The
    consumer keeps fetching in the background meanwhile, so a sleep delays a record by at most
    `idle_poll` beyond what the broker takes. Each poll is one `RawBatch` item."""
    source = KafkaSource(brokers, topics, tail=tail, batch_size=batch_size, raise_on_errors=False,
                         add_config=extra or {})
    return IdleSleepSource(BatchingSource(source), idle_poll, idle_poll if idle_max is None else idle_max)


def json_topic_sink(brokers: list[str], topic: str, encode: Callable[[Any], bytes],
                    key: Callable[[Any], bytes | None] = lambda _: None,
                    extra: dict[str, str] | None = None) -> tuple[Callable[[Any], KafkaSinkMessage[Any, Any]],
                                                                  KafkaSink]:
    """A function making sink messages from items, and the sink writing them to `topic`."""

    def message(item: Any) -> KafkaSinkMessage[Any, Any]:
        return KafkaSinkMessage(key=key(item), value=encode(item))

    return message, KafkaSink(brokers, topic, add_config=extra or {})
