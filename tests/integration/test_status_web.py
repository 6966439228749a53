"""The public status feed served for real: decisions in a real Redis (`RedisDecisionStore`), the web app on a
real uvicorn, `GET /status.json` and `GET /status.atom` over HTTP; and the demo's feed files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from forewarn.connectors.redis_decisions import RedisDecisionStore
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.connectors.redis_suppressions import RedisSuppressions
from forewarn.decisions import Decision
from forewarn.flows.demo import run_demo
from forewarn.settings import BUNDLED_CONFIG, PlaybookRule, Secrets, Settings, load_settings
from forewarn.web import WebServer, build_web_app, create_app, serve
from tests.servers.ports import free_port
from tests.unit.test_status_feed import StatusDocument

pytestmark = pytest.mark.integration

PUBLIC = "https://forewarn.example.com/hooks"
NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)
T0 = NOW - timedelta(hours=1)
LABELS = {"no_internet": "internet", "wifi_drops": "Wi-Fi"}
A = "{http://www.w3.org/2005/Atom}"
HOSTILE = "<script>alert(1)</script> Crews & trucks on site"


def decision(incident_id: str, topic: str = "no_internet", region: str = "NY-081", **more: Any) -> Decision:
    fields: dict[str, Any] = {"tier": "publish", "approval": "not_needed", "decided_at": T0, "audience": 370, **more}
    return Decision(incident_id, topic, region, fields.pop("severity", "high"), ("90x the expected count",),
                    "regional", ("370 customers in 1 region",), **fields)


DECISIONS = [
    decision("INC-20261120T1400Z-no_internet-NY-081-ab12", stage="identified", eta=NOW + timedelta(hours=3),
             note=HOSTILE, updated_at=T0 + timedelta(minutes=30)),
    decision("INC-20261120T1300Z-wifi_drops-ALL-cd34", "wifi_drops", "*", tier="broadcast", approval="approved",
             severity="critical", labels=(("model", "R7000"), ("firmware", "2.1.7")),
             decided_at=T0 - timedelta(hours=1)),
    decision("INC-resolved-recently", region="TX-453", open=False, stage="resolved",
             updated_at=NOW - timedelta(hours=2)),
    decision("INC-resolved-long-ago", region="TX-001", open=False, stage="resolved",
             decided_at=NOW - timedelta(days=3), updated_at=NOW - timedelta(days=2)),
    decision("INC-notify", region="CA-001", tier="notify"),
    decision("INC-pending", region="CA-002", tier="broadcast", approval="pending"),
    decision("INC-silenced", region="CA-003", silenced_by="S-1"),
    decision("INC-unlabelled", "new:loop+reboot+router", "CA-004"),
]
SHOWN = ["Internet problems in NY-081", "Wi-Fi problems for R7000 2.1.7", "Internet problems in TX-453"]
"""Open ones first, the last changed first."""


def app_over(store: RedisDecisionStore | None, client: redis.Redis) -> Any:
    return create_app(queue=RedisOutbox(client, "t"), suppressions=RedisSuppressions(client, "t"),
                      index=RedisCustomerIndex(client, "t"), public_url=PUBLIC, twilio_auth_token=None,
                      unsubscribe_secret=None, help_text="help", clock=lambda: NOW, decisions=store,
                      topic_labels=LABELS)


@pytest.fixture
def server(redis_client: redis.Redis) -> Iterator[WebServer]:
    store = RedisDecisionStore(redis_client, "t")
    for d in DECISIONS:
        store.save(d)
    with serve(app_over(store, redis_client)) as running:
        yield running


def get(server: WebServer, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=10)


def public_headers(answer: requests.Response) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "public, max-age=30"
    assert answer.headers["access-control-allow-origin"] == "*"


def test_status_json_lists_the_public_incidents_from_redis(server: WebServer) -> None:
    answer = get(server, "/status.json")
    public_headers(answer)
    assert answer.headers["content-type"] == "application/json"
    doc = StatusDocument.model_validate_json(answer.content)
    assert [i.name for i in doc.incidents] == SHOWN
    assert (doc.status.indicator, doc.page.updated_at) == ("critical", "2026-11-20T15:00:00Z")
    internet, wifi, resolved = doc.incidents
    assert (wifi.regions, wifi.products, wifi.impact) == (["nationwide"], ["R7000 2.1.7"], "critical")
    assert (internet.status, internet.eta, internet.incident_updates[0].body) == (
        "identified", "2026-11-20T18:00:00Z", HOSTILE)
    assert (resolved.status, resolved.resolved_at) == ("resolved", "2026-11-20T13:00:00Z")
    for secret in (b"no_internet", b"wifi_drops", b"INC-20261120", b"370", b"90x", b"CA-00", b"TX-001"):
        assert secret not in answer.content, secret


def test_status_atom_is_a_feed_of_the_same_incidents_with_text_escaped(server: WebServer) -> None:
    answer = get(server, "/status.atom")
    public_headers(answer)
    assert answer.headers["content-type"].split(";")[0] == "application/atom+xml"
    assert b"<script>" not in answer.content and b"&lt;script&gt;" in answer.content
    root = ET.fromstring(answer.content)
    assert root.tag == A + "feed" and root.findtext(A + "id", "").startswith("urn:uuid:")
    assert root.findtext(A + "updated") == "2026-11-20T15:00:00Z" and root.findtext(f"{A}author/{A}name")
    links = {link.get("rel"): link.get("href") for link in root.findall(A + "link")}
    assert links == {"self": PUBLIC + "/status.atom", "alternate": PUBLIC + "/status.json"}
    entries = root.findall(A + "entry")
    assert [e.findtext(A + "title") for e in entries] == [
        "Internet problems in NY-081 (Identified)", "Wi-Fi problems for R7000 2.1.7 (Investigating)",
        "Internet problems in TX-453 (Resolved)"]
    assert HOSTILE in (entries[0].findtext(A + "content") or "")
    assert len({e.findtext(A + "id") for e in entries}) == 3


def test_the_feed_follows_the_store(server: WebServer, redis_client: redis.Redis) -> None:
    store = RedisDecisionStore(redis_client, "t")
    [internet] = [d for d in DECISIONS if d.region == "NY-081"]
    store.save(replace(internet, open=False, stage="resolved", updated_at=NOW))
    doc = StatusDocument.model_validate_json(get(server, "/status.json").content)
    assert [(i.name, i.status) for i in doc.incidents] == [
        ("Wi-Fi problems for R7000 2.1.7", "investigating"), ("Internet problems in NY-081", "resolved"),
        ("Internet problems in TX-453", "resolved")]


def test_the_feed_routes_are_read_only(server: WebServer) -> None:
    assert requests.post(server.url + "/status.json", timeout=10).status_code == 405
    assert requests.delete(server.url + "/status.atom", timeout=10).status_code == 405


def test_without_a_store_or_with_a_failing_one_the_feed_answers_503(redis_client: redis.Redis) -> None:
    down = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    for store in (None, RedisDecisionStore(down, "t")):
        with serve(app_over(store, redis_client)) as running:
            for path in ("/status.json", "/status.atom"):
                answer = get(running, path)
                assert answer.status_code == 503, (store, path)
                assert "Traceback" not in answer.text and "127.0.0.1" not in answer.text
            assert get(running, "/healthz").status_code == 200


def test_forewarn_web_serves_the_feed_from_the_configured_prefix_and_labels(redis_url: str,
                                                                             redis_client: redis.Redis) -> None:
    RedisDecisionStore(redis_client, "acme").save(DECISIONS[0])
    RedisDecisionStore(redis_client, "other").save(DECISIONS[1])
    settings = Settings.model_validate({
        "redis": {"url": redis_url, "prefix": "acme"}, "web": {"public_url": PUBLIC},
        "outreach": {"topic_labels": {"no_internet": "internet service"}},
    })
    secrets = Secrets(_env_file=None, twilio_auth_token=None, forewarn_unsubscribe_secret=None,  # type: ignore[call-arg]
                      forewarn_redis_url=None)
    with serve(build_web_app(settings, secrets, clock=lambda: NOW)) as running:
        doc = StatusDocument.model_validate_json(get(running, "/status.json").content)
        assert [i.name for i in doc.incidents] == ["Internet service problems in NY-081"]
        root = ET.fromstring(get(running, "/status.atom").content)
        assert [e.findtext(A + "title") for e in root.findall(A + "entry")] == [
            "Internet service problems in NY-081 (Identified)"]


def test_the_demo_writes_the_feed_as_of_the_scenarios_end(tmp_path: Path) -> None:
    """With a playbook that publishes everything, the demo's incidents reach its status files; the
    outage resolved more than a day before the scenario's end, the firmware defect within it."""
    base = load_settings(BUNDLED_CONFIG / "default.yaml")
    settings = base.model_copy(update={"playbook": base.playbook.model_copy(
        update={"rules": (PlaybookRule(tier="publish"),)})})
    run_demo(settings, tmp_path / "demo")
    doc = StatusDocument.model_validate_json((tmp_path / "demo" / "status.json").read_bytes())
    assert doc.page.updated_at == "2026-11-19T00:00:00Z"
    assert [(i.name, i.status, i.regions, i.products) for i in doc.incidents] == [
        ("Wi-Fi problems for R7000 2.1.7", "resolved", ["nationwide"], ["R7000 2.1.7"])]
    root = ET.fromstring((tmp_path / "demo" / "status.atom").read_bytes())
    assert [e.findtext(A + "title") for e in root.findall(A + "entry")] == [
        "Wi-Fi problems for R7000 2.1.7 (Resolved)"]
