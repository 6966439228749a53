"""Issue 10: the flow's results do not depend on how many processes run it.

The demo scenario's cases go to a cases topic with two partitions (keyed by region, as a producer
keyed by region or customer would: each partition in time order). `forewarn run` reads it to the end
(`kafka.tail: false`), with recovery on, once as one process with one worker and once as two
processes (`-p 2`: each reads one partition, and keys are exchanged between them), each time with a
`forewarn deliver` beside it sending what the flow decides. Both runs must open the same incidents
(topic, region, first window), warn and clear the same customers on the same channels, and count no
record late: a record is late only when it is late in its own partition.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis

from forewarn.connectors.redis_outbox import RedisOutbox
from tests.integration.helpers import (
    load_customers,
    produce_partitioned,
    read_topic,
    start_deliver,
    start_run,
    topic_names,
    write_run_config,
)
from tests.integration.test_end_to_end import TRUTH_OF_TOPIC, default_scenario, opened_incidents, received_messages
from tests.servers.kafka_broker import create_topics
from tests.servers.ports import wait_until
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

pytestmark = pytest.mark.integration

PARTITIONS = 2


@dataclass(frozen=True)
class Outcome:
    """What one run produced, in terms that do not depend on the cluster's shape."""

    incidents: frozenset[tuple[str, str, str]]
    """(topic, region, first window start) of every opened incident."""
    resolved: frozenset[tuple[str, str, str]]
    messages: Counter[tuple[str, str, str]]
    """(customer, channel, warning|resolved) -> how many arrived."""
    emails: Counter[tuple[str | None, str, str]]
    """(incident id from the email's reference, customer, kind) -> how many."""
    late: list[dict[str, str]]
    letters: int
    seconds: float
    output: str


def drained(redis_url: str) -> bool:
    """Every decided message settled: nothing queued, taken or waiting for a time (twice, a moment apart)."""
    import time

    client = redis.Redis.from_url(redis_url)
    try:
        outbox = RedisOutbox(client)  # the default prefix and one shard, as the run's config has
        for _ in range(2):
            if outbox.backlog("sms") or outbox.backlog("email") or outbox.scheduled():
                return False
            time.sleep(0.5)
        return True
    finally:
        client.close()


def _partition(event: dict[str, object]) -> int:
    return zlib.crc32(str(event.get("region", "")).encode()) % PARTITIONS


def _run(name: str, args: list[str], cases_topic: str, kafka_broker: str, redis_url: str,
         twilio: TwilioStandin, smtp: SmtpServer, tmp_path: Path) -> Outcome:
    import time

    scenario = default_scenario()
    client = redis.Redis.from_url(redis_url)
    client.flushall()  # a fresh outbox, index and incident store for each run
    client.close()
    assert load_customers(redis_url, "fw", scenario.customers) == len(scenario.customers)
    twilio.reset()
    smtp.reset()
    topics = {**topic_names(f"cluster-{name}"), "cases": cases_topic}
    create_topics(kafka_broker, [t for kind, t in topics.items() if kind != "cases"])
    config = write_run_config(tmp_path / f"{name}.yaml", topics, kafka_broker, redis_url, twilio, smtp, tail=False,
                              recovery=tmp_path / name / "recovery")
    # The flow decides; a `forewarn deliver` beside it sends (the production shape), until the outbox is empty.
    deliver = start_deliver(config, twilio, tmp_path / f"{name}-deliver.log")
    try:
        started = time.monotonic()
        run = start_run(config, twilio, tmp_path / f"{name}.log", *args)
        code = run.wait(timeout=150)
        seconds = time.monotonic() - started
        assert code == 0, f"forewarn run {' '.join(args)} failed ({code}):\n{run.output()[-4000:]}"
        wait_until(lambda: drained(redis_url), "the delivery worker emptying the outbox", timeout=120)
        assert deliver.running(), f"forewarn deliver ended:\n{deliver.output()[-4000:]}"
    finally:
        deliver.stop()
    reports = [r.json() for r in read_topic(kafka_broker, topics["incidents"])]
    letters = [r.json() for r in read_topic(kafka_broker, topics["dead_letters"])]
    opened = opened_incidents(reports)
    resolved = {r["incident"]["id"] for r in reports if r["incident"]["status"] == "resolved"}
    received = received_messages(scenario.customers, twilio, smtp)
    return Outcome(
        incidents=frozenset((i.topic, i.region, i.first_window_start.isoformat()) for i in opened),
        resolved=frozenset((i.topic, i.region, i.first_window_start.isoformat()) for i in opened if i.id in resolved),
        messages=Counter((m.customer_id, m.channel, m.kind) for m in received),
        emails=Counter((m.incident_id, m.customer_id, m.kind) for m in received if m.channel == "email"),
        late=[letter for letter in letters if str(letter.get("reason", "")).startswith("late")],
        letters=len(letters),
        seconds=seconds,
        output=run.output(),
    )


def test_two_processes_open_the_same_incidents_and_warn_the_same_customers_as_one(
    kafka_broker: str, redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    scenario = default_scenario()
    cases_topic = topic_names("cluster-in")["cases"]
    create_topics(kafka_broker, [cases_topic], partitions=PARTITIONS)
    cases = [e for e in scenario.events if e["type"] == "case"]
    produced = produce_partitioned(kafka_broker, cases_topic, ((_partition(e), orjson.dumps(e)) for e in cases))
    by_partition = Counter(r.partition for r in read_topic(kafka_broker, cases_topic))
    assert sum(by_partition.values()) == produced and len(by_partition) == PARTITIONS, by_partition

    one = _run("one", [], cases_topic, kafka_broker, redis_url, twilio_standin, smtp_server, tmp_path)
    two = _run("two", ["-p", "2"], cases_topic, kafka_broker, redis_url, twilio_standin, smtp_server, tmp_path)

    assert len(list((tmp_path / "two" / "recovery").glob("part-*.sqlite3"))) == 2, "-p 2 initialises 2 partitions"
    # Records are late only when late in their own partition, and each partition is in time order.
    for outcome, name in ((one, "1 process × 1 worker"), (two, "2 processes (-p 2)")):
        assert not outcome.late, (
            f"{name}: {len(outcome.late)} of {produced} records were dead-lettered as late "
            f"({outcome.letters} dead letters in all), e.g. "
            f"{[(d['origin'], d['reason'][:100]) for d in outcome.late[:2]]}; incidents opened: "
            f"{sorted(outcome.incidents)}")
    assert two.incidents == one.incidents, (
        f"2 processes opened {sorted(two.incidents - one.incidents)} beyond and missed "
        f"{sorted(one.incidents - two.incidents)} of the single process's incidents")
    assert two.resolved == one.resolved
    extra, missing = two.messages - one.messages, one.messages - two.messages
    assert two.messages == one.messages, (
        f"2 processes sent {sum(extra.values())} messages the single process did not (e.g. {list(extra)[:5]}) "
        f"and not {sum(missing.values())} it did (e.g. {list(missing)[:5]})")
    assert two.emails == one.emails
    # Not two runs that agree on nothing: the reference finds both injected incidents and warns their customers.
    assert {TRUTH_OF_TOPIC.get(topic) for topic, _, _ in one.incidents} == {"regional_outage", "firmware_defect"}, (
        one.incidents)
    assert one.resolved == one.incidents, "every incident resolves before the scenario ends"
    assert {kind for _, _, kind in one.messages} == {"warning", "resolved"}
