"""Forewarn's Kafka source (Bytewax's, sleeping while idle) reads, ends and resumes as Bytewax's does."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, run_main
from confluent_kafka import Producer

from forewarn.batches import RawBatch
from forewarn.connectors.kafka import kafka_source
from forewarn.records import DeadLetter, Origin
from tests.servers.kafka_broker import create_topics

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for n, value in enumerate(values):
        producer.produce(topic, value=value, partition=n % partitions)
    assert producer.flush(10) == 0, "not every record was delivered"


def _records(item: RawBatch | KafkaSourceMessage[Any, Any]) -> list[Any]:
    """(origin, bytes) of each record, from our batches or from Bytewax's plain messages."""
    if isinstance(item, RawBatch):
        return [r if isinstance(r, DeadLetter) else (item.origin(r[0]), r[1]) for r in item.records]
    return [(Origin(item.topic or "", item.partition, item.offset), item.value)]


def _read(source: Source[Any], recovery: Path | None = None, ends: list[str] | None = None
          ) -> list[tuple[Origin, bytes]]:
    flow = Dataflow("kafka_idle_source")
    out: list[Any] = []
    items = op.input("in", flow, source)
    if ends is not None:  # the partitions whose last batch said it was the end
        op.inspect("ends", items, lambda _s, b: ends.append(b.key) if isinstance(b, RawBatch) and b.end else None)
    op.output("out", op.flat_map("raw", items, _records), TestingSink(out))
    config = RecoveryConfig(str(recovery)) if recovery else None
    run_main(flow, epoch_interval=timedelta(seconds=0), recovery_config=config)
    assert not [item for item in out if isinstance(item, DeadLetter)]
    return sorted(out, key=lambda raw: (raw[0].partition, raw[0].offset))


def test_reads_every_partition_to_the_end(kafka_broker: str) -> None:
    topic = f"idle-read-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_broker, [topic], partitions=2)
    values = [f"v{n}".encode() for n in range(6)]
    _produce(kafka_broker, topic, values, 2)

    ends: list[str] = []
    got = _read(kafka_source([kafka_broker], [topic], False, 2), ends=ends)
    assert sorted(value for _, value in got) == sorted(values)
    assert {origin.partition for origin, _ in got} == {0, 1}
    assert sorted(ends) == [f"{topic}#0", f"{topic}#1"], "each partition's last batch says it ended, once"


def test_resumes_from_the_offsets_a_plain_source_snapshotted(kafka_broker: str, tmp_path: Path) -> None:
    """The resume state is Bytewax's own: a store written by either source resumes with the other."""
    topic = f"idle-resume-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_broker, [topic], partitions=2)
    init_db_dir(tmp_path, 1)
    first = [f"a{n}".encode() for n in range(4)]
    _produce(kafka_broker, topic, first, 2)
    plain = KafkaSource([kafka_broker], [topic], tail=False, raise_on_errors=False)
    assert sorted(value for _, value in _read(plain, tmp_path)) == sorted(first)

    second = [f"b{n}".encode() for n in range(4)]
    _produce(kafka_broker, topic, second, 2)
    ours = kafka_source([kafka_broker], [topic], False, 1000)
    assert sorted(value for _, value in _read(ours, tmp_path)) == sorted(second)

    third = [f"c{n}".encode() for n in range(2)]
    _produce(kafka_broker, topic, third, 2)
    again = KafkaSource([kafka_broker], [topic], tail=False, raise_on_errors=False)
    assert sorted(value for _, value in _read(again, tmp_path)) == sorted(third)
