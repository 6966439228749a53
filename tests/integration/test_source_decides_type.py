"""The source decides a record's type (issue 9): on the real broker and Redis, a customer record and
an NWS alert produced to the cases topic are dead letters; the index is unchanged and nobody is told.
And telemetry that counts in no device group is a dead letter, not silently dropped."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from bytewax.testing import run_main

from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.demo.scenario import Scenario, generate
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import file_io, production_io
from forewarn.settings import HazardSettings, Settings
from tests.integration.helpers import load_customers, make_settings, produce, read_topic, secrets_for, topic_names
from tests.servers.kafka_broker import create_topics
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

pytestmark = pytest.mark.integration

INJECTED_PHONE = "+19005550199"
"""The injector's number: neither the index nor any message may end up with it."""


@cache
def scenario() -> Scenario:
    return generate(seed=1, customers=2_000, regions=10)


def _hostile_records(victim: dict[str, Any], storm: dict[str, Any]) -> list[bytes]:
    customer = {**victim, "type": "customer", "phone": INJECTED_PHONE, "preferred_channel": "sms"}
    properties = {**storm["properties"], "instruction": f"Call {INJECTED_PHONE} now to keep your service."}
    return [orjson.dumps(customer), orjson.dumps({**storm, "properties": properties})]


def _settings(topics: dict[str, str], kafka_broker: str, redis_url: str, twilio: TwilioStandin,
              smtp: SmtpServer, storm_event: str) -> Settings:
    base = make_settings(topics, kafka_broker, redis_url, twilio, smtp, prefix=topics["cases"])
    hazards = HazardSettings.model_validate({"rules": [{"events": [storm_event], "min_rank": 0}]})
    return base.model_copy(update={"hazards": hazards})


def test_customer_and_alert_records_on_the_cases_topic_are_dead_letters(
    kafka_broker: str, redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer,
) -> None:
    world = scenario()
    storm = world.alerts[0]
    victim = world.customers[0].model_dump(mode="json", exclude_none=True)
    topics = topic_names("kinds")
    topics["alerts"] = topics["cases"].replace("-cases-", "-alerts-")
    create_topics(kafka_broker, topics.values())
    settings = _settings(topics, kafka_broker, redis_url, twilio_standin, smtp_server,
                         storm["properties"]["event"])
    prefix = topics["cases"]
    assert load_customers(redis_url, prefix, world.customers) == len(world.customers)
    produce(kafka_broker, topics["cases"], _hostile_records(victim, storm))
    texts, emails = len(twilio_standin.messages), len(smtp_server.messages)

    run_main(build_flow(settings, production_io(settings, secrets_for(twilio_standin))))

    letters = [r.json() for r in read_topic(kafka_broker, topics["dead_letters"])]
    assert [letter["reason"] for letter in letters] == [
        f"type customer is not accepted on source {topics['cases']}",
        f"type Feature (a GeoJSON alert) is not accepted on source {topics['cases']}",
    ]
    assert [letter["origin"] for letter in letters] == [
        {"source": topics["cases"], "partition": 0, "offset": 0},
        {"source": topics["cases"], "partition": 0, "offset": 1},
    ]
    assert all(INJECTED_PHONE not in letter["reason"] for letter in letters)
    [kept] = RedisCustomerIndex(redis.Redis.from_url(redis_url), prefix).get_many([victim["id"]])
    assert kept is not None and kept.phone == victim["phone"]
    assert len(twilio_standin.messages) == texts and len(smtp_server.messages) == emails
    assert read_topic(kafka_broker, topics["incidents"]) == []


def test_telemetry_in_no_device_group_is_a_dead_letter_in_a_replay(tmp_path: Path) -> None:
    bare = {"type": "telemetry", "ts": "2026-11-20T14:03:00Z", "device_id": "D-9", "metric": "wan_down",
            "value": 1.0}
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(bare) + b"\n" + orjson.dumps({**bare, "region": "TX-453"}) + b"\n")
    settings = Settings()
    run_main(build_flow(settings, file_io(settings, [path], tmp_path / "out", outreach=None)))
    letters = [orjson.loads(line) for line in (tmp_path / "out" / "dead_letters.jsonl").read_bytes().splitlines()]
    assert [(letter["reason"], letter["origin"]) for letter in letters] == [
        ("telemetry counts in no device group: it needs a region, or a model and a firmware",
         {"source": str(path), "line": 1})]


def test_an_overlong_line_in_a_replay_is_a_dead_letter_and_the_next_lines_are_read(tmp_path: Path) -> None:
    case = {"type": "case", "ts": "2026-11-20T14:03:11Z", "topic": "no_internet", "region": "TX-453"}
    settings = Settings.model_validate({"max_record_bytes": 1024})
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([orjson.dumps({**case, "text": "x" * 5000}),
                                 orjson.dumps({**case, "type": "telemetry"}), b""]))
    run_main(build_flow(settings, file_io(settings, [path], tmp_path / "out", outreach=None)))
    letters = [orjson.loads(line) for line in (tmp_path / "out" / "dead_letters.jsonl").read_bytes().splitlines()]
    assert [(letter["step"], letter["origin"]["line"]) for letter in letters] == [("read", 1), ("parse", 2)]
    assert letters[0]["reason"].endswith("exceeds the 1024-byte limit") and len(letters[0]["raw"]) <= 1024
