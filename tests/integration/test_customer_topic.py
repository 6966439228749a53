"""Customer upserts as a stream: the `customers` topic (or JSONL lines of type customer) keeps the
index current while the flow runs; bad customer records become dead letters without their values."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from bytewax.testing import run_main

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import memory_io, production_io
from forewarn.settings import Settings
from tests.integration.helpers import make_settings, produce, read_topic, secrets_for, topic_names
from tests.servers.kafka_broker import create_topics
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

LEAKY_PHONE = "+1 555 01"
"""An impossible phone in a bad customer record: its reason must not quote it."""


def customer(i: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"CU-{i}", "phone": f"+1512555{i:04d}", "region": "TX-453",
            "products": [{"model": "R7000", "firmware": "2.1.7"}], **fields}


def records() -> list[bytes]:
    good = [orjson.dumps(customer(i)) for i in range(40)]
    bad = [orjson.dumps(customer(90, phone=LEAKY_PHONE)), orjson.dumps({"id": "CU-91", "phone": "+15125550191"})]
    update = orjson.dumps(customer(1, region="TX-201", products=[{"model": "R7000", "firmware": "2.1.8"}]))
    return [*good[:20], bad[0], *good[20:], bad[1], update]


@pytest.mark.integration
def test_customers_topic_upserts_the_redis_index(kafka_broker: str, redis_url: str, twilio_standin: TwilioStandin,
                                                 smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="flows")
    topics = topic_names("customers")
    create_topics(kafka_broker, topics.values())
    produce(kafka_broker, topics["customers"], records())
    settings = make_settings(topics, kafka_broker, redis_url, twilio_standin, smtp_server, prefix="ct")
    run_main(build_flow(settings, production_io(settings, secrets_for(twilio_standin))))

    index = RedisCustomerIndex(redis.Redis.from_url(redis_url), prefix="ct")
    assert index.size() == 40
    [moved] = index.get_many(["CU-1"])
    assert moved is not None and moved.region == "TX-201"  # the later record of an id wins
    assert index.count({"model": "R7000", "firmware": "2.1.8"}) == 1 == index.count({"region": "TX-201"})
    assert index.count({"model": "R7000", "firmware": "2.1.7"}) == 39
    letters = [r.json() for r in read_topic(kafka_broker, topics["dead_letters"])]
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(reasons) == 2 and reasons[0].startswith("phone: ") and reasons[1] == "region: Field required"
    assert all(letter["origin"]["source"] == topics["customers"] for letter in letters)
    assert LEAKY_PHONE not in "".join(reasons)
    assert LEAKY_PHONE not in caplog.text and "+15125550191" not in caplog.text


def test_jsonl_customer_lines_update_the_in_process_index(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({"type": "customer", **orjson.loads(r)}) for r in records()) + b"\n")
    index = InMemoryCustomerIndex()
    run_main(build_flow(Settings(), memory_io(Settings(), [path], tmp_path / "out", index)))
    assert index.size() == 40
    [moved] = index.get_many(["CU-1"])
    assert moved is not None and moved.region == "TX-201" and moved.model_extra == {}  # "type" is not kept
    letters = [orjson.loads(line) for line in (tmp_path / "out" / "dead_letters.jsonl").read_bytes().splitlines()]
    assert [letter["origin"]["line"] for letter in letters] == [21, 42]
