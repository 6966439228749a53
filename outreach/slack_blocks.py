"""The Slack message for each stage of an incident: the same explanation as PagerDuty's, in Block Kit.

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
>>> message = slack_message(d, None, "trigger", approve_command="forewarn approve INC-1")
>>> message["blocks"][0]["text"]["text"]
'New incident: no_internet in TX-453'
>>> message["blocks"][-2]["text"]["text"]
'*Waiting for approval.* Customers are messaged only after an operator runs:\\n`forewarn approve INC-1`'
"""

from __future__ import annotations

from typing import Any, Final

from forewarn.decisions import Decision, ResponderStage
from forewarn.outreach.responders import (
    ELLIPSIS,
    STAGE_INTROS,
    STAGE_TITLES,
    audience_text,
    clip,
    observed_text,
    segment_of,
    segment_text,
    shown_time,
)
from forewarn.records import Incident

HEADER_MAX: Final = 150
SECTION_TEXT_MAX: Final = 3000
FIELD_MAX: Final = 2000
FALLBACK_MAX: Final = 3000
"""Our cap on a Slack message's `text`, the notification and screen-reader fallback of its blocks."""


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
    title = STAGE_TITLES[stage]
    segment = segment_of(decision, incident)
    pending = decision.approval == "pending"
    fallback = (f"{title}: [{decision.severity}] {decision.topic} in {decision.region} ({decision.incident_id}); "
                f"{decision.tier} tier" + (f"; approve with: {approve_command}" if pending else ""))
    eta = shown_time(decision.eta) if decision.eta is not None else "not set"
    reasons = [f"severity {decision.severity}" + (": " + "; ".join(decision.severity_reasons)
                                                  if decision.severity_reasons else ""),
               f"reach {decision.reach}" + (": " + "; ".join(decision.reach_reasons) if decision.reach_reasons else "")]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": clip(f"{title}: {decision.topic} in {decision.region}", HEADER_MAX)}},
        _section(f"{STAGE_INTROS[stage]} Incident {_code(decision.incident_id)}"),
        {"type": "section", "fields": [
            _field("Observed vs expected", observed_text(incident)),
            _field("Segment", segment_text(segment)),
            _field("Audience", audience_text(decision)),
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
                                   f"{shown_time(stamp)}"}]})
    return {"text": clip_mrkdwn(escape_mrkdwn(fallback), FALLBACK_MAX), "blocks": blocks}
