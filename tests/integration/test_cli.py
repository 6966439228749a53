"""The CLI contract: demo, customers load and audience, run through the real command."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.demo.scenario import generate
from forewarn.envelopes import parse_message_id
from forewarn.outreach.effect import Effect, pooled
from forewarn.records import Customer, SendResult


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One `forewarn demo` run (the output folder and what it printed), shared by the demo tests."""
    out = tmp_path_factory.mktemp("cli") / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_demo_finds_the_injected_incidents_and_stays_quiet_in_the_control(demo_run: tuple[Path, str]) -> None:
    out, output = demo_run
    assert "regional_outage {'region':" in output and "MISSED" not in output
    assert "quiet, as expected" in output
    for name in ("incidents.jsonl", "outbox_sms.jsonl", "outbox_email.jsonl", "report.html", "events.jsonl"):
        assert (out / name).is_file(), name
    sms = [orjson.loads(line) for line in (out / "outbox_sms.jsonl").read_bytes().splitlines()]
    assert sms and all(m["to"].startswith("+") and "{{" not in m["body"] for m in sms)
    keys = [(m["incident_id"], m["customer_id"], m["kind"]) for m in sms]
    assert len(keys) == len(set(keys)), "a customer got the same message twice"


def _outbox(out: Path) -> list[dict]:
    return [orjson.loads(line) for name in ("outbox_sms.jsonl", "outbox_email.jsonl")
            for line in (out / name).read_bytes().splitlines()]


def test_demo_storm_warns_only_the_customers_in_its_path_then_gives_the_all_clear(
        demo_run: tuple[Path, str]) -> None:
    out, output = demo_run
    [storm] = orjson.loads((out / "truth.json").read_bytes())["hazards"]
    inside = set(storm["affected_customer_ids"])
    assert storm["name"] == "severe_thunderstorm" and len(inside) > 100
    assert re.search(r"truth severe_thunderstorm .*: found as HAZ-\w+ \(opened → updated → cancelled\)",
                     " ".join(output.split())), output
    reports = [r for line in (out / "incidents.jsonl").read_bytes().splitlines()
               if "hazard" in (r := orjson.loads(line))]
    assert [r["hazard"]["status"] for r in reports] == ["opened", "updated", "cancelled"]
    assert {r["hazard"]["identifier"] for r in reports} == set(storm["alert_ids"])
    [hazard_id] = {r["hazard"]["id"] for r in reports}

    customers = {c.id: c for c in (Customer.model_validate_json(line)
                                   for line in (out / "customers.jsonl").read_bytes().splitlines())}
    reachable = {i for i in inside if customers[i].contact(customers[i].preferred_channel)}
    messages = [m for m in _outbox(out) if m["incident_id"] == hazard_id]
    warned = [m["customer_id"] for m in messages if m["kind"] == "warning"]
    assert len(warned) == len(set(warned)), "the update warned someone the alert had already warned"
    assert set(warned) == reachable, "exactly the reachable customers inside the polygons, nobody outside"
    assert 0 < len(inside - reachable) < 0.1 * len(inside)  # the opted-out are in the path but not messaged
    all_clear = [m["customer_id"] for m in messages if m["kind"] == "resolved"]
    assert sorted(all_clear) == sorted(warned), "the cancel reaches each warned customer once"
    for m in messages:
        customer = customers[m["customer_id"]]
        assert m["channel"] == customer.preferred_channel and m["to"] == customer.contact(m["channel"])
        assert "{{" not in m["body"] and ("Severe Thunderstorm Warning" in m["body"] or m["subject"])
    # The storm left the incidents' outreach as it was before the storm was added to the scenario:
    # the outage and the defect reached audiences of 373 and 1,657 customers (seed 7), nobody was capped,
    # and each warned its audience less its holdout (about a tenth, never messaged). (1,674 before the 2- and 4-hour
    # windows: the defect's deciding window now starts an hour earlier, and so do the callers it leaves out.)
    per_incident = Counter(m["incident_id"].split("-")[2] for m in _outbox(out)
                           if m["incident_id"].startswith("INC-") and m["kind"] == "warning")
    opened = {r["incident"]["key"]["topic"]: r for line in (out / "incidents.jsonl").read_bytes().splitlines()
              if "incident" in (r := orjson.loads(line)) and r["incident"]["status"] == "opened"}
    assert {topic: r["audience_size"] for topic, r in opened.items()} == {"no_internet": 373, "wifi_drops": 1657}
    held = {topic: r["outcomes"].get("held_out", 0) for topic, r in opened.items()}
    assert all(0.05 * opened[t]["audience_size"] < held[t] < 0.15 * opened[t]["audience_size"] for t in held), held
    assert per_incident == {topic: opened[topic]["audience_size"] - held[topic] for topic in opened}
    assert "capped" not in str([r["outcomes"] for r in opened.values()])


