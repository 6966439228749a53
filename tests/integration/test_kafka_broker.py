"""The test broker speaks Kafka to both confluent-kafka and Bytewax's Kafka source."""

from __future__ import annotations

import uuid

import bytewax.operators as op
import pytest
from bytewax.connectors.kafka import KafkaError, KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.servers.kafka_broker import create_topics

pytestmark = pytest.mark.integration


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0, "not every record was delivered"


def test_create_topics_makes_partitions(kafka_broker: str) -> None:
    topic = _topic("created")
    create_topics(kafka_broker, [topic], partitions=3)
    metadata = AdminClient({"bootstrap.servers": kafka_broker}).list_topics(topic, timeout=5)
    assert len(metadata.topics[topic].partitions) == 3


def test_confluent_round_trip(kafka_broker: str) -> None:
    topic = _topic("plain")
    create_topics(kafka_broker, [topic])
    _produce(kafka_broker, topic, [(b"k1", b"v1"), (b"k2", b"v2")])

    # Assign the partition directly: a group `subscribe` takes seconds to join.
    consumer = Consumer({"bootstrap.servers": kafka_broker, "group.id": "t", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        seen: list[tuple[bytes | None, bytes | None]] = []
        for _ in range(50):
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                seen.append((msg.key(), msg.value()))
            if len(seen) == 2:
                break
    finally:
        consumer.close()
    assert seen == [(b"k1", b"v1"), (b"k2", b"v2")]


def test_bytewax_kafka_source_reads_produced_records(kafka_broker: str) -> None:
    topic = _topic("bytewax")
    create_topics(kafka_broker, [topic], partitions=2)
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(6)]
    _produce(kafka_broker, topic, records)

    flow = Dataflow("kafka_broker_check")
    stream = op.input("in", flow, KafkaSource([kafka_broker], [topic], tail=False))
    out: list[tuple[bytes | None, bytes | None]] = []

    def key_value(
        msg: KafkaSourceMessage[bytes | None, bytes | None] | KafkaError[bytes | None, bytes | None],
    ) -> tuple[bytes | None, bytes | None]:
        assert isinstance(msg, KafkaSourceMessage), f"Kafka error: {msg}"
        return (msg.key, msg.value)

    op.output("out", op.map("kv", stream, key_value), TestingSink(out))
    run_main(flow)

    assert sorted(out) == sorted(records)
