"""`forewarn run`: the long-lived flow on Kafka, Redis, Twilio and SMTP, with recovery.

Also the entry point for Bytewax's own runner (to scale out with `-w/-i/-a`):
`python -m bytewax.run "forewarn.flows.live:get_flow('config/production.yaml')" -w 2`.
"""

from __future__ import annotations

from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main

from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import production_io
from forewarn.settings import ConfigError, Settings, load_settings


def get_flow(config: str) -> Dataflow:
    """Entry point for `python -m bytewax.run "forewarn.flows.live:get_flow('config.yaml')"`: the production
    flow, its edges checked first (recovery is then the runner's `-r/-s/-b` options)."""
    settings = load_settings(Path(config))
    return build_flow(settings, production_io(settings))


def run_live(settings: Settings, workers: int = 1, *, checked: bool = False) -> None:
    """Check every edge (unless `checked`: the caller ran `flows.startup.preflight`), then run until
    stopped; recovery resumes from the last snapshot.

    Recovery must be initialised once with `python -m bytewax.recovery DIR N`, N at
    least the most workers you will ever run.
    """
    io = production_io(settings, checked=checked)
    flow = build_flow(settings, io)
    recovery = None
    epoch = None
    if settings.recovery is not None:
        directory = settings.recovery.directory
        if not directory.is_dir() or not any(directory.glob("part-*.sqlite3")):
            raise ConfigError(f"recovery.directory {directory} is not initialised: run "
                              f"`python -m bytewax.recovery {directory} {max(workers, 1)}` once")
        recovery = RecoveryConfig(str(directory), settings.recovery.backup_interval)
        epoch = settings.recovery.snapshot_interval
    cli_main(flow, workers_per_process=workers, epoch_interval=epoch, recovery_config=recovery)
