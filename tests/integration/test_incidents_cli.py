"""`forewarn incidents` against a real Redis: the table, `--pending` with the approve command, `--why`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.connectors.redis_decisions import RedisDecisionStore
from forewarn.decisions import Decision

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)


@pytest.fixture
def config(redis_url: str, tmp_path: Path) -> Path:
    """A config naming the test's Redis, holding three decisions: one pending, one muted and resolved, one plain."""
    store = RedisDecisionStore(redis.Redis.from_url(redis_url))
    store.save(Decision("INC-outage", "no_internet", "TX-453", "critical", ("90x the expected count",), "widespread",
                        ("12,400 customers in 14 regions",), "broadcast", "pending", T0 + timedelta(minutes=2),
                        audience=12_400))
    store.save(Decision("INC-wifi", "wifi_drops", "TX-453", "moderate", ("6x the expected count",), "local",
                        ("310 customers in 1 region",), "notify", "not_needed", T0 + timedelta(minutes=1),
                        audience=310, inhibited_by="INC-outage", open=False))
    store.save(Decision("INC-billing", "billing", "NY-081", "low", ("2x the expected count",), "few",
                        ("12 customers in 1 region",), "observe", "not_needed", T0, audience=12))
    path = tmp_path / "config.yaml"
    path.write_text(f'redis: {{url: "{redis_url}"}}\n')
    return path


def rows(output: str) -> dict[str, str]:
    """The table's rows by incident id (the first cell of each)."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^\W*(INC-\w+)\b.*$", output, re.MULTILINE)}


def test_the_table_lists_every_decision_newest_first(config: Path) -> None:
    result = CliRunner().invoke(app, ["incidents", "-c", str(config)])
    assert result.exit_code == 0, result.output
    table = rows(result.output.split("waiting for approval")[0])
    assert list(table) == ["INC-outage", "INC-wifi", "INC-billing"]
    outage, wifi, billing = table.values()
    for cell in ("no_internet @ TX-453", "critical", "widespread", "broadcast", "pending", "12,400", "open",
                 "2026-11-20 14:02:00"):
        assert cell in outage, cell
    for cell in ("wifi_drops @ TX-453", "moderate", "local", "notify", "not_needed", "inhibited by INC-outage",
                 "resolved"):
        assert cell in wifi, cell
    assert "observe" in billing and "few" in billing and "open" in billing
    assert "pending" not in wifi + billing
    assert f"forewarn approve INC-outage -c {config}" in result.output
    assert "forewarn approve INC-wifi" not in result.output and "forewarn approve INC-billing" not in result.output
    assert "90x the expected count" not in result.output, "reasons only with --why"


def test_limit_keeps_the_newest(config: Path) -> None:
    result = CliRunner().invoke(app, ["incidents", "-c", str(config), "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert list(rows(result.output.split("waiting for approval")[0])) == ["INC-outage", "INC-wifi"]


def test_pending_shows_only_the_open_pending_one_and_how_to_approve_it(config: Path, redis_url: str) -> None:
    store = RedisDecisionStore(redis.Redis.from_url(redis_url))
    store.save(Decision("INC-closed", "no_internet", "CA-001", "high", (), "regional", (), "broadcast", "pending",
                        T0 + timedelta(minutes=3), open=False))  # resolved before anyone approved it
    result = CliRunner().invoke(app, ["incidents", "--pending", "-c", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    hint = lines.index(next(line for line in lines if "waiting for approval" in line))
    assert list(rows("\n".join(lines[:hint]))) == ["INC-outage"]
    assert [line.strip() for line in lines[hint + 1:] if line.strip()] == [
        f"forewarn approve INC-outage -c {config}"]


def test_pending_says_so_when_nothing_waits(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f'redis: {{url: "{redis_url}"}}\n')
    RedisDecisionStore(redis.Redis.from_url(redis_url)).save(
        Decision("INC-1", "billing", "NY-081", "low", (), "few", (), "observe", "not_needed", T0))
    result = CliRunner().invoke(app, ["incidents", "--pending", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "no decision waits for approval" in result.output and "INC-1" not in result.output


def test_why_prints_each_decisions_reasons(config: Path) -> None:
    result = CliRunner().invoke(app, ["incidents", "--why", "-c", str(config)])
    assert result.exit_code == 0, result.output
    why = result.output.split("Why", 1)[1]
    assert "severity critical: 90x the expected count" in why
    assert "reach widespread: 12,400 customers in 14 regions" in why
    assert "severity moderate: 6x the expected count" in why and "reach few: 12 customers in 1 region" in why


def test_a_redis_that_is_down_is_a_clear_error(tmp_path: Path) -> None:
    from tests.servers.ports import free_port

    path = tmp_path / "config.yaml"
    path.write_text(f'redis: {{url: "redis://127.0.0.1:{free_port()}/0"}}\n')
    result = CliRunner().invoke(app, ["incidents", "-c", str(path)])
    assert result.exit_code == 1
    assert "error" in result.output.lower() and "Traceback" not in result.output
