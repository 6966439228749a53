"""Responders are told first and at every stage: an incident's trigger, acknowledgement, update and resolution
go through the Redis responder outbox and `forewarn deliver`'s responder worker to PagerDuty and Slack
(the stand-ins check the real payload schemas); a silenced incident tells nobody."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_silences import RedisSilenceStore
from forewarn.decisions import Silence
from forewarn.flows.delivery_parts import production_responder_worker
from forewarn.flows.wiring import RedisParts
from forewarn.outreach.lifecycle import Lifecycle
from forewarn.settings import ConfigError, Secrets, Settings
from tests.servers.pagerduty_standin import PagerDutyStandin
from tests.servers.slack_standin import SlackStandin
from tests.unit.test_decision_gate import ELSEWHERE
from tests.unit.test_outreach import _base, _opened

pytestmark = pytest.mark.integration


def settings_for(redis_url: str, pagerduty: PagerDutyStandin) -> Settings:
    return Settings.model_validate({
        "redis": {"url": redis_url},
        "responders": {"pagerduty": {"url": pagerduty.enqueue_url}, "slack": {}, "config_hint": "-c prod.yaml"},
        "playbook": {"approval_from": "notify"},
    })


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_every_stage_reaches_pagerduty_and_slack_in_order(redis_url: str, pagerduty_standin: PagerDutyStandin,
                                                          slack_standin: SlackStandin) -> None:
    client = redis.Redis.from_url(redis_url)
    RedisCustomerIndex(client).upsert(_base() + ELSEWHERE)
    settings = settings_for(redis_url, pagerduty_standin)
    secrets = Secrets(forewarn_pagerduty_routing_key=pagerduty_standin.routing_key,
                      forewarn_slack_webhook_url=slack_standin.webhook_url)
    outreach = RedisParts(settings, secrets).outreach()
    incident = _opened()
    report = outreach.handle(incident)
    assert report.held is not None and "waits for approval" in report.held  # customers wait; responders do not
    pagerduty_standin.fail_next(1, status=500)  # the first try fails: the worker retries it
    worker = production_responder_worker(settings, secrets)
    assert worker is not None
    worker.start()
    try:
        wait_for(lambda: pagerduty_standin.state_of(incident.id) == "triggered" and len(slack_standin.posted) == 1,
                 "the trigger")
        details = pagerduty_standin.alert(incident.id).latest_details  # type: ignore[union-attr]
        assert details is not None and details["approve"] == f"forewarn approve {incident.id} -c prod.yaml"
        assert details["tier"] == "notify" and details["audience"] == 19
        assert f"forewarn approve {incident.id} -c prod.yaml" in str(slack_standin.posted[0])

        life = Lifecycle(outreach)
        outreach.approve(incident.id, "ana")
        life.ack(incident.id, "ana", "crew on site", eta=datetime.now(UTC) + timedelta(hours=2))
        life.update(incident.id, "bo", "splicing")
        life.resolve(incident.id, "ana")
        wait_for(lambda: pagerduty_standin.state_of(incident.id) == "resolved" and len(slack_standin.posted) == 4,
                 "the resolution")
    finally:
        worker.stop()
    actions = [e["event_action"] for e in pagerduty_standin.alert(incident.id).log]  # type: ignore[union-attr]
    assert actions == ["trigger", "acknowledge", "trigger", "resolve"]  # an update re-triggers with fresh details
    assert [m["text"].split(":")[0] for m in slack_standin.posted] == ["New incident", "Acknowledged", "Update",
                                                                       "Resolved"]
    assert slack_standin.refused == []
    client.close()


def test_a_silenced_incident_tells_no_responder(redis_url: str, pagerduty_standin: PagerDutyStandin,
                                                slack_standin: SlackStandin) -> None:
    client = redis.Redis.from_url(redis_url)
    RedisCustomerIndex(client).upsert(_base() + ELSEWHERE)
    incident = _opened()
    start = datetime.now(UTC) - timedelta(hours=1)  # silences are judged at the time of the decision (now)
    RedisSilenceStore(client).add(Silence("S-1", (("topic", incident.topic),), start, start + timedelta(hours=4),
                                          "maintenance", "ana", start))
    settings = settings_for(redis_url, pagerduty_standin)
    secrets = Secrets(forewarn_pagerduty_routing_key=pagerduty_standin.routing_key,
                      forewarn_slack_webhook_url=slack_standin.webhook_url)
    RedisParts(settings, secrets).outreach().handle(incident)
    worker = production_responder_worker(settings, secrets)
    assert worker is not None
    assert worker.outbox.pending() == 0
    client.close()


def test_a_configured_responder_without_its_secret_is_refused_at_start(redis_url: str,
                                                                       pagerduty_standin: PagerDutyStandin) -> None:
    with pytest.raises(ConfigError, match="FOREWARN_PAGERDUTY_ROUTING_KEY is not set"):
        production_responder_worker(settings_for(redis_url, pagerduty_standin), Secrets(_env_file=None))


def test_run_deliver_starts_the_responder_worker_beside_the_delivery_worker(
        redis_url: str, pagerduty_standin: PagerDutyStandin, slack_standin: SlackStandin,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`forewarn run --deliver` on one machine tells responders as `forewarn deliver` does."""
    from forewarn.cli.app import _start_workers

    monkeypatch.setenv("FOREWARN_PAGERDUTY_ROUTING_KEY", pagerduty_standin.routing_key)
    monkeypatch.setenv("FOREWARN_SLACK_WEBHOOK_URL", slack_standin.webhook_url)
    settings = settings_for(redis_url, pagerduty_standin)
    client = redis.Redis.from_url(redis_url)
    RedisCustomerIndex(client).upsert(_base() + ELSEWHERE)
    incident = _opened()
    RedisParts(settings, Secrets()).outreach().handle(incident)
    worker, responders = _start_workers(settings)
    try:
        assert responders is not None and responders.running
        wait_for(lambda: pagerduty_standin.state_of(incident.id) == "triggered" and len(slack_standin.posted) == 1,
                 "the trigger")
    finally:
        worker.stop()
        if responders is not None:
            responders.stop()
    client.close()
