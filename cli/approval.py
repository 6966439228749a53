"""`forewarn approve` and `forewarn hold`: the operator's word on an incident that waits for approval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forewarn.cli.common import ActorOption, ConfigOption, _fail, _settings, actor_of, app, console
from forewarn.settings import ConfigError

if TYPE_CHECKING:
    from forewarn.flows.wiring import RedisParts

IncidentArgument = Annotated[str, typer.Argument(help="The incident id, as `forewarn incidents` lists it.")]
NoteOption = Annotated[str, typer.Option(help="Why, for the audit trail.")]


@app.command()
def approve(incident_id: IncidentArgument, config: ConfigOption = None, actor: ActorOption = None,
            note: NoteOption = "") -> None:
    """Approve an incident's one-to-one messages: its audience as it stands now is warned (through the outbox)."""
    from forewarn.outreach.gate import ApprovalError

    who = actor_of(actor)
    try:
        report = outreach_parts(config).outreach().approve(incident_id, who, note)
    except (ApprovalError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    if report.held:
        console.print(f"{incident_id} approved by {who}, but nobody was warned: {report.held}")
        return
    queued = sum(report.enqueued_by_channel.values())
    channels = ", ".join(f"{c} {n}" for c, n in sorted(report.enqueued_by_channel.items())) or "none"
    console.print(f"{incident_id} approved by {who}: {queued} messages queued ({channels}); "
                  f"{report.outcomes.get('duplicate', 0)} customers had been warned already")


@app.command()
def hold(incident_id: IncidentArgument, config: ConfigOption = None, actor: ActorOption = None,
         note: NoteOption = "") -> None:
    """Hold an incident: nobody is messaged about it until it is approved."""
    from forewarn.outreach.gate import ApprovalError

    who = actor_of(actor)
    try:
        outreach_parts(config).outreach().hold(incident_id, who, note)
    except (ApprovalError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"{incident_id} held by {who}: nobody is messaged until `forewarn approve {incident_id}`")


def outreach_parts(config: Path | None) -> RedisParts:
    from forewarn.flows.wiring import RedisParts
    from forewarn.settings import Secrets

    settings = _settings(config)
    if settings.redis is None and Secrets().forewarn_redis_url is None:
        raise _fail("approvals live in Redis: add a redis section to the config (-c) or set FOREWARN_REDIS_URL")
    return RedisParts(settings, Secrets())
