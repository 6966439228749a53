"""What responders are told: the PagerDuty events and Slack messages of `forewarn.outreach.responders`,
checked against the stand-ins' models of the real schemas (PagerDuty Events API v2, Slack Block Kit)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from forewarn.decisions import Approval, Decision, ResponderStage, SeverityLevel
from forewarn.outreach.responders import DEDUP_KEY_MAX, SUMMARY_MAX, pagerduty_event
from forewarn.outreach.slack_blocks import FIELD_MAX, HEADER_MAX, SECTION_TEXT_MAX, slack_message
from forewarn.records import Incident, Trait
from tests.servers.pagerduty_standin import PagerDutyEvent
from tests.servers.slack_standin import SlackMessage, slack_error

AT = datetime(2026, 11, 20, 14, tzinfo=UTC)
KEY = "0123456789abcdef0123456789abcdef"
APPROVE = "forewarn approve INC-1 -c production.yaml"
STAGES: tuple[ResponderStage, ...] = ("trigger", "acknowledge", "update", "resolve")
APPROVALS: tuple[Approval, ...] = get_args(Approval)
HOSTILE = "<!channel> <script>alert(1)</script> & <@U123|boss> <https://evil.example|click>"


def decision(**changes: Any) -> Decision:
    base = Decision("INC-1", "no_internet", "TX-453", "high", ("90x the expected count", "3 signals"), "local",
                    ("370 customers in 1 region",), "notify", "pending", AT, audience=370,
                    labels=(("topic", "no_internet"), ("region", "TX-453"), ("model", "R7000")))
    return replace(base, **changes)


def incident(**changes: Any) -> Incident:
    base = Incident("INC-1", "no_internet", "TX-453", "opened", AT, AT - timedelta(hours=1), AT, 412, 4.6, 3, 412,
                    segment=(Trait("firmware", "2.1.7", 300, 0.73, 0.1, 7.3, 1e-40),
                             Trait("model", "R9999", 200, 0.5, 0.2, 2.5, 1e-9)),
                    known_segment=(("model", "R7000"),))
    return replace(base, **changes)


def mrkdwn_texts(message: dict[str, Any]) -> Iterator[str]:
    """Every string Slack parses as mrkdwn: the notification text and each mrkdwn text object."""
    yield message["text"]
    for block in message["blocks"]:
        objects = [block.get("text"), *block.get("fields", ()), *block.get("elements", ())]
        yield from (o["text"] for o in objects if o and o["type"] == "mrkdwn")


def all_texts(message: dict[str, Any]) -> str:
    return "\n".join([*mrkdwn_texts(message), message["blocks"][0]["text"]["text"]])


# --- the schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("approval", APPROVALS)
@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_validates_against_both_schemas(stage: ResponderStage, approval: Approval) -> None:
    for inc in (incident(), None):
        d = decision(approval=approval, eta=AT + timedelta(hours=4), note="crew on site",
                     updated_at=AT + timedelta(minutes=30))
        event = pagerduty_event(d, inc, stage, KEY, approve_command=APPROVE,
                                links=[("https://status.example.com/INC-1", "status page")])
        parsed = PagerDutyEvent.model_validate(event)
        assert parsed.dedup_key == "INC-1"
        message = slack_message(d, inc, stage, approve_command=APPROVE)
        SlackMessage.model_validate(message)
        assert slack_error(message) is None


@pytest.mark.parametrize("stage", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_carry_only_the_key_action_and_dedup_key(stage: ResponderStage) -> None:
    assert pagerduty_event(decision(), incident(), stage, KEY, approve_command=APPROVE) == {
        "routing_key": KEY, "event_action": stage, "dedup_key": "INC-1"}


def test_a_trigger_explains_the_decision() -> None:
    d = decision(eta=AT + timedelta(hours=4), note="crew on site")
    event = pagerduty_event(d, incident(), "trigger", KEY, approve_command=APPROVE)
    payload = event["payload"]
    assert (event["event_action"], event["dedup_key"]) == ("trigger", "INC-1")
    assert (payload["source"], payload["severity"], payload["timestamp"]) == ("forewarn", "error",
                                                                              "2026-11-20T14:00:00Z")
    assert (payload["component"], payload["group"], payload["class"]) == ("no_internet", "TX-453", "notify")
    assert payload["summary"] == ("[high] no_internet in TX-453: 412 observed vs 4.6 expected (89.6×); tier notify, "
                                  "approval pending")
    details = payload["custom_details"]
    assert (details["observed"], details["expected"], details["ratio"]) == (412, 4.6, 89.6)
    assert details["segment"] == {"model": "R7000", "firmware": "2.1.7"}, "the signal's traits win over isolated"
    assert (details["audience"], details["tier"], details["severity"], details["reach"]) == (
        370, "notify", "high", "local")
    assert details["reasons"] == {"severity": ["90x the expected count", "3 signals"],
                                  "reach": ["370 customers in 1 region"]}
    assert (details["approval"], details["approve"]) == ("pending", APPROVE)
    assert (details["stage"], details["eta"], details["note"]) == ("investigating", "2026-11-20T18:00:00Z",
                                                                  "crew on site")


def test_an_update_is_a_re_trigger_with_the_same_dedup_key_and_fresh_details() -> None:
    first = pagerduty_event(decision(), incident(), "trigger", KEY, approve_command=APPROVE)
    later = decision(approval="approved", stage="identified", eta=AT + timedelta(hours=2), note="fix rolling out",
                     updated_at=AT + timedelta(minutes=45))
    update = pagerduty_event(later, incident(observed=900), "update", KEY, approve_command=APPROVE)
    assert (update["event_action"], update["dedup_key"]) == ("trigger", first["dedup_key"])
    details = update["payload"]["custom_details"]
    assert (details["observed"], details["stage"], details["note"], details["approval"]) == (
        900, "identified", "fix rolling out", "approved")
    assert update["payload"]["timestamp"] == "2026-11-20T14:45:00Z"


@pytest.mark.parametrize("stage", ["trigger", "update"])
def test_a_closed_incident_is_never_re_triggered(stage: ResponderStage) -> None:
    closed = decision(open=False, stage="resolved")
    with pytest.raises(ValueError, match="send resolve instead"):
        pagerduty_event(closed, incident(), stage, KEY, approve_command=APPROVE)
    assert pagerduty_event(closed, incident(), "resolve", KEY, approve_command=APPROVE)["event_action"] == "resolve"


@pytest.mark.parametrize(("ours", "theirs"), [("critical", "critical"), ("high", "error"), ("moderate", "warning"),
                                              ("low", "info")])
def test_severity_maps_onto_pagerdutys_levels(ours: SeverityLevel, theirs: str) -> None:
    event = pagerduty_event(decision(severity=ours), incident(), "trigger", KEY, approve_command=APPROVE)
    assert event["payload"]["severity"] == theirs
    assert PagerDutyEvent.model_validate(event).payload is not None


def test_the_slack_message_shows_the_same_explanation() -> None:
    message = slack_message(decision(eta=AT + timedelta(hours=4)), incident(), "trigger", approve_command=APPROVE)
    header, intro, facts = message["blocks"][:3]
    assert header == {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                 "text": "New incident: no_internet in TX-453"}}
    assert "`INC-1`" in intro["text"]["text"]
    fields = {f["text"].split("\n", 1)[0]: f["text"].split("\n", 1)[1] for f in facts["fields"]}
    assert fields == {
        "*Observed vs expected*": "412 observed vs 4.6 expected (89.6× expected) since 2026-11-20 13:00 UTC",
        "*Segment*": "model R7000, firmware 2.1.7",
        "*Audience*": "370 customers",
        "*Severity × reach → tier*": "high × local → notify",
        "*Stage*": "investigating",
        "*ETA*": "2026-11-20 18:00 UTC",
        "*Approval*": "pending",
    }
    assert "• severity high: 90x the expected count; 3 signals" in message["blocks"][3]["text"]["text"]
    assert message["text"].startswith("New incident: [high] no_internet in TX-453 (INC-1)")


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_has_its_own_header(stage: ResponderStage) -> None:
    titles = {"trigger": "New incident", "acknowledge": "Acknowledged", "update": "Update", "resolve": "Resolved"}
    message = slack_message(decision(), incident(), stage, approve_command=APPROVE)
    assert message["blocks"][0]["text"]["text"] == f"{titles[stage]}: no_internet in TX-453"


def test_without_an_incident_record_the_numbers_are_unknown_and_the_labels_give_the_segment() -> None:
    details = pagerduty_event(decision(), None, "trigger", KEY, approve_command=APPROVE)["payload"]["custom_details"]
    assert (details["observed"], details["expected"], details["ratio"]) == (None, None, None)
    assert details["segment"] == {"model": "R7000"}
    message = slack_message(decision(), None, "trigger", approve_command=APPROVE)
    assert "*Observed vs expected*\nunknown" in all_texts(message)


def test_nothing_expected_has_no_ratio() -> None:
    details = pagerduty_event(decision(), incident(expected=0.0), "trigger", KEY,
                              approve_command=APPROVE)["payload"]["custom_details"]
    assert details["ratio"] is None
    assert "(nothing was expected)" in all_texts(slack_message(decision(), incident(expected=0.0), "trigger",
                                                               approve_command=APPROVE))


def test_a_muted_incident_says_why_customers_are_not_messaged() -> None:
    d = decision(silenced_by="S-7")
    assert pagerduty_event(d, incident(), "trigger", KEY, approve_command=APPROVE)["payload"]["custom_details"][
        "muted"] == "silenced by S-7"
    assert "370 customers (not messaged: silenced by S-7)" in all_texts(
        slack_message(d, incident(), "trigger", approve_command=APPROVE))


# --- the approve command --------------------------------------------------------------------------


@pytest.mark.parametrize("approval", APPROVALS)
def test_the_approve_command_is_there_only_while_approval_is_pending(approval: Approval) -> None:
    d = decision(approval=approval)
    details = pagerduty_event(d, incident(), "trigger", KEY, approve_command=APPROVE)["payload"]["custom_details"]
    message = slack_message(d, incident(), "trigger", approve_command=APPROVE)
    if approval == "pending":
        assert details["approve"] == APPROVE
        assert f"`{APPROVE}`" in message["blocks"][-2]["text"]["text"]
        assert APPROVE in message["text"]
    else:
        assert "approve" not in details
        assert APPROVE not in all_texts(message)


def test_a_command_that_would_break_a_code_span_is_shown_as_escaped_text() -> None:
    message = slack_message(decision(), None, "trigger", approve_command="forewarn approve 'INC`1' <x>")
    assert message["blocks"][-2]["text"]["text"].endswith("\nforewarn approve 'INC`1' &lt;x&gt;")


# --- hostile text ---------------------------------------------------------------------------------


def test_hostile_text_is_escaped_in_every_mrkdwn_value() -> None:
    d = decision(topic=HOSTILE, region=HOSTILE, severity_reasons=(HOSTILE,), reach_reasons=(HOSTILE,), note=HOSTILE,
                 incident_id="INC-<!here>")
    inc = incident(known_segment=(("model", HOSTILE),))
    message = slack_message(d, inc, "trigger", approve_command=f"forewarn approve {HOSTILE}")
    SlackMessage.model_validate(message)
    texts = list(mrkdwn_texts(message))
    for text in texts:
        assert "<" not in text and ">" not in text, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), f"a bare & in {text!r}"
    joined = "\n".join(texts)
    assert "&lt;!channel&gt;" in joined and "&lt;script&gt;" in joined and "&lt;!here&gt;" in joined
    assert "&amp; &lt;@U123|boss&gt;" in joined
    header = message["blocks"][0]["text"]
    assert header["type"] == "plain_text", "Slack never parses plain_text for mentions or links"


def test_hostile_text_reaches_pagerduty_as_data() -> None:
    event = pagerduty_event(decision(topic=HOSTILE, note=HOSTILE), incident(), "trigger", KEY, approve_command=APPROVE)
    assert event["payload"]["component"] == HOSTILE
    assert event["payload"]["custom_details"]["note"] == HOSTILE
    PagerDutyEvent.model_validate(event)


# --- limits ---------------------------------------------------------------------------------------


def test_long_values_are_cut_to_the_providers_limits() -> None:
    long = "x" * 5000
    d = decision(topic=long, region=long, note="<" * 5000, severity_reasons=tuple(long for _ in range(20)))
    event = pagerduty_event(d, incident(known_segment=(("model", long),)), "trigger", KEY, approve_command=APPROVE)
    summary = event["payload"]["summary"]
    assert len(summary) == SUMMARY_MAX and summary.endswith("…") and summary.startswith("[high] xxx")
    PagerDutyEvent.model_validate(event)
    message = slack_message(d, incident(known_segment=(("model", long),)), "trigger", approve_command=APPROVE)
    SlackMessage.model_validate(message)
    header = message["blocks"][0]["text"]["text"]
    assert len(header) == HEADER_MAX and header.endswith("…")
    assert max(len(f["text"]) for f in message["blocks"][2]["fields"]) == FIELD_MAX
    note = next(b["text"]["text"] for b in message["blocks"] if b.get("text", {}).get("text", "").startswith("*Note*"))
    assert len(note) <= SECTION_TEXT_MAX and note.endswith("&lt;…"), "an entity is never cut in half"


def test_a_long_incident_id_keeps_one_dedup_key_within_pagerdutys_limit() -> None:
    d = decision(incident_id="INC-20261117T1400Z-" + "t" * 400)
    keys = {pagerduty_event(d, None, stage, KEY, approve_command=APPROVE)["dedup_key"]
            for stage in ("trigger", "acknowledge", "resolve")}
    assert len(keys) == 1 and len(keys.pop()) == DEDUP_KEY_MAX


# --- the models bite --------------------------------------------------------------------------------


def _trigger() -> dict[str, Any]:
    return pagerduty_event(decision(), incident(), "trigger", KEY, approve_command=APPROVE)


@pytest.mark.parametrize("breakage", [
    lambda e: e.update(routing_key=KEY[:31]),
    lambda e: e.update(event_action="update"),
    lambda e: e.update(dedup_key="k" * 256),
    lambda e: e.pop("payload"),
    lambda e: e["payload"].update(summary="s" * 1025),
    lambda e: e["payload"].pop("source"),
    lambda e: e["payload"].update(severity="high"),
    lambda e: e["payload"].update(timestamp="yesterday"),
    lambda e: e["payload"].update(timestamp="2026-11-20T14:00:00"),
    lambda e: e["payload"].update(custom_details=["not", "an", "object"]),
    lambda e: e.update(links=[{"text": "no href"}]),
    lambda e: e.update(images=[{"alt": "no src"}]),
    lambda e: e.update(extra="field"),
], ids=["key-31", "action", "dedup-256", "no-payload", "summary-1025", "no-source", "severity", "timestamp",
        "timestamp-no-zone", "details-list", "link", "image", "extra"])
def test_the_pagerduty_model_refuses_what_pagerduty_refuses(breakage: Any) -> None:
    event = _trigger()
    PagerDutyEvent.model_validate(event)
    breakage(event)
    with pytest.raises(ValidationError):
        PagerDutyEvent.model_validate(event)


def test_the_pagerduty_model_needs_a_dedup_key_to_acknowledge() -> None:
    with pytest.raises(ValidationError, match="dedup_key"):
        PagerDutyEvent.model_validate({"routing_key": KEY, "event_action": "acknowledge"})


def _message() -> dict[str, Any]:
    return slack_message(decision(), incident(), "trigger", approve_command=APPROVE)


@pytest.mark.parametrize(("breakage", "error"), [
    (lambda m: m["blocks"][0]["text"].update(text="h" * 151), "invalid_blocks"),
    (lambda m: m["blocks"][0]["text"].update(type="mrkdwn"), "invalid_blocks"),
    (lambda m: m["blocks"][1]["text"].update(text="s" * 3001), "invalid_blocks"),
    (lambda m: m["blocks"][2]["fields"].extend([{"type": "mrkdwn", "text": "f"}] * 4), "invalid_blocks"),
    (lambda m: m["blocks"][2]["fields"][0].update(text="f" * 2001), "invalid_blocks"),
    (lambda m: m["blocks"][2]["fields"][0].update(text=""), "invalid_blocks"),
    (lambda m: m["blocks"][2]["fields"][0].update(type="markdown"), "invalid_blocks"),
    (lambda m: m["blocks"].extend([{"type": "divider"}] * 45), "invalid_blocks"),
    (lambda m: m["blocks"].append({"type": "carousel"}), "invalid_blocks"),
    (lambda m: m["blocks"].append({"type": "section"}), "invalid_blocks"),
    (lambda m: (m.pop("text"), m.pop("blocks")), "no_text"),
    (lambda m: m.update(unfurl_links="yes please"), "invalid_payload"),
], ids=["header-151", "header-mrkdwn", "section-3001", "fields-11", "field-2001", "empty-text", "text-type",
        "blocks-51", "unknown-block", "empty-section", "nothing", "top-level-type"])
def test_the_slack_model_refuses_what_slack_refuses(breakage: Any, error: str) -> None:
    message = _message()
    assert slack_error(message) is None
    breakage(message)
    assert slack_error(message) == error
    with pytest.raises(ValidationError):
        SlackMessage.model_validate(message)
