"""`forewarn silence add/list/expire`: an operator's "not now" for incidents matching some labels.

A silenced incident is still detected, decided and listed (`forewarn incidents` names the silence);
only its messages to customers are held back. Silences live in Redis (`connectors.redis_silences`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from forewarn.cli.common import ConfigOption, _default_config, _fail, _settings, actor_of, app, console, err
from forewarn.decisions import Silence
from forewarn.durations import format_duration, parse_duration
from forewarn.outreach.silencing import EXAMPLE, LABELS, parse_matchers
from forewarn.settings import ConfigError, Settings

if TYPE_CHECKING:  # redis loads only when a command runs, so `forewarn --help` stays quick
    from forewarn.connectors.redis_silences import RedisSilenceStore

silence_app = typer.Typer(no_args_is_help=True, help="Silence incidents matching labels: no customer is messaged.")
app.add_typer(silence_app, name="silence")

RedisUrlOption = Annotated[str | None, typer.Option(help="Overrides redis.url / FOREWARN_REDIS_URL.")]
STATE_STYLE = {"active": "bold green", "pending": "yellow", "expired": "dim"}


@silence_app.command("add")
def add(
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 4h, 2d.", show_default=False)],
    reason: Annotated[str, typer.Option(help="Why, for the other operators.", show_default=False)],
    # Optional here so that none at all gets parse_matchers' message with an example, not typer's bare one.
    matchers: Annotated[list[str] | None, typer.Argument(
        metavar="NAME=VALUE...", help=f"Labels to match, all of them, e.g. {EXAMPLE}.", show_default=False)] = None,
    starts: Annotated[str | None, typer.Option(help="Start (ISO 8601 with a zone); default: now.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who adds it; default: $FOREWARN_ACTOR, else $USER.")] = None,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Silence the incidents whose labels match every name=value given, for a while."""
    settings = _settings(config or _default_config())
    now = datetime.now(UTC)
    try:
        parsed = parse_matchers(matchers or [])
        length = parse_duration(duration)
        begin = _start(starts, now)
    except ValueError as exc:
        raise _fail(escape(str(exc))) from None
    if length.total_seconds() <= 0:
        raise _fail(f"--for {escape(duration)!r} is no time at all: give how long, e.g. --for 4h")
    if begin + length <= now:
        raise _fail(f"that silence would already be over ({(begin + length).isoformat()}): check --starts and --for")
    if not reason.strip():
        raise _fail('--reason is empty: say why, e.g. --reason "planned maintenance"')
    who = actor_of(actor)
    silence = Silence(f"S-{uuid.uuid4().hex[:10]}", parsed, begin, begin + length, reason.strip(), who, now)
    _warn_unknown_names(parsed, settings)
    _store(settings, redis_url).add(silence)
    console.print(f"{silence.id}", markup=False, highlight=False)
    console.print(f"silences incidents matching {escape(_matchers(silence))} from {_when(silence.starts_at)} "
                  f"to {_when(silence.ends_at)} UTC ({format_duration(length)}); by {escape(who)}", soft_wrap=True)


@silence_app.command("list")
def list_(
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also the expired ones (kept 30 days).")] = False,
) -> None:
    """The silences, by start: active and pending ones (with --all, expired ones too)."""
    now = datetime.now(UTC)
    silences = [s for s in _store(_settings(config or _default_config()), redis_url).all()
                if show_all or state(s, now) != "expired"]
    if not silences:
        console.print("no silences" if show_all else "no active or pending silences (--all shows expired ones)")
        return
    table = Table(title=f"Silences at {_when(now)} UTC")
    table.add_column("id", no_wrap=True)
    for name in ("matchers", "starts (UTC)", "ends (UTC)", "state", "reason", "by"):
        table.add_column(name)
    for s in silences:
        current = state(s, now)
        table.add_row(s.id, escape(_matchers(s)), _when(s.starts_at), _when(s.ends_at),
                      Text(current, style=STATE_STYLE[current]), escape(s.reason), escape(s.created_by))
    console.print(table)


@silence_app.command("expire")
def expire(
    silence_id: Annotated[str, typer.Argument(help="The silence, e.g. S-1a2b3c4d5e (see forewarn silence list).")],
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """End a silence now: incidents matching it are messaged again from their next decision."""
    store = _store(_settings(config or _default_config()), redis_url)
    now = datetime.now(UTC)
    if store.expire(silence_id, now):
        console.print(f"silence {escape(silence_id)} ended at {_when(now)} UTC")
        return
    known = next((s for s in store.all() if s.id == silence_id), None)
    if known is None:
        raise _fail(f"no silence {escape(silence_id)}: see forewarn silence list --all")
    raise _fail(f"silence {escape(silence_id)} has already ended ({_when(known.ends_at)} UTC)")


def state(silence: Silence, at: datetime) -> str:
    """active, pending (not started yet) or expired (over, or expired before it started)."""
    if silence.ends_at <= at:
        return "expired"
    return "pending" if at < silence.starts_at else "active"


def _store(settings: Settings, redis_url: str | None) -> RedisSilenceStore:
    from forewarn.connectors.redis_silences import RedisSilenceStore
    from forewarn.flows.offline import redis_connection

    try:
        client, prefix = redis_connection(settings, redis_url)
    except ConfigError as exc:
        raise _fail(escape(str(exc))) from None
    return RedisSilenceStore(client, prefix)


def _start(text: str | None, now: datetime) -> datetime:
    if text is None:
        return now
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--starts {text!r} is not an ISO 8601 time, e.g. 2026-11-20T14:00:00Z") from None
    if at.utcoffset() is None:  # a bare time would be read in whatever zone this machine is in
        raise ValueError(f"--starts {text!r} has no time zone: add one, e.g. 2026-11-20T14:00:00Z or …-06:00")
    return at.astimezone(UTC)


def _warn_unknown_names(matchers: tuple[tuple[str, str], ...], settings: Settings) -> None:
    """A name that is neither a label nor a configured trait is kept (a later config may add the trait),
    but it is most likely a typo, and a silence that never matches fails quietly: say so."""
    known = {*LABELS, *settings.targeting.extra_traits}
    for name in sorted({n for n, _ in matchers} - known):
        err.print(f"[yellow]note:[/yellow] '{escape(name)}' is neither a built-in label ({', '.join(LABELS)}) nor "
                  "a configured trait (targeting.extra_traits): only incidents carrying it will match")


def _matchers(silence: Silence) -> str:
    return " ".join(f"{name}={value}" for name, value in silence.matchers)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")

