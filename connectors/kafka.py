"""Kafka in and out: raw records with their positions, and JSON sinks to topics."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage, KafkaSource, KafkaSourceMessage
from confluent_kafka.admin import AdminClient

from forewarn.records import DeadLetter, Origin

RawRecord = tuple[Origin, bytes]


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


def kafka_source(brokers: list[str], topics: list[str], tail: bool, batch_size: int,
                 extra: dict[str, str] | None = None) -> KafkaSource:
    """Bytewax's Kafka source, with errors passed on as data rather than raised."""
    return KafkaSource(brokers, topics, tail=tail, batch_size=batch_size, raise_on_errors=False,
                       add_config=extra or {})


def to_raw(msg: KafkaSourceMessage[Any, Any] | KafkaError[Any, Any]) -> RawRecord | DeadLetter:
    """A Kafka message as (origin, bytes), or a dead letter for a consumer error."""
    if isinstance(msg, KafkaError):
        inner = msg.msg
        origin = Origin(str(inner.topic), inner.partition, inner.offset)
        return DeadLetter("read", f"Kafka consumer error: {msg.err}", origin, inner.value or b"")
    origin = Origin(str(msg.topic), msg.partition, msg.offset)
    return origin, msg.value or b""


def json_topic_sink(brokers: list[str], topic: str, encode: Callable[[Any], bytes],
                    key: Callable[[Any], bytes | None] = lambda _: None,
                    extra: dict[str, str] | None = None) -> tuple[Callable[[Any], KafkaSinkMessage[Any, Any]],
                                                                  KafkaSink]:
    """A function making sink messages from items, and the sink writing them to `topic`."""

    def message(item: Any) -> KafkaSinkMessage[Any, Any]:
        return KafkaSinkMessage(key=key(item), value=encode(item))

    return message, KafkaSink(brokers, topic, add_config=extra or {})
