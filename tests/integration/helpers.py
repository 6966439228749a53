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


FLOW_TEST_PLAYBOOK: dict[str, Any] = {"rules": [{"tier": "notify"}], "approval_from": None, "holdout_share": 0}
"""These flows test detection and delivery, so every incident notifies at once and nobody is held out: with a
test's small customer base the default playbook would find most incidents widespread and publish them or wait
for an operator (the playbook's own tests: tests/unit/test_playbook.py, test_decision_gate.py, test_effect.py,
tests/integration/test_approval_cli.py)."""


def make_settings(topics: dict[str, str], kafka_broker: str, redis_url: str, twilio: TwilioStandin,
                  smtp: SmtpServer, prefix: str = "fw") -> Settings:
    return Settings.model_validate({
        "kafka": {"brokers": [kafka_broker], "topics": topics, "tail": False},
        "redis": {"url": redis_url, "prefix": prefix},
        "sms": {"from_number": SMS_FROM, "base_url": twilio.base_url},
        "email": {"host": smtp.host, "port": smtp.port, "from_addr": EMAIL_FROM, "starttls": False},
        "outreach": {"templates": str(TEMPLATES)},
        "playbook": FLOW_TEST_PLAYBOOK,
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


# --- `forewarn run` as a process of its own (the crash and cluster tests) ------------------------

REPO = Path(__file__).resolve().parents[2]


def write_run_config(path: Path, topics: dict[str, str], kafka_broker: str, redis_url: str, twilio: TwilioStandin,
                     smtp: SmtpServer, *, tail: bool, recovery: Path | None = None,
                     snapshot_interval: str = "1s", prefix: str = "fw", **sections: dict[str, Any]) -> Path:
    """A production YAML config (what `make_settings` builds) for `forewarn run -c`; `sections` are merged in."""
    import yaml

    data: dict[str, Any] = {
        "kafka": {"brokers": [kafka_broker], "topics": topics, "tail": tail},
        "redis": {"url": redis_url, "prefix": prefix},
        "sms": {"from_number": SMS_FROM, "base_url": twilio.base_url},
        "email": {"host": smtp.host, "port": smtp.port, "from_addr": EMAIL_FROM, "starttls": False},
        "outreach": {"templates": str(TEMPLATES)},
        "playbook": FLOW_TEST_PLAYBOOK,
    }
    if recovery is not None:
        data["recovery"] = {"directory": str(recovery), "snapshot_interval": snapshot_interval}
    for name, section in sections.items():
        data[name] = {**data.get(name, {}), **section}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_env(twilio: TwilioStandin) -> dict[str, str]:
    """This environment with the stand-in's Twilio credentials, and no Redis URL or SMTP password of its own."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("FOREWARN_REDIS_URL", "SMTP_PASSWORD")}
    return {**env, "TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token}


@dataclass
class RunProcess:
    """A `forewarn run` started by a test; its output goes to `log`."""

    proc: Any  # subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL, as a crash: nothing runs after it, no snapshot, no flush."""
        import os
        import signal

        if self.running():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within 10 seconds."""
        import subprocess

        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def wait(self, timeout: float) -> int:
        """The exit code; fails the test with the output when it does not end in time."""
        import subprocess

        try:
            return int(self.proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"forewarn run did not end within {timeout:.0f}s:\n{self.output()[-3000:]}") from None


def start_run(config: Path, twilio: TwilioStandin, log: Path, *args: str) -> RunProcess:
    """`forewarn run -c CONFIG ARGS...` in a process of its own (with this interpreter: no console script needed)."""
    import subprocess

    from forewarn.flows.cluster import forewarn_command

    with log.open("ab") as out:
        proc = subprocess.Popen([*forewarn_command(), "run", "-c", str(config), *args],
                                stdout=out, stderr=subprocess.STDOUT, env=run_env(twilio), cwd=REPO)
    return RunProcess(proc, log)


def start_deliver(config: Path, twilio: TwilioStandin, log: Path, *args: str) -> RunProcess:
    """`forewarn deliver -c CONFIG` (a delivery worker) in a process of its own."""
    import subprocess

    from forewarn.flows.cluster import forewarn_command

    with log.open("ab") as out:
        proc = subprocess.Popen([*forewarn_command(), "deliver", "-c", str(config), *args],
                                stdout=out, stderr=subprocess.STDOUT, env=run_env(twilio), cwd=REPO)
    return RunProcess(proc, log)


def resumable_offsets(recovery: Path, step: str = "forewarn.read") -> dict[str, int]:
    """Per input partition ("PARTITION-TOPIC"), the offset a restart resumes reading at: the Kafka
    source's snapshot at the recovery store's committed epoch (every partition has committed it).

    Read-only, while Bytewax writes the store (SQLite in WAL mode). Empty before the first commit."""
    import contextlib
    import pickle
    import sqlite3

    parts = sorted(recovery.glob("part-*.sqlite3"))
    commits: list[int] = []
    snaps: list[tuple[str, int, bytes | None]] = []
    for part in parts:
        with contextlib.closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=5)) as db:
            commits.extend(int(e) for (e,) in db.execute("SELECT commit_epoch FROM commits"))
            snaps.extend(db.execute("SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = ?", (step,)))
    if not parts or len(commits) < len(parts):
        return {}
    resume = min(commits)
    latest: dict[str, tuple[int, int]] = {}
    for key, epoch, change in snaps:
        if epoch <= resume and change is not None and epoch >= latest.get(key, (-1, 0))[0]:
            offset = pickle.loads(change)
            if isinstance(offset, tuple):  # the reading source's (Kafka offset, partition step state)
                offset = offset[0]
            latest[key] = (epoch, offset if isinstance(offset, int) else 0)
    return {key: offset for key, (_, offset) in latest.items()}


def produce_partitioned(bootstrap: str, topic: str, values: Iterable[tuple[int, bytes]]) -> int:
    """Produce (partition, value) pairs in order, idempotently (each partition keeps its order); return how many."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "message.max.bytes": 2_000_000})
    n = 0
    for partition, value in values:
        producer.produce(topic, value=value, partition=partition)
        producer.poll(0)
        n += 1
    assert producer.flush(30) == 0, "not every record was delivered to the broker"
    return n
