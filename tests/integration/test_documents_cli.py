"""`forewarn incident texts` against a real Redis: a published incident's article and script, printed or
written to a folder; an incident of another tier, or unknown, refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.connectors.redis_decisions import RedisDecisionStore
from forewarn.connectors.redis_incidents import RedisIncidentStore
from forewarn.decisions import Decision, Tier
from forewarn.outreach.status_feed import public_id
from forewarn.records import Incident

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(second=0, microsecond=0)
"""Now: the command judges the ETA against the clock."""
ETA = T0 + timedelta(hours=3)
PUBLISHED = "INC-20261120T1300Z-no_internet-NY-081-ab12"
NOTIFIED = "INC-20261120T1300Z-wifi_drops-TX-453-cd34"


def save(client: redis.Redis, incident_id: str, topic: str, region: str, tier: Tier, approval: str = "not_needed",
         note: str = "") -> None:
    RedisIncidentStore(client).save(Incident(incident_id, topic, region, "opened", T0, T0 - timedelta(hours=1), T0,
                                             90, 3.0, 2, 90))
    RedisDecisionStore(client).save(Decision(
        incident_id, topic, region, "high", ("30x the expected count",), "regional", ("4,200 customers",), tier,
        approval, T0, audience=4_200, stage="identified", eta=ETA, note=note,  # type: ignore[arg-type]
        labels=(("model", "R7000"), ("region", region), ("topic", topic))))


@pytest.fixture
def config(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> Path:
    save(redis_client, PUBLISHED, "no_internet", "NY-081", "publish", note="Crews on site <b>now</b> {{ 7*7 }}")
    save(redis_client, NOTIFIED, "wifi_drops", "TX-453", "notify")
    path = tmp_path / "config.yaml"
    path.write_text(f'redis: {{url: "{redis_url}"}}\n')
    return path


def test_texts_prints_the_article_and_the_script(config: Path) -> None:
    result = CliRunner().invoke(app, ["incident", "texts", PUBLISHED, "-c", str(config)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    article, script = out.split(f"==> {PUBLISHED}.script.txt <==\n")
    assert article.startswith(f"==> {PUBLISHED}.article.md <==\n# Internet problems for R7000 in NY-081\n")
    assert f"- **Expected fix:** {ETA:%a %d %b %Y, %H:%M} UTC\n" in article
    assert f"- **Reference:** {public_id(PUBLISHED)}\n" in article
    assert r"Crews on site \<b\>now\</b\> \{\{ 7\*7 \}\}" in article, "shown as typed, never evaluated"
    assert script.startswith("CALL-CENTRE SCRIPT: Internet problems for R7000 in NY-081\n")
    assert f"Link the caller's case to incident {PUBLISHED}" in script
    assert "Crews on site <b>now</b> {{ 7*7 }}" in script
    assert "note:" not in result.stderr, "a published incident is in the status feed"


def test_texts_writes_both_files_into_the_folder(config: Path, tmp_path: Path) -> None:
    folder = tmp_path / "kb" / "drafts"
    result = CliRunner().invoke(app, ["incident", "texts", PUBLISHED, "-c", str(config), "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [f"{PUBLISHED}.article.md", f"{PUBLISHED}.script.txt"]
    assert (folder / f"{PUBLISHED}.article.md").read_text().startswith("# Internet problems for R7000 in NY-081\n")
    assert f"incident {PUBLISHED}" in (folder / f"{PUBLISHED}.script.txt").read_text()
    assert "wrote" in result.stdout and "# Internet problems" not in result.stdout


def test_a_notify_incident_is_refused_with_its_tier(config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["incident", "texts", NOTIFIED, "-c", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert f"{NOTIFIED} is a notify incident: only publish and broadcast incidents have documents" in message
    assert not (tmp_path / "o").exists() and result.stdout == ""


def test_an_unknown_incident_is_refused(config: Path) -> None:
    result = CliRunner().invoke(app, ["incident", "texts", "INC-nope", "-c", str(config)])
    assert result.exit_code == 1 and "no decision for INC-nope" in " ".join(result.stderr.split())


def test_a_pending_broadcast_gets_its_drafts_and_a_note_that_the_feed_does_not_show_it(
        config: Path, redis_client: redis.Redis) -> None:
    save(redis_client, "INC-wide", "no_internet", "NY-081", "broadcast", approval="pending")
    result = CliRunner().invoke(app, ["incident", "texts", "INC-wide", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "- that this caller will get a message from us" in result.stdout
    assert "the status feed does not show INC-wide (its approval is pending)" in " ".join(result.stderr.split())
