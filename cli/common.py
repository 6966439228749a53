"""What every command module shares: the typer app, the consoles, settings loading and failing with a message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from forewarn.settings import ConfigError, Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Forewarn: see a spike coming, warn the customers who have not called yet.")
customers_app = typer.Typer(no_args_is_help=True, help="Manage the Redis customer index.")
app.add_typer(customers_app, name="customers")
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("-c", "--config", help="YAML configuration file.")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


ActorOption = Annotated[str | None, typer.Option(
    help="Who acts, for the audit trail (default: $FOREWARN_ACTOR, else $USER).")]


def actor_of(given: str | None) -> str:
    """The operator named by --actor, else by the environment; refused when nobody is named."""
    import os

    actor = (given or os.environ.get("FOREWARN_ACTOR") or os.environ.get("USER") or "").strip()
    if not actor:
        raise _fail("nobody to record as the actor: pass --actor NAME (or set FOREWARN_ACTOR)")
    return actor


def _default_config() -> Path | None:
    """The bundled default config, which commands read when no -c is given."""
    from forewarn.settings import BUNDLED_CONFIG

    path = BUNDLED_CONFIG / "default.yaml"
    return path if path.is_file() else None
