"""`forewarn run`: the long-lived flow on Kafka, Redis, Twilio and SMTP, with recovery.

`forewarn run -c CONFIG [-w N] [-p N | -i I -a ADDRS]` runs one process of the cluster here (see
`flows.cluster`). Bytewax's own runner serves too:
`python -m bytewax.run "forewarn.flows.live:get_flow('config/production.yaml')" -w 2` (recovery is then
its `-r/-s/-b` options, and the directory must be initialised with `python -m bytewax.recovery`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.run import cli_main

from forewarn.flows.cluster import Cluster, explain_recovery_failure, prepare_recovery, recovery_config
from forewarn.flows.early_warning import build_flow
from forewarn.flows.observability import instrument, start_observability
from forewarn.flows.wiring import production_io
from forewarn.settings import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)


def get_flow(config: str) -> Dataflow:
    """Entry point for `python -m bytewax.run "forewarn.flows.live:get_flow('config.yaml')"`: the production
    flow, its edges checked first (recovery is then the runner's `-r/-s/-b` options)."""
    settings = load_settings(Path(config))
    io = production_io(settings)
    try:
        observability = start_observability(settings, checked=True)
    except ConfigError as exc:
        # Bytewax's runner gives a process no id here: with -p, the second process finds the port taken.
        log.warning("%s; this process serves no metrics endpoint (forewarn run -p gives each process its own "
                    "port)", exc)
        quiet = settings.observability.model_copy(update={"metrics_port": None})
        observability = start_observability(settings.model_copy(update={"observability": quiet}), checked=True)
    return build_flow(settings, instrument(io, observability.metrics))


def run_live(settings: Settings, cluster: Cluster | None = None, *, checked: bool = False) -> None:
    """Run this process's share of the cluster until stopped (or, with `kafka.tail: false`, until the
    topics' end); recovery resumes from the last snapshot.

    Every edge is checked first unless `checked` (the caller ran `flows.startup.preflight`); the
    recovery directory is initialised when missing, and refused when this cluster cannot use it
    (`flows.cluster.prepare_recovery`).
    """
    cluster = cluster or Cluster()
    if cluster.spawns:
        raise ValueError("run_live runs one process; `forewarn run -p N` launches them (flows.cluster.supervise)")
    io = production_io(settings, checked=checked)
    if settings.recovery is not None:
        prepare_recovery(settings.recovery, cluster)
    observability = start_observability(settings, process_id=cluster.process_id or 0, checked=True)
    flow = build_flow(settings, instrument(io, observability.metrics))
    recovery, epoch = recovery_config(settings.recovery)
    clustered = cluster.process_id is not None
    try:
        cli_main(flow, workers_per_process=cluster.workers_per_process,
                 process_id=cluster.process_id if clustered else None,
                 addresses=list(cluster.addresses) if clustered else None,
                 epoch_interval=epoch, recovery_config=recovery)
    except Exception as exc:
        explained = explain_recovery_failure(exc, settings.recovery)
        if explained is None:
            raise
        raise ConfigError(explained) from None
    finally:
        observability.stop()
