"""The `forewarn` command line: typer commands over the flows and the operator verbs."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forewarn.durations import parse_duration
from forewarn.logs import configure_logging
from forewarn.settings import ConfigError, Settings

if TYPE_CHECKING:
    from forewarn.flows.cluster import Cluster
    from forewarn.flows.deliver import DeliveryWorker
    from forewarn.flows.responder_worker import ResponderWorker

from forewarn.cli.common import ConfigOption, _default_config, _fail, _settings, app, console, customers_app, err


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log at INFO level.")] = False) -> None:
    # Text or JSON (observability.log_format, FOREWARN_LOG_FORMAT), every line redacted; the Twilio client,
    # which logs the account SID in every request URL at INFO, held at WARNING.
    configure_logging(logging.INFO if verbose else logging.WARNING)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the scenario, outboxes and report.")] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Scenario seed.")] = 7,
    customers: Annotated[int, typer.Option(help="Customers in the scenario.")] = 20_000,
    config: ConfigOption = None,
) -> None:
    """Replay the bundled, seeded scenario through the full flow; nothing leaves the machine."""
    from forewarn.flows.demo import run_demo

    settings = _settings(config or _default_config())
    started = time.perf_counter()
    summary = run_demo(settings, out, seed=seed, customers=customers)
    summary.print(console)
    console.print(f"\nwall time {time.perf_counter() - started:.1f}s; outputs in {out}/ "
                  f"(incidents.jsonl, outbox_*.jsonl, dead_letters.jsonl, report.html, status.json, status.atom)")


@app.command()
def run(
    config: Annotated[Path, typer.Option("-c", "--config", help="YAML configuration file.")],
    workers_per_process: Annotated[int, typer.Option(
        "-w", "--workers-per-process", "--workers", min=1,
        help="Worker threads in each process (they share the GIL: scale with processes).")] = 1,
    processes: Annotated[int | None, typer.Option(
        "-p", "--processes", min=1,
        help="Start this many processes on this machine, each with its process id (as bytewax's -p).")] = None,
    process_id: Annotated[int | None, typer.Option(
        "-i", "--process-id", min=0,
        help="This process's id in a cluster with one process per host: its line in -a (0 for the first).")] = None,
    addresses: Annotated[str | None, typer.Option(
        "-a", "--addresses", metavar="ADDRS",
        help="With -i: a file of host:port lines, one per process, the same on every host "
             "(or host:port;host:port as bytewax.run takes it).")] = None,
    deliver: Annotated[bool, typer.Option(
        "--deliver", help="Also run one delivery worker in this process (single machine); otherwise run "
                          "`forewarn deliver` beside the flow. The flow itself never waits on a provider.")] = False,
) -> None:
    """Run the long-lived flow on Kafka, Redis, Twilio and SMTP, on one or many processes, with recovery per config.

    One process: -c CONFIG [-w N]. Several processes on this machine: -p N.

    One process per host: -i I -a ADDRS on each host, with the same ADDRS file everywhere.

    A missing or empty recovery.directory is initialised for the cluster's workers.
    """
    from forewarn.flows.cluster import plan_cluster
    from forewarn.flows.startup import preflight
    from forewarn.settings import Secrets

    try:
        cluster = plan_cluster(workers_per_process, processes, process_id, addresses)
    except ConfigError as exc:
        err.print(f"[red]usage error:[/red] {exc}")
        raise typer.Exit(2) from None
    settings = _settings(config)
    if cluster.spawns:
        _launch(config, settings, cluster)
    try:
        # Before the flow's modules load (seconds of imports): a broken edge is reported at once.
        preflight(settings, Secrets(), senders=deliver)
    except (ConfigError, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    from forewarn.flows.live import run_live

    worker = responders = None
    try:
        if deliver:
            worker, responders = _start_workers(settings)
        run_live(settings, cluster, checked=True)
        if worker is not None:  # the flow reached the end of its input (kafka.tail: false): send what it decided
            worker.drain(timeout=settings.delivery.deadline.total_seconds())
        if responders is not None:
            responders.drain(timeout=settings.responders.deadline.total_seconds())
    except (ConfigError, RuntimeError) as exc:
        raise _fail(str(exc)) from None
    finally:
        for running in (worker, responders):
            if running is not None:
                running.stop()


def _start_workers(settings: Settings) -> tuple[DeliveryWorker, ResponderWorker | None]:
    """The delivery worker and, when responders are configured, the responder worker, as `forewarn deliver`."""
    from forewarn.flows.delivery_parts import production_responder_worker, production_worker
    from forewarn.settings import Secrets

    secrets = Secrets()
    responders = production_responder_worker(settings, secrets)
    return production_worker(settings, secrets).start(), responders.start() if responders is not None else None


def _launch(config: Path, settings: Settings, cluster: Cluster) -> None:
    """`forewarn run -p N`: the recovery directory made for the whole cluster, then N processes, each
    running its own start-up checks; the first to fail stops the others."""
    from forewarn.flows.cluster import prepare_recovery, process_commands, supervise

    try:
        settings.require_production()
        if settings.recovery is not None:
            prepare_recovery(settings.recovery, cluster)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    verbose = logging.getLogger().getEffectiveLevel() <= logging.INFO
    raise typer.Exit(supervise(process_commands(config, cluster, verbose)))


@app.command()
def detect(
    input: Annotated[list[Path], typer.Option("--input", "-i", help="JSONL of case/telemetry records.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write one spike per line.")],
    window: Annotated[str | None, typer.Option(help="Window length, e.g. 1h.")] = None,
    slide: Annotated[str | None, typer.Option(help="Slide between windows, e.g. 15m.")] = None,
    report: Annotated[Path | None, typer.Option(help="Also write an HTML backtest report here.")] = None,
    config: ConfigOption = None,
) -> None:
    """Detection only, offline: the backtest path over any JSONL of case records."""
    from forewarn.flows.offline import run_detect

    settings = _settings(config or _default_config())
    try:
        overrides = {k: parse_duration(v) for k, v in (("window", window), ("slide", slide)) if v}
        detection = settings.detection.model_validate({**settings.detection.model_dump(), **overrides})
    except ValueError as exc:
        raise _fail(str(exc)) from None
    settings = settings.model_copy(update={"detection": detection})
    try:
        counts = run_detect(settings, input, output, report)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{counts['spikes']} spikes written to {output}; {counts['dead_letters']} records "
                  f"dead-lettered to {counts['dead_letters_path']}")
    if report is not None:
        console.print(f"{counts['alarms']} alarms; report written to {report}")


@app.command()
def replay(
    config: Annotated[Path, typer.Option("-c", "--config", help="YAML configuration file.")],
    input: Annotated[list[Path], typer.Option("--input", "-i", help="JSONL of case/telemetry records.")],
    customers: Annotated[Path | None, typer.Option(help="Customers CSV/JSONL for an in-process index "
                                                         "(default: the Redis index of the config).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for results and outboxes.")] = Path("replay-out"),
) -> None:
    """The full flow over files, dry-run: messages go to outbox files, not to customers."""
    from forewarn.flows.offline import run_replay

    settings = _settings(config)
    try:
        summary = run_replay(settings, input, out, customers)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    summary.print(console)


@customers_app.command("load")
def customers_load(
    file: Annotated[Path, typer.Argument(help="Customers as CSV or JSONL.")],
    config: ConfigOption = None,
    redis_url: Annotated[str | None, typer.Option(help="Overrides redis.url / FOREWARN_REDIS_URL.")] = None,
) -> None:
    """Load or upsert the Redis customer index; rejected rows go to FILE.rejected.jsonl."""
    from forewarn.flows.offline import load_customers

    settings = _settings(config)
    try:
        loaded, rejected, seconds = load_customers(settings, file, redis_url)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"loaded {loaded} customers in {seconds:.1f}s; rejected {rejected}"
                  + (f" (see {file}.rejected.jsonl)" if rejected else ""))


@app.command()
def audience(
    segment: Annotated[str | None, typer.Argument(help="A segment such as 'model=R7000,firmware=2.1.7'.")] = None,
    polygon: Annotated[Path | None, typer.Option(help="GeoJSON polygon or CAP/NWS alert file: "
                                                      "only customers inside it.")] = None,
    topic: Annotated[str, typer.Option(help="Topic whose warning template the SMS estimate uses.")] = "default",
    customers: Annotated[Path | None, typer.Option(help="Customers CSV/JSONL for an in-process index "
                                                        "(default: the Redis index).")] = None,
    config: ConfigOption = None,
    redis_url: Annotated[str | None, typer.Option(help="Overrides redis.url / FOREWARN_REDIS_URL.")] = None,
) -> None:
    """Dry-run: who a segment or area would reach, by channel, who is left out, the SMS cost; nothing is sent."""
    from forewarn.cli.audience import audience_table
    from forewarn.flows.preview import preview_audience

    settings = _settings(config or _default_config())
    try:
        preview = preview_audience(settings, segment, redis_url, polygon, customers, topic)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    console.print(audience_table(preview))


from forewarn.cli import approval as _approval  # noqa: E402,F401  (registers approve, hold)
from forewarn.cli import delivery as _delivery  # noqa: E402,F401  (registers deliver, web, message)
from forewarn.cli import documents as _documents  # noqa: E402,F401  (registers incident texts)
from forewarn.cli import effect as _effect  # noqa: E402,F401  (registers effect)
from forewarn.cli import incidents as _incidents  # noqa: E402,F401  (registers incidents)
from forewarn.cli import lifecycle as _lifecycle  # noqa: E402,F401  (registers incident ack/update/resolve)
from forewarn.cli import silences as _silences  # noqa: E402,F401  (registers silence add/list/expire)

if __name__ == "__main__":  # pragma: no cover
    app()
