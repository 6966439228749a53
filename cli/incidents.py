"""`forewarn incidents`: the decision layer's recent verdicts, and what waits for an operator's approval."""

from __future__ import annotations

import shlex
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from forewarn.cli.common import ConfigOption, _default_config, _fail, _settings, app, console
from forewarn.decisions import Decision
from forewarn.settings import ConfigError

APPROVAL_STYLE = {"pending": "bold black on yellow", "approved": "green", "held": "red", "not_needed": "dim"}
"""A pending approval is what an operator opens this list for: it stands out."""


@app.command()
def incidents(
    config: ConfigOption = None,
    redis_url: Annotated[str | None, typer.Option(help="Overrides redis.url / FOREWARN_REDIS_URL.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many decisions, newest first.")] = 50,
    pending: Annotated[bool, typer.Option("--pending", help="Only open incidents waiting for approval.")] = False,
    why: Annotated[bool, typer.Option("--why", help="Also print each decision's severity and reach reasons.")] = False,
) -> None:
    """The newest decisions: severity, reach, tier, approval, audience, what muted them; how to approve the pending."""
    from forewarn.connectors.redis_decisions import RedisDecisionStore
    from forewarn.flows.offline import redis_connection

    settings = _settings(config or _default_config())
    try:
        client, prefix = redis_connection(settings, redis_url)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    store = RedisDecisionStore(client, prefix)
    if pending:
        # From the open set, not from the newest `limit`: a pending incident must show however old it is.
        decisions = [d for d in store.open_decisions() if d.approval == "pending"][:limit]
    else:
        decisions = store.recent(limit)
    if not decisions:
        console.print("no decision waits for approval" if pending else "no decisions (they are kept 30 days)")
        return
    console.print(decision_table(decisions))
    if why:
        _print_reasons(decisions)
    _print_approve_hints(decisions, config)


def decision_table(decisions: list[Decision]) -> Table:
    """One row per decision, in the order given.

    Parameters
    ----------
    decisions
        What to list, e.g. `DecisionStore.recent()`.
    """
    table = Table(title="Decisions, newest first")
    table.add_column("incident", no_wrap=True)
    for name in ("topic @ region", "severity", "reach", "tier", "approval"):
        table.add_column(name)
    table.add_column("audience", justify="right")
    for name in ("muted", "state", "decided at (UTC)"):
        table.add_column(name)
    for d in decisions:
        approval = Text(d.approval, style=APPROVAL_STYLE.get(d.approval, ""))
        table.add_row(escape(d.incident_id), escape(f"{d.topic} @ {d.region}"), d.severity, d.reach, d.tier,
                      approval, f"{d.audience:,}", escape(d.muted or ""), "open" if d.open else "resolved",
                      d.decided_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))
    return table


def _print_reasons(decisions: list[Decision]) -> None:
    console.print("\n[bold]Why[/bold]")
    for d in decisions:
        console.print(d.incident_id, soft_wrap=True, markup=False, highlight=False)
        console.print(f"  severity {d.severity}: {escape('; '.join(d.severity_reasons) or '(no reason given)')}",
                      soft_wrap=True)
        console.print(f"  reach {d.reach}: {escape('; '.join(d.reach_reasons) or '(no reason given)')}",
                      soft_wrap=True)


def _print_approve_hints(decisions: list[Decision], config: Path | None) -> None:
    """The command that approves each open, pending decision; -c names the config given, else a placeholder."""
    waiting = [d for d in decisions if d.approval == "pending" and d.open]
    if not waiting:
        return
    config_arg = shlex.quote(str(config)) if config is not None else "CONFIG"
    console.print(f"\n[bold]{len(waiting)} waiting for approval[/bold]; to approve:")
    for d in waiting:
        # soft_wrap: a long id or config path stays on one line, so the command can be copied whole.
        console.print(f"  forewarn approve {shlex.quote(d.incident_id)} -c {config_arg}", soft_wrap=True,
                      markup=False, highlight=False)
