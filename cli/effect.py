"""`forewarn effect`: the calls warnings saved, from each incident's holdout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from forewarn.cli.common import ConfigOption, _default_config, _fail, _settings, app, console
from forewarn.settings import ConfigError


@app.command()
def effect(
    since: Annotated[str, typer.Option(help="How far back to look, by decision time (e.g. 30d, 12h).")] = "30d",
    config: ConfigOption = None,
) -> None:
    """The calls warnings saved: each incident's warned and held-out call rates, and all incidents pooled."""
    from forewarn.connectors.redis_decisions import RedisDecisionStore
    from forewarn.connectors.redis_incidents import RedisIncidentStore
    from forewarn.connectors.redis_outbox import RedisOutbox
    from forewarn.durations import parse_duration
    from forewarn.flows.offline import redis_connection
    from forewarn.outreach.effect import describe, measured, pooled

    settings = _settings(config or _default_config())
    try:
        window = parse_duration(since)
        client, prefix = redis_connection(settings, None)
    except (ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from None
    start = datetime.now(UTC) - window
    decisions = [d for d in RedisDecisionStore(client, prefix).recent(10_000) if d.decided_at >= start]
    effects = measured(decisions, RedisOutbox(client, prefix, settings.delivery.shards),
                       RedisIncidentStore(client, prefix))
    if not effects:
        console.print(f"no incident since {start:%Y-%m-%d %H:%M} UTC held anyone out (playbook.holdout_share)")
        return
    topics = {d.incident_id: f"{d.topic} @ {d.region}" for d in decisions}
    table = Table(title=f"Calls saved since {start:%Y-%m-%d %H:%M} UTC")
    for name in ("incident", "key", "warned (called)", "held out (called)", "fewer calls (95% CI)",
                 "contacts saved (95% CI)"):
        table.add_column(name, overflow="fold")
    for e in effects:
        low, high = e.relative_interval
        saved_low, saved_high = e.contacts_saved_interval
        table.add_row(e.incident_id or "", topics.get(e.incident_id or "", ""), f"{e.warned} ({e.warned_calls})",
                      f"{e.held_out} ({e.held_out_calls})",
                      f"{e.relative_reduction:.0%} ({max(low, -9.99):.0%} to {high:.0%})",
                      f"{e.contacts_saved:.0f} ({saved_low:.0f} to {saved_high:.0f})")
    console.print(table)
    console.print(f"all {len(effects)} incidents pooled: {describe(pooled(effects))}")
