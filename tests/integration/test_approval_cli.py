"""`forewarn approve` and `forewarn hold` against a real Redis: an incident the flow decided waits, then an
operator's approval queues its audience in the outbox, with an audit entry; `forewarn incidents` shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.connectors.redis_decisions import RedisDecisionStore
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.flows.wiring import RedisParts
from forewarn.records import SendResult
from forewarn.settings import Secrets, load_settings
from tests.unit.test_decision_gate import ELSEWHERE
from tests.unit.test_outreach import _base, _opened

pytestmark = pytest.mark.integration


def accept_all(outbox: RedisOutbox) -> None:
    """What a delivery worker does when the provider takes every message: each queued one settled sent."""
    now = datetime.now(UTC)
    for channel in ("sms", "email"):
        for lease in outbox.take(channel, "w", 100, 0):
            outbox.begin(lease, now)
            outbox.settle(lease, "sent", now, SendResult(ok=True, provider_id="P"))


@pytest.fixture
def config(redis_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    # nobody held out: the counts below are the whole audience (the holdout has its own tests)
    path.write_text(f'redis: {{url: "{redis_url}"}}\nplaybook: {{approval_from: notify, holdout_share: 0}}\n')
    return path


def test_an_incident_waits_then_approve_queues_its_audience_and_records_who(
        config: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis.from_url(redis_url)
    RedisCustomerIndex(client).upsert(_base() + ELSEWHERE)
    incident = _opened()
    report = RedisParts(load_settings(config), Secrets()).outreach().handle(incident)  # what the flow does
    assert report.held == f"tier notify waits for approval: forewarn approve {incident.id}"
    outbox = RedisOutbox(client)
    assert outbox.decided(incident.id, "warning") == set()

    pending = CliRunner().invoke(app, ["incidents", "--pending", "-c", str(config)])
    assert pending.exit_code == 0, pending.output
    assert f"forewarn approve {incident.id}" in pending.output

    monkeypatch.delenv("FOREWARN_ACTOR", raising=False)
    monkeypatch.delenv("USER", raising=False)
    nobody = CliRunner().invoke(app, ["approve", incident.id, "-c", str(config)])
    assert nobody.exit_code != 0 and "pass --actor NAME" in nobody.output
    assert outbox.decided(incident.id, "warning") == set()

    monkeypatch.setenv("FOREWARN_ACTOR", "ana")
    approved = CliRunner().invoke(app, ["approve", incident.id, "-c", str(config), "--note", "NOC confirmed"])
    assert approved.exit_code == 0, approved.output
    assert f"{incident.id} approved by ana: 13 messages queued (email 3, sms 10)" in approved.output
    assert len(outbox.decided(incident.id, "warning")) == 13
    assert outbox.backlog("sms") == 10 and outbox.backlog("email") == 3
    store = RedisDecisionStore(client)
    assert [(a.action, a.actor, a.note) for a in store.audit(incident.id)] == [("approve", "ana", "NOC confirmed")]
    decision = store.load(incident.id)
    assert decision is not None and decision.approval == "approved"

    unknown = CliRunner().invoke(app, ["hold", "INC-404", "--actor", "bo", "-c", str(config)])
    assert unknown.exit_code == 1 and "no decision for INC-404" in unknown.output
    client.close()


def test_incident_ack_update_resolve_from_the_command_line(config: Path, redis_url: str) -> None:
    from datetime import UTC, datetime


    client = redis.Redis.from_url(redis_url)
    RedisCustomerIndex(client).upsert(_base() + ELSEWHERE)
    # the default playbook (nobody held out): this incident notifies at once
    config.write_text(f'redis: {{url: "{redis_url}"}}\nplaybook: {{holdout_share: 0}}\n')
    incident = _opened()
    RedisParts(load_settings(config), Secrets()).outreach().handle(incident)
    outbox = RedisOutbox(client)
    accept_all(outbox)  # a delivery worker's part: the warnings reached everyone
    assert len(outbox.accepted(incident.id, "warning")) == 13

    def step(*args: str) -> str:
        result = CliRunner().invoke(app, ["incident", *args, "-c", str(config), "--actor", "ana"])
        assert result.exit_code == 0, result.output
        return result.output

    assert "ack by ana; 13 messages queued" in step("ack", incident.id, "--eta", "2h", "--note", "crew on site")
    assert "update by ana; 13 messages queued" in step("update", incident.id, "--eta", "2026-11-20T18:00Z")
    assert "resolve by ana; 13 messages queued" in step("resolve", incident.id)
    assert {k: len(outbox.decided(incident.id, k)) for k in ("ack", "update-1", "resolved")} == \
        {"ack": 13, "update-1": 13, "resolved": 13}
    decision = RedisDecisionStore(client).load(incident.id)
    assert decision is not None and (decision.stage, decision.open, decision.note) == ("resolved", False,
                                                                                      "crew on site")
    assert decision.eta == datetime(2026, 11, 20, 18, tzinfo=UTC)
    bad = CliRunner().invoke(app, ["incident", "update", incident.id, "--eta", "tomorrow", "-c", str(config),
                                   "--actor", "ana"])
    assert bad.exit_code == 1 and "neither a duration" in bad.output
    client.close()


def test_effect_reports_warned_and_held_out_call_rates_from_redis(config: Path, redis_url: str) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from forewarn.connectors.redis_incidents import RedisIncidentStore

    client = redis.Redis.from_url(redis_url)
    RedisCustomerIndex(client).upsert(_base() + ELSEWHERE)
    config.write_text(f'redis: {{url: "{redis_url}"}}\nplaybook: {{holdout_share: 0.3}}\n')
    incident = replace(_opened(), opened_at=datetime.now(UTC))  # within --since
    RedisParts(load_settings(config), Secrets()).outreach().handle(incident)
    outbox = RedisOutbox(client)
    accept_all(outbox)
    warned, held = outbox.accepted(incident.id, "warning"), outbox.held_out(incident.id)
    assert warned and held and not warned & held
    callers = {sorted(warned)[0], *held}  # one warned customer called, and every held-out one
    RedisIncidentStore(client).save(replace(incident, reporters=incident.reporters | callers))

    result = CliRunner().invoke(app, ["effect", "--since", "1d", "-c", str(config)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"{len(warned)} (1)" in text and f"{len(held)} ({len(held)})" in text
    assert f"warned customers called {1 / len(warned):.1%} (1/{len(warned)}), held-out 100.0% " \
           f"({len(held)}/{len(held)})" in text
    client.close()
