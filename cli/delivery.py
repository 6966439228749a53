"""The delivery commands: `forewarn deliver` (a worker), `forewarn web` (webhooks), `forewarn message` (a history)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forewarn.cli.common import _fail, _settings, app, console
from forewarn.envelopes import FUNNEL
from forewarn.settings import ConfigError, Settings

if TYPE_CHECKING:
    from forewarn.connectors.observability import ObservabilityServer
    from forewarn.delivery_metrics import DeliveryMetrics

ConfigRequired = Annotated[Path, typer.Option("-c", "--config", help="YAML configuration file.")]


@app.command()
def deliver(config: ConfigRequired) -> None:
    """A delivery worker: drains the Redis outbox to Twilio and SMTP until stopped; run as many as you like.

    Each worker paces every sender identity at its configured rate (shared through Redis), retries with
    backoff inside each message's deadline, pauses a failing provider (circuit breaker), reclaims what a
    crashed worker left, and looks a message up in Twilio's log before sending it again.
    """
    from forewarn.flows.delivery_parts import production_responder_worker, production_worker
    from forewarn.flows.startup import preflight
    from forewarn.settings import Secrets

    settings = _settings(config)
    secrets = Secrets()
    try:
        preflight(settings, secrets, flow=False)
        metrics, server = _metrics_endpoint(settings)
        worker = production_worker(settings, secrets, metrics)
        responders = production_responder_worker(settings, secrets)
    except (ConfigError, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    signal.signal(signal.SIGTERM, lambda *_: worker.stop(timeout=0))
    console.print(f"delivering as {worker.consumer}; channels {', '.join(worker.channels)}"
                  + (f"; responders {', '.join(responders.senders)}" if responders is not None else "")
                  + (f"; metrics at {server.url}/metrics" if server is not None else ""))
    if responders is not None:
        responders.start()
    try:
        worker.run()
    except KeyboardInterrupt:
        worker.stop()
    finally:
        if responders is not None:
            responders.stop()
        if server is not None:
            server.stop()


def _metrics_endpoint(settings: Settings) -> tuple[DeliveryMetrics, ObservabilityServer | None]:
    """The worker's metrics on the process registry, served at observability.metrics_port when set."""
    from prometheus_client import REGISTRY

    from forewarn.connectors.observability import ObservabilityServer, observability_app
    from forewarn.delivery_metrics import DeliveryMetrics

    metrics = DeliveryMetrics(REGISTRY)
    o = settings.observability
    if o.metrics_port is None:
        return metrics, None
    app = observability_app(REGISTRY, lambda: None)
    return metrics, ObservabilityServer(app, o.host, o.metrics_port).start()


@app.command()
def web(config: ConfigRequired) -> None:
    """The web app: Twilio status callbacks and inbound STOP/START/HELP, email unsubscribe links, and the public
    status feed (/status.json, /status.atom) from the Redis decision store."""
    from forewarn.settings import Secrets
    from forewarn.web.app import build_web_app, run_web

    settings = _settings(config)
    try:
        run_web(build_web_app(settings, Secrets()), settings.web.host, settings.web.port)
    except (ConfigError, RuntimeError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def message(
    config: ConfigRequired,
    incident_id: Annotated[str, typer.Argument(help="The incident, e.g. INC-no_internet-TX-453-...")],
    customer_id: Annotated[str | None, typer.Argument(help="The customer; without it, the incident's funnel.")] = None,
) -> None:
    """Every state the incident's messages to one customer went through, oldest first (no address, no body);
    without a customer, how many of the incident's messages reached each stage."""
    from forewarn.connectors.redis_outbox import RedisOutbox
    from forewarn.flows.offline import redis_connection

    settings = _settings(config)
    try:
        client, prefix = redis_connection(settings, None)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    outbox = RedisOutbox(client, prefix, settings.delivery.shards)
    if customer_id is None:
        _print_funnel(incident_id, outbox.funnel(incident_id))
        return
    history = outbox.history(incident_id, customer_id)
    if not history:
        raise _fail(f"no message of {incident_id} to {customer_id} in the outbox (kept 30 days)")
    for mid, events in history.items():
        state = outbox.state(mid)
        console.print(f"[bold]{mid}[/bold]  now: {state.get('state', '?')}  attempts: {state.get('attempts', 0)}"
                      + (f"  provider id: {state['provider_id']}" if state.get("provider_id") else ""))
        for event in events:
            detail = f"  {event['detail']}" if event.get("detail") else ""
            console.print(f"  {event['at'].isoformat(timespec='milliseconds')}  {event['state']}{detail}")


def _print_funnel(incident_id: str, funnel: dict[str, int]) -> None:
    if not funnel:
        raise _fail(f"no message of {incident_id} in the outbox (kept 30 days)")
    console.print(f"[bold]{incident_id}[/bold]: the funnel of its messages")
    for stage in FUNNEL:
        console.print(f"  {stage:<12} {funnel.get(stage, 0):>8}")
