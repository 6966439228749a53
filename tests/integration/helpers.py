"""Shared by the integration tests that run the production wiring: Kafka topics, settings, Redis loading.

Records go to and come back from the session's Kafka-protocol broker; the settings point the
flow at the session's Redis, the Twilio stand-in and the SMTP server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.records import Customer
from forewarn.settings import Secrets, Settings
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

TEMPLATES = Path(__file__).resolve().parents[2] / "config" / "templates"
SMS_FROM = "+15125550199"
EMAIL_FROM = "alerts@forewarn.example.com"


def topic_names(prefix: str) -> dict[str, str]:
    """Fresh topic names: the broker lives for the whole session."""
    suffix = uuid.uuid4().hex[:8]
    kinds = ("cases", "telemetry", "dead_letters", "incidents", "customers")
    return {kind: f"{prefix}-{kind}-{suffix}" for kind in kinds}


def make_settings(topics: dict[str, str], kafka_broker: str, redis_url: str, twilio: TwilioStandin,
                  smtp: SmtpServer, prefix: str = "fw") -> Settings:
    return Settings.model_validate({
        "kafka": {"brokers": [kafka_broker], "topics": topics, "tail": False},
        "redis": {"url": redis_url, "prefix": prefix},
        "sms": {"from_number": SMS_FROM, "base_url": twilio.base_url},
        "email": {"host": smtp.host, "port": smtp.port, "from_addr": EMAIL_FROM, "starttls": False},
        "outreach": {"templates": str(TEMPLATES)},
    })


def secrets_for(twilio: TwilioStandin) -> Secrets:
    return Secrets(twilio_account_sid=twilio.account_sid, twilio_auth_token=twilio.auth_token)


def load_customers(redis_url: str, prefix: str, customers: Iterable[Customer]) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return RedisCustomerIndex(client, prefix).upsert(customers)
    finally:
        client.close()


def produce(bootstrap: str, topic: str, values: Iterable[bytes]) -> list[bytes]:
    """Produce `values` in order to partition 0 of `topic`; return them.

    Idempotence keeps producer retries from duplicating or reordering records: either
    would change the counts the flow detects on.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "message.max.bytes": 2_000_000})
    sent = []
    for value in values:
        producer.produce(topic, value=value, partition=0)
        producer.poll(0)
        sent.append(value)
    assert producer.flush(30) == 0, "not every record was delivered to the broker"
    return sent


@dataclass(frozen=True)
class Read:
    """One record read back from a topic, with its position."""

    partition: int
    offset: int
    value: bytes

    def json(self) -> Any:
        return orjson.loads(self.value)


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Read]:
    """Every record of `topic`, read by assigning its partitions (no consumer group join).

    Reads until each partition reports its end (partition EOF from fetches) and then
    nothing more arrives for a quiet second. Tansu's ListOffsets answer
    (`get_watermark_offsets`) can lag well behind what was appended, so neither the
    watermark nor a first EOF alone decides that a partition is done.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        out: list[Read] = []
        deadline = time.monotonic() + timeout
        last_seen = time.monotonic()
        while pending or time.monotonic() - last_seen < 1.0:
            assert time.monotonic() < deadline, f"timed out reading {topic}: partitions {pending} unfinished"
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            last_seen = time.monotonic()
            error = msg.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                pending.discard(msg.partition())
                continue
            assert error is None, f"error reading {topic}: {error}"
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            out.append(Read(partition, offset, msg.value() or b""))
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
