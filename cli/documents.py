"""`forewarn incident texts`: the knowledge-base article and the call-centre script of a published incident."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from forewarn.cli.approval import IncidentArgument
from forewarn.cli.common import ConfigOption, _default_config, _fail, _settings, console, err
from forewarn.cli.lifecycle import incident_app
from forewarn.settings import ConfigError

OutOption = Annotated[Path | None, typer.Option(
    "--out", help="Write INC.article.md and INC.script.txt into this folder instead of printing them.")]


@incident_app.command()
def texts(incident_id: IncidentArgument, config: ConfigOption = None, out: OutOption = None) -> None:
    """The incident's knowledge-base article (Markdown) and call-centre script, for the publish and broadcast tiers."""
    from forewarn.connectors.redis_decisions import RedisDecisionStore
    from forewarn.connectors.redis_incidents import RedisIncidentStore
    from forewarn.connectors.templates import JinjaRenderer
    from forewarn.flows.offline import redis_connection
    from forewarn.outreach.documents import document_files, documents_for
    from forewarn.outreach.status_feed import STATUS_TIERS, published

    settings = _settings(config or _default_config())
    try:
        client, prefix = redis_connection(settings, None)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    shown = escape(incident_id)
    decision = RedisDecisionStore(client, prefix).load(incident_id)
    if decision is None:
        raise _fail(f"no decision for {shown} (decisions are kept 30 days; `forewarn incidents` lists them)")
    if decision.tier not in STATUS_TIERS:
        raise _fail(f"{shown} is a {decision.tier} incident: only publish and broadcast incidents have documents")
    labels = settings.outreach.topic_labels
    if decision.topic not in labels:
        raise _fail(f"the topic {escape(repr(decision.topic))} of {shown} has no label: add one to "
                    "outreach.topic_labels (an unlabelled topic gets no documents)")
    incident = RedisIncidentStore(client, prefix).load(incident_id)
    if incident is None:
        raise _fail(f"no incident {shown} in the incident store (incidents are kept 30 days)")
    now = datetime.now(UTC)
    try:
        documents = documents_for(decision, incident, JinjaRenderer(settings.outreach.templates), labels, now)
    except ValueError as exc:  # a templates folder without the documents' templates
        raise _fail(str(exc)) from None
    assert documents is not None  # tier and label were checked above
    if not published(decision, labels, now):
        why = decision.muted or (f"its approval is {decision.approval}" if decision.approval in ("pending", "held")
                                 else "it was resolved more than a day ago")
        err.print(f"[yellow]note:[/yellow] the status feed does not show {shown} ({escape(why)})")
    names = document_files(incident_id)
    if out is None:
        for name, text in documents.items():
            typer.echo(f"==> {names[name]} <==\n{text}")  # plain echo: the Markdown's backslashes are not markup
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in documents.items():
            (out / names[name]).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write to {escape(str(out))}: {escape(str(exc))}") from None
    console.print(f"{shown}: wrote " + ", ".join(escape(str(out / names[n])) for n in documents))
