"""Issue 11: the flow decides and returns; it never waits on a provider.

The demo scenario (two incidents a day apart, 370 and 1,670 recipients) runs through the flow with the
Redis outbox and no delivery worker at all: the flow ends with every incident opened, reported and
resolved and every message queued, while the stand-in has received nothing. Then a worker drains the
outbox against a slow Twilio stand-in, and every queued message arrives exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis
from bytewax.testing import run_main

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.flows.delivery_parts import production_worker
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import build_outreach, file_io
from tests.integration.helpers import make_settings, secrets_for, topic_names
from tests.integration.test_end_to_end import default_scenario
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

pytestmark = pytest.mark.integration


def test_the_flow_queues_every_message_and_ends_before_any_is_sent(
    redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    scenario = default_scenario()
    scenario.write(tmp_path)
    index = InMemoryCustomerIndex()
    index.upsert(scenario.customers)
    settings = make_settings(topic_names("never-waits"), "127.0.0.1:1", redis_url, twilio_standin, smtp_server)
    client = redis.Redis.from_url(redis_url)
    outbox = RedisOutbox(client)
    io = file_io(settings, [tmp_path / "events.jsonl"], tmp_path / "out",
                 lambda: build_outreach(settings, index, outbox))
    io.region_weights = {r: float(n) for r, n in index.attribute_counts("region").items()}
    twilio_standin.latency(0.01)  # a provider slower than the flow: it must not matter to the flow

    run_main(build_flow(settings, io))

    reports = [orjson.loads(line) for line in (tmp_path / "out" / "incidents.jsonl").read_bytes().splitlines()]
    opened = [r for r in reports if r["incident"]["status"] == "opened"]
    resolved = [r for r in reports if r["incident"]["status"] == "resolved"]
    assert len(opened) == 2 and len(resolved) == 2, [(r["incident"]["id"], r["incident"]["status"]) for r in reports]
    # The later incident was detected and reported although not one message of the first had gone out.
    assert not twilio_standin.messages and not smtp_server.messages
    queued = Counter[str]()
    for report in opened:
        assert sum(report["enqueued_by_channel"].values()) == report["audience_size"] > 0
        queued.update(report["enqueued_by_channel"])
    assert outbox.backlog("sms") + outbox.backlog("email") == sum(queued.values()) + sum(
        sum(r["enqueued_by_channel"].values()) for r in resolved)

    worker = production_worker(settings, secrets_for(twilio_standin)).start()
    try:
        assert worker.drain(180), "the worker did not empty the outbox"
    finally:
        worker.stop()
    warned_sms = [m for m in twilio_standin.messages if not m.body.startswith("Forewarn update:")]
    assert len(twilio_standin.messages) == len({(m.to, m.body) for m in twilio_standin.messages}), "a text went twice"
    assert len(warned_sms) == queued["sms"]
    all_clears = {r["incident"]["id"]: sum(r["enqueued_by_channel"].values()) for r in resolved}
    for report in opened:
        funnel = outbox.funnel(report["incident"]["id"])
        assert funnel["decided"] == report["audience_size"] + all_clears[report["incident"]["id"]], funnel
        assert funnel["sent"] == funnel["decided"], funnel
