"""`forewarn silence add/list/expire` through the real command, against a real Redis."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.connectors.redis_silences import RedisSilenceStore

pytestmark = pytest.mark.integration

ANA = {"FOREWARN_ACTOR": "ana", "FOREWARN_REDIS_URL": None}
"""The actor, and no Redis URL from the environment: the config file's Redis is the one under test."""


@pytest.fixture
def config(redis_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"redis: {{url: \"{redis_url}\"}}\n")
    return path


def silence(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["silence", *args], env=ANA if env is None else env)
    return result.exit_code, result.output


def row(output: str, silence_id: str) -> str:
    """The table line of one silence."""
    (line,) = [line for line in output.splitlines() if silence_id in line]
    return line


def test_add_list_expire_round_trip(config: Path, redis_url: str) -> None:
    code, out = silence("add", "topic=wifi_drops", "region=TX-453", "--for", "4h", "--reason", "planned maintenance",
                        "-c", str(config))
    assert code == 0, out
    found = re.search(r"\bS-[0-9a-f]{10}\b", out)
    assert found, out
    sid = found.group()
    assert "topic=wifi_drops region=TX-453" in out and "(4h)" in out and "by ana" in out

    stored = RedisSilenceStore(redis.Redis.from_url(redis_url)).all()
    assert [(s.id, s.matchers, s.reason, s.created_by) for s in stored] == [
        (sid, (("topic", "wifi_drops"), ("region", "TX-453")), "planned maintenance", "ana")]
    assert stored[0].ends_at - stored[0].starts_at == timedelta(hours=4)
    assert stored[0].starts_at.tzinfo is not None

    code, listed = silence("list", "-c", str(config))
    assert code == 0, listed
    line = row(listed, sid)
    assert "active" in line and "topic=wifi_drops region=TX-453" in line and "ana" in line
    assert "planned maintenance" in listed

    code, out = silence("expire", sid, "-c", str(config))
    assert code == 0, out
    assert f"silence {sid} ended" in out

    code, listed = silence("list", "-c", str(config))
    assert code == 0, listed
    assert sid not in listed and "no active or pending silences" in listed

    code, listed = silence("list", "--all", "-c", str(config))
    assert code == 0, listed
    assert "expired" in row(listed, sid)


def test_a_future_start_is_pending_and_given_with_redis_url(config: Path, redis_url: str) -> None:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    code, out = silence("add", "model=R7000,firmware=2.1.7", "--for", "1h30m", "--reason", "firmware rollout",
                        "--starts", start.isoformat(), "--actor", "bo", "--redis-url", redis_url)
    assert code == 0, out
    sid = re.search(r"\bS-[0-9a-f]{10}\b", out).group()  # type: ignore[union-attr]
    (stored,) = RedisSilenceStore(redis.Redis.from_url(redis_url)).all()
    assert (stored.starts_at, stored.ends_at, stored.created_by) == (start, start + timedelta(minutes=90), "bo")

    code, listed = silence("list", "-c", str(config))
    assert code == 0, listed
    line = row(listed, sid)
    assert "pending" in line and "model=R7000 firmware=2.1.7" in line and "bo" in line


def test_expire_of_an_unknown_or_ended_silence_fails_clearly(config: Path) -> None:
    code, out = silence("expire", "S-0000000000", "-c", str(config))
    assert code == 1 and "no silence S-0000000000" in out and "silence list --all" in out

    _, added = silence("add", "topic=wifi_drops", "--for", "1h", "--reason", "r", "-c", str(config))
    sid = re.search(r"\bS-[0-9a-f]{10}\b", added).group()  # type: ignore[union-attr]
    assert silence("expire", sid, "-c", str(config))[0] == 0
    code, out = silence("expire", sid, "-c", str(config))
    assert code == 1 and f"silence {sid} has already ended" in out


@pytest.mark.parametrize(("matchers", "problem"), [
    (["wifi_drops"], "'wifi_drops' is not name=value"),
    (["topic=wifi_drops", "topic=no_internet"], "'topic' is given twice"),
    (["Region=TX-453"], "'Region' is not a label name"),
    ([], "no matcher given"),
])
def test_a_bad_matcher_is_refused_with_an_example(config: Path, redis_url: str, matchers: list[str],
                                                  problem: str) -> None:
    code, out = silence("add", *matchers, "--for", "4h", "--reason", "r", "-c", str(config))
    assert code != 0
    flat = " ".join(out.split())  # the error may wrap at the console's width
    assert problem in flat and "for example: topic=wifi_drops region=TX-453" in flat
    assert RedisSilenceStore(redis.Redis.from_url(redis_url)).all() == []


def test_without_an_actor_the_silence_is_refused(config: Path, redis_url: str) -> None:
    nobody: dict[str, str | None] = {"FOREWARN_ACTOR": None, "USER": None, "FOREWARN_REDIS_URL": None}
    code, out = silence("add", "topic=wifi_drops", "--for", "4h", "--reason", "r", "-c", str(config), env=nobody)
    assert code != 0 and "pass --actor" in out
    assert RedisSilenceStore(redis.Redis.from_url(redis_url)).all() == []

    code, out = silence("add", "topic=wifi_drops", "--for", "4h", "--reason", "r", "-c", str(config),
                        env={**nobody, "USER": "carla"})
    assert code == 0 and "by carla" in out, out


@pytest.mark.parametrize(("options", "problem"), [
    (["--for", "soon", "--reason", "r"], "duration 'soon' is not understood"),
    (["--for", "0s", "--reason", "r"], "is no time at all"),
    (["--for", "4h", "--reason", "  "], "--reason is empty"),
    (["--for", "4h", "--reason", "r", "--starts", "2026-11-20T14:00"], "has no time zone"),
    (["--for", "4h", "--reason", "r", "--starts", "yesterday"], "is not an ISO 8601 time"),
    (["--for", "1h", "--reason", "r", "--starts", "2020-01-01T00:00:00Z"], "would already be over"),
])
def test_bad_times_and_reasons_are_refused(config: Path, redis_url: str, options: list[str], problem: str) -> None:
    code, out = silence("add", "topic=wifi_drops", *options, "-c", str(config))
    assert code != 0 and problem in " ".join(out.split()), out
    assert RedisSilenceStore(redis.Redis.from_url(redis_url)).all() == []


def test_an_unknown_label_name_is_kept_with_a_note(config: Path) -> None:
    code, out = silence("add", "regoin=TX-453", "--for", "1h", "--reason", "r", "-c", str(config))
    assert code == 0, out
    assert "'regoin' is neither a built-in label" in " ".join(out.split())


def test_without_redis_the_command_says_how_to_configure_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    code, out = silence("list", "-c", str(empty))
    assert code == 1 and "no Redis configured" in out
