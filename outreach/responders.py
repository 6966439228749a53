"""What responders are told, at every stage of an incident: a PagerDuty event and a Slack message.

Both carry the same explanation of the decision: what was observed against what was expected, the
segment it hit, the audience, severity × reach → tier with the reasons for each, the stage, the ETA
and, while an operator's approval is pending, the exact command that approves it. The builders are
pure: they return the provider's own JSON body, which the responder outbox keeps in a
`ResponderEvent` and a sender (`forewarn.connectors.pagerduty`, `forewarn.connectors.slack`) posts.

Responders are staff: a case's topic string and a region are shown to them as they are (no
customer-facing label), always as data. The words around them (field names, stage titles, the
sentences) are ours.

PagerDuty (Events API v2, https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
`trigger` opens an alert with `dedup_key` = the incident id, so every later event of the incident
lands on the same alert; `acknowledge` and `resolve` carry only the routing key, the action and
the dedup key. The Events API has no "update" action: an update is a *re-trigger* with the same
dedup key and fresh `custom_details`. While the alert is open (triggered or acknowledged), PagerDuty
deduplicates such a trigger into it: the event, with its new details, is added to the alert's log
and nobody is paged again. After the alert was resolved, a trigger with that key would open a new
alert and page again, so a trigger or update for a closed incident is refused here (`ValueError`):
the last word on a closed incident is `resolve`.

Slack (an incoming webhook, Block Kit): incoming webhooks cannot edit a message, so every stage is a
new message in the channel, with a header naming the stage. Every value we put in `mrkdwn` text (and
in the notification `text`) is escaped for Slack's control characters `&`, `<` and `>`, so a topic
such as `<!channel>` is shown, not obeyed; the header is `plain_text`, which Slack never parses for
mentions or links. Each text is cut to Block Kit's limits (header 150, section text 3,000, field
2,000 characters).

>>> from datetime import UTC, datetime
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> d = Decision("INC-1", "no_internet", "TX-453", "high", ("90x the expected count",), "local",
...              ("370 customers in 1 region",), "notify", "pending", at, audience=370)
>>> event = pagerduty_event(d, None, "trigger", "R" * 32, approve_command="forewarn approve INC-1")
>>> event["event_action"], event["dedup_key"], event["payload"]["severity"], event["payload"]["class"]
('trigger', 'INC-1', 'error', 'notify')
>>> event["payload"]["custom_details"]["approve"]
'forewarn approve INC-1'
>>> pagerduty_event(d, None, "resolve", "R" * 32, approve_command="forewarn approve INC-1")
{'routing_key': 'RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR', 'event_action': 'resolve', 'dedup_key': 'INC-1'}
>>> message = slack_message(d, None, "trigger", approve_command="forewarn approve INC-1")
>>> message["blocks"][0]["text"]["text"]
'New incident: no_internet in TX-453'
>>> message["blocks"][-2]["text"]["text"]
'*Waiting for approval.* Customers are messaged only after an operator runs:\\n`forewarn approve INC-1`'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from forewarn.decisions import Decision, ResponderStage, SeverityLevel
from forewarn.records import Incident, rfc3339

SOURCE: Final = "forewarn"
"""PagerDuty's `payload.source`: the system that saw the problem."""
CLIENT: Final = "Forewarn"
PAGERDUTY_SEVERITY: Final[Mapping[SeverityLevel, str]] = {
    "critical": "critical", "high": "error", "moderate": "warning", "low": "info"}
"""Our severity scale onto PagerDuty's four levels."""
SUMMARY_MAX: Final = 1024
DEDUP_KEY_MAX: Final = 255
HEADER_MAX: Final = 150
SECTION_TEXT_MAX: Final = 3000
FIELD_MAX: Final = 2000
FALLBACK_MAX: Final = 3000
"""Our cap on a Slack message's `text`, the notification and screen-reader fallback of its blocks."""
ELLIPSIS: Final = "…"