@pytest.mark.integration
def test_customers_load_and_audience_preview(redis_url: str, tmp_path: Path) -> None:
    scenario = generate(seed=3, customers=2_000, regions=10)
    path = tmp_path / "customers.jsonl"
    bad = b'{"id": "CU-BAD", "region": "TX-453", "phone": "12"}\n'
    path.write_bytes(b"".join(c.to_json() + b"\n" for c in scenario.customers) + bad)
    result = CliRunner().invoke(app, ["customers", "load", str(path), "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert "loaded 2000 customers" in result.output and "rejected 1" in result.output
    rejected = [orjson.loads(x) for x in (tmp_path / "customers.jsonl.rejected.jsonl").read_bytes().splitlines()]
    assert [r["origin"]["line"] for r in rejected] == [2001] and "phone" in rejected[0]["reason"]
    assert redis.Redis.from_url(redis_url).scard("{fw:idx}:all") == 2000

    region = scenario.customers[0].region
    in_region = [c for c in scenario.customers if c.region == region]
    reachable = [c for c in in_region if c.contact(c.preferred_channel)]
    result = CliRunner().invoke(app, ["audience", f"region={region}", "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert would_contact(result.output) == len(reachable)
    result = CliRunner().invoke(app, ["audience", "colour=blue", "--redis-url", redis_url])
    assert result.exit_code != 0 and "colour" in result.output


def would_contact(output: str) -> int | None:
    """The "would be contacted" count of an audience preview, None when it is not printed."""
    found = re.search(r"would be contacted\s*│\s*(\d+)", output)
    return int(found.group(1)) if found else None


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body)
    return path


def test_run_fails_fast_and_clearly_when_the_broker_is_down(tmp_path: Path) -> None:
    from tests.servers.ports import free_port

    config = _config(tmp_path, f"""
kafka: {{brokers: ["127.0.0.1:{free_port()}"], connect_timeout: 2s}}
redis: {{url: "redis://127.0.0.1:1/0"}}
outreach: {{channels: [email]}}
email: {{host: 127.0.0.1, port: 1, from_addr: a@example.com, starttls: false}}
""")
    result = CliRunner().invoke(app, ["run", "-c", str(config)])
    assert result.exit_code == 1
    assert "did not answer within 2s" in result.output and "kafka.brokers" in result.output


def test_configuration_errors_name_the_key_and_the_fix(tmp_path: Path) -> None:
    typo = _config(tmp_path, "detection: {window: 1h, treshold: 3}\n")
    result = CliRunner().invoke(app, ["run", "-c", str(typo)])
    assert result.exit_code == 2
    assert "detection.treshold: unknown key" in result.output and "min_count" in result.output
    slide = _config(tmp_path, "detection: {window: 1h, slide: 25m}\n")
    result = CliRunner().invoke(app, ["run", "-c", str(slide)])
    assert result.exit_code == 2
    assert "whole multiple" in result.output
    incomplete = _config(tmp_path, "outreach: {channels: [sms]}\n")
    result = CliRunner().invoke(app, ["run", "-c", str(incomplete)])
    assert result.exit_code == 1
    for needed in ("kafka: missing", "redis: missing", "sms: outreach.channels lists sms"):
        assert needed in result.output


def _inside(lat: float, lon: float, ring: list[tuple[float, float]]) -> bool:
    """Ray casting, written here so the test does not lean on the code under test."""
    inside = False
    for (lat1, lon1), (lat2, lon2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (lat1 > lat) != (lat2 > lat) and lon < lon1 + (lat - lat1) * (lon2 - lon1) / (lat2 - lat1):
            inside = not inside
    return inside


def test_audience_preview_of_a_polygon_and_segment_with_sms_cost(tmp_path: Path) -> None:
    scenario = generate(seed=3, customers=2_000, regions=10)
    path = tmp_path / "customers.jsonl"
    path.write_bytes(b"".join(c.to_json() + b"\n" for c in scenario.customers))
    centre = scenario.customers[0]
    assert centre.lat is not None and centre.lon is not None
    ring = [(centre.lat - 0.3, centre.lon - 0.3), (centre.lat - 0.3, centre.lon + 0.4),
            (centre.lat + 0.2, centre.lon + 0.1), (centre.lat + 0.35, centre.lon - 0.35)]
    polygon = tmp_path / "area.geojson"
    polygon.write_bytes(orjson.dumps({"type": "Polygon", "coordinates": [[[lon, lat] for lat, lon in ring]]}))
    model = centre.products[0].model
    expected = [c for c in scenario.customers
                if c.lat is not None and c.lon is not None and _inside(c.lat, c.lon, ring)
                and any(p.model == model for p in c.products) and c.contact(c.preferred_channel)]
    assert expected, "the polygon must hold some customers of the model"
    result = CliRunner().invoke(app, ["audience", f"model={model}", "--polygon", str(polygon),
                                      "--customers", str(path)])
    assert result.exit_code == 0, result.output
    assert would_contact(result.output) == len(expected)
    by_language = Counter(c.language for c in expected if c.preferred_channel == "sms")
    rows = re.findall(r"SMS per message \((\w+)\)\s*│\s*(\d+) segment\(s\), (GSM-7|UCS-2) · (\d+) recipients",
                      result.output)
    assert {language: int(n) for language, _, _, n in rows} == by_language  # one row per language, right counts
    assert dict((language, encoding) for language, _, encoding, _ in rows)["en"] == "GSM-7"
    total = sum(int(segments) * int(n) for _, segments, _, n in rows)
    assert f"= {total} segments x 0.0083)" in result.output
    assert f"{total * 0.0083:.2f} (" in result.output


@pytest.mark.integration
def test_audience_preview_of_an_incident_counts_who_was_already_contacted(redis_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from forewarn.connectors.redis_incidents import RedisIncidentStore
    from forewarn.connectors.redis_index import RedisCustomerIndex
    from forewarn.connectors.redis_outbox import RedisOutbox
    from forewarn.envelopes import Envelope
    from forewarn.records import Incident, Message, MessageKey, Trait

    client = redis.Redis.from_url(redis_url)
    scenario = generate(seed=3, customers=2_000, regions=10)
    RedisCustomerIndex(client).upsert(scenario.customers)
    region = scenario.customers[0].region
    people = [c for c in scenario.customers if c.region == region]
    reporters = frozenset(c.id for c in people[:3])
    t = datetime(2026, 11, 17, 14, tzinfo=UTC)
    incident = Incident("INC-test", "no_internet", region, "opened", t, t, t, 30, 2.0, 1, 30, reporters,
                        segment=(Trait("region", region, 3, 1.0, 0.1, 10.0, 1e-9),))
    RedisIncidentStore(client).save(incident)
    warned = [c for c in people[3:] if c.contact(c.preferred_channel)][:5]
    decided = [Envelope(Message(MessageKey(incident.id, c.id, "warning"), c.preferred_channel,
                                c.contact(c.preferred_channel) or "", "Outage"), t, t + timedelta(hours=6))
               for c in warned]
    assert len(RedisOutbox(client).enqueue(decided, t)) == 5  # decided (the flow's part): contacted, sent or not
    reachable = [c for c in people if c.id not in reporters and c.contact(c.preferred_channel)]
    result = CliRunner().invoke(app, ["audience", "INC-test", "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert would_contact(result.output) == len(reachable) - len(warned)
    assert re.search(r"excluded: already contacted\s*│\s*5", result.output)
    assert re.search(r"excluded: already reported\s*│\s*3", result.output)
    missing = CliRunner().invoke(app, ["audience", "INC-nope", "--redis-url", redis_url])
    assert missing.exit_code == 1 and "no incident INC-nope" in missing.output


@pytest.mark.integration
def test_audience_preview_counts_customers_at_their_daily_cap(redis_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from forewarn.connectors.redis_contact_log import RedisContactLog
    from forewarn.connectors.redis_index import RedisCustomerIndex

    client = redis.Redis.from_url(redis_url)
    scenario = generate(seed=3, customers=2_000, regions=10)
    RedisCustomerIndex(client).upsert(scenario.customers)
    region = scenario.customers[0].region
    reachable = [c for c in scenario.customers if c.region == region and c.contact(c.preferred_channel)]
    log = RedisContactLog(client)
    for customer in reachable[:4]:
        log.add(customer.id, datetime.now(UTC) - timedelta(hours=2), f"INC-old|{customer.id}|warning")
    config = _config(tmp_path, "outreach: {max_warnings_per_day: 1}\n")
    result = CliRunner().invoke(app, ["audience", f"region={region}", "-c", str(config), "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert re.search(r"excluded: capped\s*│\s*4", result.output)
    assert would_contact(result.output) == len(reachable) - 4


@pytest.mark.integration
def test_extra_trait_from_config_is_loaded_and_previewed(redis_url: str, tmp_path: Path) -> None:
    scenario = generate(seed=3, customers=600, regions=5)
    tiers = {c.id: ("gold" if i % 3 == 0 else "basic") for i, c in enumerate(scenario.customers)}
    path = tmp_path / "customers.jsonl"
    path.write_bytes(b"".join(orjson.dumps({**orjson.loads(c.to_json()), "tier": tiers[c.id]}) + b"\n"
                              for c in scenario.customers))
    config = _config(tmp_path, "targeting: {extra_traits: [tier]}\n")
    result = CliRunner().invoke(app, ["customers", "load", str(path), "-c", str(config), "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    gold_reachable = [c for c in scenario.customers if tiers[c.id] == "gold" and c.contact(c.preferred_channel)]
    result = CliRunner().invoke(app, ["audience", "tier=gold", "-c", str(config), "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert would_contact(result.output) == len(gold_reachable) > 0
    # without the config the field is not a trait, and the error names the ones there are
    result = CliRunner().invoke(app, ["audience", "tier=gold", "--redis-url", redis_url])
    assert result.exit_code != 0 and "unknown attribute 'tier'" in result.output


def test_message_prints_one_customers_history_or_the_incidents_funnel(redis_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from forewarn.connectors.redis_outbox import RedisOutbox
    from forewarn.envelopes import Envelope
    from forewarn.records import Message, MessageKey

    now = datetime.now(UTC)
    outbox = RedisOutbox(redis.Redis.from_url(redis_url))
    outbox.enqueue([Envelope(Message(MessageKey("INC-7", f"CU-{n}", "warning"), "sms", f"+1512555010{n}", "Outage."),
                             now, now + timedelta(hours=1)) for n in range(3)], now)
    lease = outbox.take("sms", "w", 1, 0)[0]
    outbox.begin(lease, now)
    outbox.settle(lease, "sent", now, SendResult(ok=True, provider_id="SM123"))
    config = _config(tmp_path, f"redis: {{url: \"{redis_url}\"}}\n")

    funnel = CliRunner().invoke(app, ["message", "INC-7", "-c", str(config)])
    assert funnel.exit_code == 0, funnel.output
    counts = dict(re.findall(r"^\s+(\w+)\s+(\d+)$", funnel.output, re.MULTILINE))
    assert (counts["decided"], counts["enqueued"], counts["sent"], counts["failed"]) == ("3", "3", "1", "0")

    one = CliRunner().invoke(app, ["message", "INC-7", parse_message_id(lease.message_id)[0].customer_id,
                                   "-c", str(config)])
    assert one.exit_code == 0, one.output
    assert "now: sent" in one.output and "provider id: SM123" in one.output
    assert "+1512555" not in one.output and "Outage." not in one.output  # no address, no body

    missing = CliRunner().invoke(app, ["message", "INC-404", "-c", str(config)])
    assert missing.exit_code != 0 and "no message of INC-404" in missing.output


_POOLED = re.compile(r"effect of all incidents pooled: warned customers called [\d.]+% \((\d+)/(\d+)\), held-out "
                     r"[\d.]+% \((\d+)/(\d+)\): (-?\d+)% fewer calls \(95% CI (-?\d+)% to (-?\d+)%\).*?truth: "
                     r"warned customers skip (\d+)% of their calls")


def _pooled_effect(output: str) -> tuple[Effect, int, int, int]:
    """The demo's pooled effect (its groups), its printed interval in percent, and the truth it prints."""
    found = _POOLED.search(" ".join(output.split()))
    assert found is not None, output
    warned_calls, warned, held_calls, held = (int(found.group(i)) for i in (1, 2, 3, 4))
    low, high, truth = (int(found.group(i)) for i in (6, 7, 8))
    return Effect(None, warned, warned_calls, held, held_calls), low, high, truth


def test_demo_estimates_the_calls_warnings_saved_and_its_interval_covers_the_truth(
        demo_run: tuple[Path, str], tmp_path: Path) -> None:
    effect, low, high, truth = _pooled_effect(demo_run[1])
    assert effect.held_out > 0.05 * (effect.warned + effect.held_out)  # a tenth held out, give or take
    assert low <= truth <= high, (low, truth, high)
    # A holdout of about 200 customers calling at a few percent leaves a wide interval in any one run (seed 7's
    # holdout called less than most: 5 of 192). Over three seeded runs the estimate is measurably above nothing
    # and its interval still covers the truth.
    runs = [effect]
    for seed in (1, 2):
        result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / f"seed{seed}"), "--seed", str(seed)])
        assert result.exit_code == 0, result.output
        runs.append(_pooled_effect(result.output)[0])
    together_low, together_high = pooled(runs).relative_interval
    assert 0 < together_low <= truth / 100 <= together_high, (together_low, truth, together_high)
