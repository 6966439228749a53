"""Hostile times and repeats on the real broker and Redis (issue 9): a case dated 9999 used to stop the
flow at every restart and one dated 2100 to make every later case of its topic late; the same case id
delivered twice was counted twice. Here each is a dead letter with its Kafka position, and the flow
counts every other case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from bytewax.testing import run_main

from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import production_io
from tests.integration.helpers import make_settings, produce, read_topic, secrets_for, topic_names
from tests.servers.kafka_broker import create_topics
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 20, 14, tzinfo=UTC)
HOSTILE = {10: "9999-12-31T23:59:00Z", 20: "2100-01-01T00:00:00Z", 30: "0001-01-01T00:00:00Z"}
"""Offset in the cases topic -> the time the hostile case claims."""
REPEATED = 40
"""The offset at which case C-0005 arrives a second time."""


def _cases() -> list[bytes]:
    cases = []
    for n in range(60):
        ts = (START + timedelta(minutes=n)).isoformat()
        cases.append({"type": "case", "id": f"C-{n:04d}", "ts": ts, "topic": "billing", "region": "TX-453"})
    for offset, ts in HOSTILE.items():
        cases[offset] = {**cases[offset], "ts": ts}
    cases[REPEATED] = {**cases[5]}
    return [orjson.dumps(case) for case in cases]


def test_hostile_times_and_a_repeated_id_on_the_cases_topic_are_dead_letters(
    kafka_broker: str, redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer,
) -> None:
    topics = topic_names("hostile")
    create_topics(kafka_broker, topics.values())
    settings = make_settings(topics, kafka_broker, redis_url, twilio_standin, smtp_server, prefix=topics["cases"])
    produce(kafka_broker, topics["cases"], _cases())

    run_main(build_flow(settings, production_io(settings, secrets_for(twilio_standin))))

    letters = {r.json()["origin"]["offset"]: r.json() for r in read_topic(kafka_broker, topics["dead_letters"])}
    assert sorted(letters) == sorted([*HOSTILE, REPEATED]), [(o, x["reason"][:60]) for o, x in letters.items()]
    for offset, ts in HOSTILE.items():
        assert letters[offset]["origin"] == {"source": topics["cases"], "partition": 0, "offset": offset}
        assert letters[offset]["reason"].startswith(f"time: {ts[:4]}"), letters[offset]["reason"]
    assert letters[REPEATED]["reason"].startswith("duplicate: case id already counted at 2026-11-20T14:05:00")