_ACTIONS: Final[Mapping[ResponderStage, str]] = {
    "trigger": "trigger", "update": "trigger", "acknowledge": "acknowledge", "resolve": "resolve"}
_TITLES: Final[Mapping[ResponderStage, str]] = {
    "trigger": "New incident", "acknowledge": "Acknowledged", "update": "Update", "resolve": "Resolved"}
_INTROS: Final[Mapping[ResponderStage, str]] = {
    "trigger": "A spike was detected and an incident opened.",
    "acknowledge": "A responder acknowledged the incident.",
    "update": "The incident was updated.",
    "resolve": "The incident is resolved.",
}


def dedup_key(incident_id: str) -> str:
    """PagerDuty's dedup key for an incident: its id, or (beyond PagerDuty's 255 characters) its first
    242 characters and a digest of the whole, the same for every event of the incident.

    >>> dedup_key("INC-1")
    'INC-1'
    >>> long = dedup_key("INC-" + "x" * 300)
    >>> len(long), long == dedup_key("INC-" + "x" * 300), long.startswith("INC-xxx")
    (255, True, True)
    """
    if len(incident_id) <= DEDUP_KEY_MAX:
        return incident_id
    digest = hashlib.sha256(incident_id.encode()).hexdigest()[:12]
    return f"{incident_id[:DEDUP_KEY_MAX - 13]}~{digest}"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut.

    >>> clip("abcdef", 4), clip("abc", 4)
    ('abc…', 'abc')
    """
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters as entities: `&`, `<`, `>` (in that order, so `&` is escaped once).

    >>> escape_mrkdwn("<!channel> & <script>")
    '&lt;!channel&gt; &amp; &lt;script&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip_mrkdwn(escaped: str, limit: int) -> str:
    """Escaped mrkdwn cut to `limit` characters without splitting an entity such as `&amp;`.

    >>> clip_mrkdwn("ab &amp; cd", 6)
    'ab …'
    >>> clip_mrkdwn("abc", 6)
    'abc'
    """
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def segment_of(decision: Decision, incident: Incident | None) -> dict[str, str]:
    """The traits the incident hit: those its signal names, then those isolated among the affected; without
    the incident, the decision's labels other than topic and region.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> d = Decision("INC-1", "wifi", "TX-1", "low", (), "few", (), "observe", "not_needed", at,
    ...              labels=(("topic", "wifi"), ("region", "TX-1"), ("model", "R7000")))
    >>> segment_of(d, None)
    {'model': 'R7000'}
    """
    if incident is None:
        return {name: value for name, value in decision.labels if name not in ("topic", "region")}
    found = dict(incident.known_segment)
    for trait in incident.segment:
        found.setdefault(trait.attribute, trait.value)
    return found


def ratio(observed: int, expected: float) -> float | None:
    """Observed over expected, to one decimal; None when nothing was expected.

    >>> ratio(412, 4.6), ratio(3, 0.0)
    (89.6, None)
    """
    return round(observed / expected, 1) if expected > 0 else None


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _when(at: datetime | None) -> str | None:
    return rfc3339(at) if at is not None else None


def _shown_time(at: datetime) -> str:
    return rfc3339(at).replace("T", " ").removesuffix("Z")[:16] + " UTC"


def _observed_text(incident: Incident | None) -> str:
    if incident is None:
        return "unknown (no incident record)"
    times = ratio(incident.observed, incident.expected)
    against = f" ({_number(times)}× expected)" if times is not None else " (nothing was expected)"
    return (f"{incident.observed} observed vs {_number(incident.expected)} expected{against} "
            f"since {_shown_time(incident.first_window_start)}")


def _segment_text(segment: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in segment.items()) or "none isolated"


def _audience_text(decision: Decision) -> str:
    text = f"{decision.audience} customer{'' if decision.audience == 1 else 's'}"
    return f"{text} (not messaged: {decision.muted})" if decision.muted else text


def _closed_check(decision: Decision, stage: ResponderStage) -> None:
    if stage in ("trigger", "update") and not decision.open:
        raise ValueError(f"incident {decision.incident_id} is closed: a PagerDuty {stage} would open a new alert; "
                         "send resolve instead")


def _summary(decision: Decision, incident: Incident | None) -> str:
    head = f"[{decision.severity}] {decision.topic} in {decision.region}"
    if incident is not None:
        times = ratio(incident.observed, incident.expected)
        head += (f": {incident.observed} observed vs {_number(incident.expected)} expected"
                 + (f" ({_number(times)}×)" if times is not None else ""))
    tail = f"; tier {decision.tier}"
    if decision.approval == "pending":
        tail += ", approval pending"
    if not decision.open:
        tail += ", resolved"
    return clip(head + tail, SUMMARY_MAX)


def custom_details(decision: Decision, incident: Incident | None, *, approve_command: str) -> dict[str, Any]:
    """The explanation PagerDuty shows under an alert (`payload.custom_details`), as JSON values.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> d = Decision("INC-1", "no_internet", "TX-453", "high", ("90x",), "local", ("370 customers",), "notify",
    ...              "not_needed", at, audience=370)
    >>> details = custom_details(d, None, approve_command="forewarn approve INC-1")
    >>> details["reasons"], "approve" in details
    ({'severity': ['90x'], 'reach': ['370 customers']}, False)
    """
    details: dict[str, Any] = {
        "incident_id": decision.incident_id,
        "topic": decision.topic,
        "region": decision.region,
        "observed": incident.observed if incident is not None else None,
        "expected": round(incident.expected, 4) if incident is not None else None,
        "ratio": ratio(incident.observed, incident.expected) if incident is not None else None,
        "since": _when(incident.first_window_start) if incident is not None else None,
        "segment": segment_of(decision, incident),
        "audience": decision.audience,
        "tier": decision.tier,
        "severity": decision.severity,
        "reach": decision.reach,
        "reasons": {"severity": list(decision.severity_reasons), "reach": list(decision.reach_reasons)},
        "approval": decision.approval,
        "muted": decision.muted,
        "stage": decision.stage,
        "eta": _when(decision.eta),
        "note": decision.note,
        "decided_at": _when(decision.decided_at),
        "updated_at": _when(decision.updated_at),
    }
    if decision.approval == "pending":
        details["approve"] = approve_command
    return details


def pagerduty_event(decision: Decision, incident: Incident | None, stage: ResponderStage, routing_key: str, *,
                    approve_command: str, links: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """A PagerDuty Events API v2 event for one stage of the incident (see the module's docstring).

    `links` are (href, text) pairs shown on the alert (a console or status page), sent with triggers and
    updates. Acknowledge and resolve carry only the routing key, the action and the dedup key.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> d = Decision("INC-1", "no_internet", "TX-453", "critical", (), "widespread", (), "broadcast",
    ...              "approved", at, note="crew on site")
    >>> update = pagerduty_event(d, None, "update", "R" * 32, approve_command="x",
    ...                          links=[("https://status.example.com", "status")])
    >>> update["event_action"], update["payload"]["severity"], update["payload"]["custom_details"]["note"]
    ('trigger', 'critical', 'crew on site')
    >>> update["links"]
    [{'href': 'https://status.example.com', 'text': 'status'}]
    >>> from dataclasses import replace
    >>> pagerduty_event(replace(d, open=False), None, "update", "R" * 32, approve_command="x")
    Traceback (most recent call last):
    ...
    ValueError: incident INC-1 is closed: a PagerDuty update would open a new alert; send resolve instead
    """
    action = _ACTIONS[stage]
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action,
                             "dedup_key": dedup_key(decision.incident_id)}
    if action != "trigger":
        return event
    _closed_check(decision, stage)
    at = decision.updated_at if stage == "update" and decision.updated_at is not None else decision.decided_at
    event["payload"] = {
        "summary": _summary(decision, incident),
        "source": SOURCE,
        "severity": PAGERDUTY_SEVERITY[decision.severity],
        "timestamp": rfc3339(at),
        "component": decision.topic,
        "group": decision.region,
        "class": decision.tier,
        "custom_details": custom_details(decision, incident, approve_command=approve_command),
    }
    event["client"] = CLIENT
    if links:
        event["links"] = [{"href": href, "text": text} for href, text in links]
    return event


def _code(command: str) -> str:
    """A command in a code span; as plain escaped text when a backtick or a line break would break the span."""
    if "`" in command or "\n" in command:
        return escape_mrkdwn(command)
    return f"`{escape_mrkdwn(command)}`"


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip_mrkdwn(f"*{label}*\n{escape_mrkdwn(value)}", FIELD_MAX)}


def _section(escaped: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip_mrkdwn(escaped, SECTION_TEXT_MAX)}}


def slack_message(decision: Decision, incident: Incident | None, stage: ResponderStage, *,
                  approve_command: str) -> dict[str, Any]:
    """A Slack incoming-webhook message (Block Kit) for one stage of the incident (see the module's docstring).

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> d = Decision("INC-1", "<!channel>", "TX-453", "low", ("a & b",), "few", (), "observe", "not_needed", at)
    >>> message = slack_message(d, None, "acknowledge", approve_command="forewarn approve INC-1")
    >>> message["text"]
    'Acknowledged: [low] &lt;!channel&gt; in TX-453 (INC-1); observe tier'
    >>> [block["type"] for block in message["blocks"]]
    ['header', 'section', 'section', 'section', 'context']
    >>> message["blocks"][3]["text"]["text"]
    '*Why*\\n• severity low: a &amp; b\\n• reach few'
    """
    title = _TITLES[stage]
    segment = segment_of(decision, incident)
    pending = decision.approval == "pending"
    fallback = (f"{title}: [{decision.severity}] {decision.topic} in {decision.region} ({decision.incident_id}); "
                f"{decision.tier} tier" + (f"; approve with: {approve_command}" if pending else ""))
    eta = _shown_time(decision.eta) if decision.eta is not None else "not set"
    reasons = [f"severity {decision.severity}" + (": " + "; ".join(decision.severity_reasons)
                                                  if decision.severity_reasons else ""),
               f"reach {decision.reach}" + (": " + "; ".join(decision.reach_reasons) if decision.reach_reasons else "")]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": clip(f"{title}: {decision.topic} in {decision.region}", HEADER_MAX)}},
        _section(f"{_INTROS[stage]} Incident {_code(decision.incident_id)}"),
        {"type": "section", "fields": [
            _field("Observed vs expected", _observed_text(incident)),
            _field("Segment", _segment_text(segment)),
            _field("Audience", _audience_text(decision)),
            _field("Severity × reach → tier", f"{decision.severity} × {decision.reach} → {decision.tier}"),
            _field("Stage", decision.stage),
            _field("ETA", eta),
            _field("Approval", decision.approval.replace("_", " ")),
        ]},
        _section("*Why*\n" + "\n".join(f"• {escape_mrkdwn(reason)}" for reason in reasons)),
    ]
    if decision.note:
        blocks.append(_section(f"*Note*\n{escape_mrkdwn(decision.note)}"))
    if pending:
        blocks.append(_section("*Waiting for approval.* Customers are messaged only after an operator runs:\n"
                               + _code(approve_command)))
    stamp = decision.updated_at or decision.decided_at
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"Forewarn · {'updated' if decision.updated_at else 'decided'} "
                                   f"{_shown_time(stamp)}"}]})
    return {"text": clip_mrkdwn(escape_mrkdwn(fallback), FALLBACK_MAX), "blocks": blocks}
