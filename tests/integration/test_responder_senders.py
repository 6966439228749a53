"""The responder senders over real HTTP: `PagerDutySender` against the Events API v2 stand-in and `SlackSender`
against the incoming-webhook stand-in, each checking the real payload schema. Events go through a JSON round
trip first, as the responder outbox keeps them."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from forewarn.connectors.pagerduty import PagerDutySender
from forewarn.connectors.slack import SlackSender
from forewarn.decisions import Decision, ResponderEvent, ResponderStage
from forewarn.interfaces import ResponderSender
from forewarn.outreach.responders import pagerduty_event
from forewarn.outreach.slack_blocks import slack_message
from forewarn.records import Incident
from tests.servers.pagerduty_standin import PagerDutyStandin
from tests.servers.ports import free_port
from tests.servers.slack_standin import SlackStandin

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 20, 14, tzinfo=UTC)
APPROVE = "forewarn approve INC-1"
DECISION = Decision("INC-1", "no_internet", "TX-453", "high", ("90x the expected count",), "local",
                    ("370 customers in 1 region",), "notify", "pending", AT, audience=370)
INCIDENT = Incident("INC-1", "no_internet", "TX-453", "opened", AT, AT - timedelta(hours=1), AT, 412, 4.6, 3, 412)


def outboxed(stage: ResponderStage, target: str, payload: dict[str, Any], seq: int = 0) -> ResponderEvent:
    event = ResponderEvent("INC-1", stage, target, payload, AT, AT + timedelta(hours=1), seq)  # type: ignore[arg-type]
    return ResponderEvent.from_json(event.to_json())


def pd(standin: PagerDutyStandin, stage: ResponderStage, decision: Decision = DECISION, seq: int = 0,
       routing_key: str | None = None) -> ResponderEvent:
    payload = pagerduty_event(decision, INCIDENT, stage, routing_key or standin.routing_key, approve_command=APPROVE)
    return outboxed(stage, "pagerduty", payload, seq)


def slack(stage: ResponderStage = "trigger", decision: Decision = DECISION) -> ResponderEvent:
    return outboxed(stage, "slack", slack_message(decision, INCIDENT, stage, approve_command=APPROVE))


@pytest.fixture
def pagerduty(pagerduty_standin: PagerDutyStandin) -> PagerDutySender:
    return PagerDutySender(url=pagerduty_standin.enqueue_url, timeout=5.0)


@pytest.fixture
def slack_sender(slack_standin: SlackStandin) -> SlackSender:
    return SlackSender(slack_standin.webhook_url, timeout=5.0)


# --- PagerDuty ------------------------------------------------------------------------------------


def test_trigger_acknowledge_resolve_leaves_the_alert_resolved(pagerduty: PagerDutySender,
                                                               pagerduty_standin: PagerDutyStandin) -> None:
    sender: ResponderSender = pagerduty
    triggered = sender.send(pd(pagerduty_standin, "trigger"))
    assert (triggered.ok, triggered.provider_id) == (True, "INC-1")
    assert pagerduty_standin.state_of("INC-1") == "triggered"
    assert sender.send(pd(pagerduty_standin, "acknowledge")).ok
    assert pagerduty_standin.state_of("INC-1") == "acknowledged"
    resolved = sender.send(pd(pagerduty_standin, "resolve"))
    assert (resolved.ok, resolved.provider_id) == (True, "INC-1")
    alert = pagerduty_standin.alert("INC-1")
    assert alert is not None and alert.state == "resolved" and alert.opened == 1
    assert [e["event_action"] for e in alert.log] == ["trigger", "acknowledge", "resolve"]
    assert alert.custom_details is not None and alert.custom_details["observed"] == 412
    assert alert.custom_details["approve"] == APPROVE


def test_an_update_is_folded_into_the_open_alert_with_fresh_details(pagerduty: PagerDutySender,
                                                                    pagerduty_standin: PagerDutyStandin) -> None:
    assert pagerduty.send(pd(pagerduty_standin, "trigger")).ok
    assert pagerduty.send(pd(pagerduty_standin, "acknowledge")).ok
    later = replace(DECISION, approval="approved", stage="identified", note="crew on site",
                    updated_at=AT + timedelta(minutes=20))
    assert pagerduty.send(pd(pagerduty_standin, "update", later, seq=1)).ok
    alert = pagerduty_standin.alert("INC-1")
    assert alert is not None
    assert (alert.state, alert.opened, len(alert.log)) == ("acknowledged", 1, 3), "no second page"
    assert alert.latest_details is not None
    assert (alert.latest_details["note"], alert.latest_details["stage"]) == ("crew on site", "identified")
    assert "approve" not in alert.latest_details


def test_an_invalid_event_is_a_final_failure_with_pagerdutys_errors(pagerduty: PagerDutySender,
                                                                    pagerduty_standin: PagerDutyStandin) -> None:
    event = pd(pagerduty_standin, "trigger")
    broken = replace(event, payload={**event.payload, "payload": {**event.payload["payload"], "summary": "",
                                                                   "severity": "high"}})
    result = pagerduty.send(broken)
    assert (result.ok, result.retryable) == (False, False)
    assert result.reason.startswith("pagerduty 400: invalid event: ")
    assert "'payload.summary'" in result.reason and "'payload.severity' is invalid" in result.reason
    assert pagerduty_standin.alerts == {} and len(pagerduty_standin.rejected) == 1


def test_a_routing_key_pagerduty_refuses_is_final_and_never_quoted(pagerduty: PagerDutySender,
                                                                   pagerduty_standin: PagerDutyStandin) -> None:
    short = pagerduty.send(pd(pagerduty_standin, "trigger", routing_key="R" * 31))
    assert not short.retryable and "Length of 'routing_key' is incorrect" in short.reason
    unknown_key = "f" * 32
    unknown = pagerduty.send(pd(pagerduty_standin, "trigger", routing_key=unknown_key))
    assert not unknown.retryable and unknown.reason == "pagerduty 400: invalid event: Invalid routing key"
    assert unknown_key not in unknown.reason
    assert pagerduty_standin.alerts == {}


def test_rate_limited_then_accepted(pagerduty: PagerDutySender, pagerduty_standin: PagerDutyStandin) -> None:
    pagerduty_standin.fail_next(1, status=429, retry_after=3)
    event = pd(pagerduty_standin, "trigger")
    limited = pagerduty.send(event)
    assert (limited.ok, limited.retryable, limited.uncertain, limited.retry_after) == (False, True, False, 3.0)
    assert pagerduty_standin.alerts == {}
    accepted = pagerduty.send(event)
    assert (accepted.ok, accepted.provider_id) == (True, "INC-1")
    assert pagerduty_standin.state_of("INC-1") == "triggered"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_retryable(pagerduty: PagerDutySender, pagerduty_standin: PagerDutyStandin,
                                     status: int) -> None:
    pagerduty_standin.fail_next(1, status=status)
    result = pagerduty.send(pd(pagerduty_standin, "trigger"))
    assert (result.ok, result.retryable, result.uncertain) == (False, True, True)
    assert result.reason == f"pagerduty {status}: server error"


def test_a_timeout_is_uncertain_and_a_re_send_opens_no_second_alert(pagerduty_standin: PagerDutyStandin) -> None:
    pagerduty_standin.latency(2.0)
    impatient = PagerDutySender(url=pagerduty_standin.enqueue_url, timeout=0.2)
    result = impatient.send(pd(pagerduty_standin, "trigger"))
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (False, True, True, "pagerduty: timeout")
    pagerduty_standin.latency(0)
    again = PagerDutySender(url=pagerduty_standin.enqueue_url, timeout=5.0).send(pd(pagerduty_standin, "trigger"))
    assert again.ok
    alert = pagerduty_standin.alert("INC-1")
    assert alert is not None and alert.opened == 1


def test_nothing_listening_is_retryable_and_certain() -> None:
    sender = PagerDutySender(url=f"http://127.0.0.1:{free_port()}/v2/enqueue", timeout=2.0)
    payload = pagerduty_event(DECISION, INCIDENT, "trigger", "k" * 32, approve_command=APPROVE)
    result = sender.send(outboxed("trigger", "pagerduty", payload))
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (
        False, True, False, "pagerduty: connection failed")


def test_a_slack_event_is_not_sent_to_pagerduty(pagerduty: PagerDutySender,
                                                pagerduty_standin: PagerDutyStandin) -> None:
    result = pagerduty.send(slack())
    assert not result.ok and not result.retryable
    assert pagerduty_standin.requests == 0


# --- Slack ----------------------------------------------------------------------------------------


def test_a_message_is_posted(slack_sender: SlackSender, slack_standin: SlackStandin) -> None:
    sender: ResponderSender = slack_sender
    event = slack("trigger")
    result = sender.send(event)
    assert (result.ok, result.reason) == (True, "")
    assert slack_standin.posted == [event.payload]


def test_every_stage_is_posted(slack_sender: SlackSender, slack_standin: SlackStandin) -> None:
    for stage in ("trigger", "acknowledge", "update", "resolve"):
        assert slack_sender.send(slack(stage)).ok  # type: ignore[arg-type]
    assert [m["blocks"][0]["text"]["text"].split(":")[0] for m in slack_standin.posted] == [
        "New incident", "Acknowledged", "Update", "Resolved"]


def test_invalid_blocks_are_a_final_failure(slack_sender: SlackSender, slack_standin: SlackStandin) -> None:
    event = slack()
    blocks = [dict(b) for b in event.payload["blocks"]]
    blocks[0] = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    result = slack_sender.send(replace(event, payload={**event.payload, "blocks": blocks}))
    assert (result.ok, result.retryable, result.reason) == (False, False, "slack 400: invalid_blocks")
    assert slack_standin.posted == []


def test_a_message_with_nothing_to_show_is_final(slack_sender: SlackSender, slack_standin: SlackStandin) -> None:
    result = slack_sender.send(replace(slack(), payload={"unfurl_links": False}))
    assert (result.ok, result.retryable, result.reason) == (False, False, "slack 400: no_text")


def test_rate_limited_is_retryable_after_retry_after(slack_sender: SlackSender, slack_standin: SlackStandin) -> None:
    slack_standin.fail_next(1, status=429, retry_after=7)
    event = slack()
    limited = slack_sender.send(event)
    assert (limited.ok, limited.retryable, limited.uncertain, limited.retry_after) == (False, True, False, 7.0)
    assert limited.reason == "slack 429: rate_limited"
    assert slack_sender.send(event).ok
    assert len(slack_standin.posted) == 1


def test_a_server_error_is_retryable_and_uncertain(slack_sender: SlackSender, slack_standin: SlackStandin) -> None:
    slack_standin.fail_next(1, status=500)
    result = slack_sender.send(slack())
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (False, True, True,
                                                                             "slack 500: rollup_error")


@pytest.mark.parametrize(("fault", "expected"), [("archive", "slack 410: channel_is_archived"),
                                                 ("revoke", "slack 403: invalid_token")])
def test_a_webhook_slack_no_longer_serves_is_final(slack_sender: SlackSender, slack_standin: SlackStandin,
                                                   fault: str, expected: str) -> None:
    getattr(slack_standin, fault)()
    result = slack_sender.send(slack())
    assert (result.ok, result.retryable, result.reason) == (False, False, expected)


def test_a_wrong_webhook_url_is_final(slack_standin: SlackStandin) -> None:
    result = SlackSender(slack_standin.base_url + "/services/T0/B0/wrong", timeout=5.0).send(slack())
    assert (result.ok, result.retryable, result.reason) == (False, False, "slack 404: no_service")


def test_a_slack_timeout_is_uncertain(slack_standin: SlackStandin) -> None:
    slack_standin.latency(2.0)
    result = SlackSender(slack_standin.webhook_url, timeout=0.2).send(slack())
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (False, True, True, "slack: timeout")


# --- secrets ----------------------------------------------------------------------------------------


def test_no_routing_key_nor_webhook_secret_is_logged(caplog: pytest.LogCaptureFixture,
                                                     pagerduty_standin: PagerDutyStandin,
                                                     slack_standin: SlackStandin) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests"):  # held at WARNING as forewarn.logs holds them: they echo request paths
        caplog.set_level(logging.WARNING, logger=name)
    pagerduty = PagerDutySender(url=pagerduty_standin.enqueue_url, timeout=0.3)
    slack_sender = SlackSender(slack_standin.webhook_url, timeout=0.3)
    results = [pagerduty.send(pd(pagerduty_standin, "trigger")), slack_sender.send(slack())]
    pagerduty_standin.fail_next(1, status=429)
    slack_standin.fail_next(1, status=500)
    results += [pagerduty.send(pd(pagerduty_standin, "resolve")), slack_sender.send(slack())]
    results.append(pagerduty.send(pd(pagerduty_standin, "trigger", routing_key="0" * 32)))
    slack_standin.latency(2.0)
    results.append(slack_sender.send(slack()))
    slack_standin.latency(0)
    refused_path = f"http://127.0.0.1:{free_port()}{slack_standin.path}"
    results.append(SlackSender(refused_path, timeout=0.3).send(slack()))
    assert [r.ok for r in results] == [True, True, False, False, False, False, False]
    ours = [r for r in caplog.records if r.name.startswith("forewarn.connectors.")]
    assert {r.name for r in ours} == {"forewarn.connectors.pagerduty", "forewarn.connectors.slack"}
    assert sum(r.levelno == logging.WARNING for r in ours) == 5, "each failure is logged"
    secrets = (pagerduty_standin.routing_key, slack_standin.secret, slack_standin.path)
    written = [r.getMessage() for r in caplog.records] + [caplog.text] + [r.reason for r in results]
    leaks = [(s, w) for s in secrets for w in written if s in w]
    assert not leaks, leaks
    assert slack_standin.secret not in repr(slack_sender)
