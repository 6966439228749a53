"""What responders are told, at every stage of an incident: the explanation, and the PagerDuty event.

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

The Slack message (`forewarn.outreach.slack_blocks.slack_message`) carries the same explanation.

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
ELLIPSIS: Final = "…"

_ACTIONS: Final[Mapping[ResponderStage, str]] = {
    "trigger": "trigger", "update": "trigger", "acknowledge": "acknowledge", "resolve": "resolve"}
STAGE_TITLES: Final[Mapping[ResponderStage, str]] = {
    "trigger": "New incident", "acknowledge": "Acknowledged", "update": "Update", "resolve": "Resolved"}
STAGE_INTROS: Final[Mapping[ResponderStage, str]] = {
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


def shown_time(at: datetime) -> str:
    return rfc3339(at).replace("T", " ").removesuffix("Z")[:16] + " UTC"


def observed_text(incident: Incident | None) -> str:
    if incident is None:
        return "unknown (no incident record)"
    times = ratio(incident.observed, incident.expected)
    against = f" ({_number(times)}× expected)" if times is not None else " (nothing was expected)"
    return (f"{incident.observed} observed vs {_number(incident.expected)} expected{against} "
            f"since {shown_time(incident.first_window_start)}")


def segment_text(segment: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in segment.items()) or "none isolated"


def audience_text(decision: Decision) -> str:
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
