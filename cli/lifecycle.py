"""`forewarn incident ack/update/resolve`: responders drive an incident through its life."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from forewarn.cli.approval import IncidentArgument, NoteOption, outreach_parts
from forewarn.cli.common import ActorOption, ConfigOption, _fail, actor_of, app, console
from forewarn.settings import ConfigError

incident_app = typer.Typer(no_args_is_help=True, help="Acknowledge, update and resolve an incident.")
app.add_typer(incident_app, name="incident")

EtaOption = Annotated[str | None, typer.Option(
    help="When the fix is expected: a duration from now (2h, 90m) or a time with its zone (2026-11-20T18:00Z).")]


@incident_app.command()
def ack(incident_id: IncidentArgument, config: ConfigOption = None, actor: ActorOption = None,
        note: NoteOption = "", eta: EtaOption = None) -> None:
    """A responder has it: the warned customers hear that the cause is found (with the ETA when given)."""
    _step("ack", incident_id, config, actor, note, eta)


@incident_app.command()
def update(incident_id: IncidentArgument, config: ConfigOption = None, actor: ActorOption = None,
           note: NoteOption = "", eta: EtaOption = None) -> None:
    """A new ETA or note: the warned customers hear the ETA (the note goes to responders and the status feed)."""
    _step("update", incident_id, config, actor, note, eta)


@incident_app.command()
def resolve(incident_id: IncidentArgument, config: ConfigOption = None, actor: ActorOption = None,
            note: NoteOption = "") -> None:
    """Fixed: the all-clear goes to the warned customers now."""
    _step("resolve", incident_id, config, actor, note, None)


def _step(action: str, incident_id: str, config: Path | None, actor: str | None, note: str,
          eta_text: str | None) -> None:
    from forewarn.outreach.gate import ApprovalError
    from forewarn.outreach.lifecycle import Lifecycle

    who = actor_of(actor)
    try:
        eta = parse_eta(eta_text, datetime.now(UTC)) if eta_text else None
        lifecycle = Lifecycle(outreach_parts(config).outreach())
        if action == "resolve":
            report = lifecycle.resolve(incident_id, who, note)
        else:
            report = getattr(lifecycle, action)(incident_id, who, note, eta)
    except (ApprovalError, ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    queued = sum(report.enqueued_by_channel.values())
    console.print(f"{incident_id}: {action} by {who}; {queued} messages queued"
                  + (f" ({report.held})" if report.held else ""))


def parse_eta(text: str, now: datetime) -> datetime:
    """A duration from `now` or an aware ISO time.

    >>> from datetime import UTC
    >>> now = datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> parse_eta("2h", now).isoformat(), parse_eta("2026-11-20T18:00Z", now).isoformat()
    ('2026-11-20T16:00:00+00:00', '2026-11-20T18:00:00+00:00')
    """
    from forewarn.durations import parse_duration

    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--eta {text!r} is neither a duration (2h) nor a time (2026-11-20T18:00Z)") from None
    if at.tzinfo is None:
        raise ValueError(f"--eta {text!r} has no time zone: add one, e.g. {text}Z or {text}-06:00")
    return at.astimezone(UTC)
