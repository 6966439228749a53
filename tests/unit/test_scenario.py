"""The seeded demo scenario generator."""

from __future__ import annotations

import json
import re
import zoneinfo
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import phonenumbers
import pytest

from forewarn.connectors.cap import is_alert_document, parse_alerts
from forewarn.demo.scenario import Scenario, covers, generate
from forewarn.demo.scenario_data import MODELS, REGIONS
from forewarn.geo import Area
from forewarn.records import NATIONAL, Case, Customer

SMALL_CUSTOMERS = 2_000


def _small(seed: int = 11, customers: int = SMALL_CUSTOMERS, regions: int = 10, days: int = 3) -> Scenario:
    return generate(seed=seed, customers=customers, regions=regions, days=days)


@pytest.fixture(scope="module")
def small() -> Scenario:
    return _small()


@pytest.fixture(scope="module")
def default() -> Scenario:
    # How long generating it takes is measured by `python -m bench.bench_scenario`, not asserted here.
    return generate()


def _ts(event: dict) -> datetime:
    return datetime.fromisoformat(event["ts"])


def _injected_ids(scenario: Scenario) -> set[str]:
    return set().union(*(t.case_ids for t in scenario.truths))


def test_same_seed_gives_the_same_files(tmp_path: Path) -> None:
    _small(3).write(tmp_path / "a")
    _small(3).write(tmp_path / "b")
    _small(4).write(tmp_path / "c")
    for name in ("customers.jsonl", "events.jsonl", "alerts.jsonl", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "events.jsonl").read_bytes() != (tmp_path / "c" / "events.jsonl").read_bytes()
    assert (tmp_path / "a" / "alerts.jsonl").read_bytes() != (tmp_path / "c" / "alerts.jsonl").read_bytes()


def test_customers_validate_and_are_unique(small: Scenario) -> None:
    assert len(small.customers) == SMALL_CUSTOMERS
    zones = {r.code: r.timezone for r in small.regions}
    for customer in small.customers:
        assert Customer.model_validate(customer.model_dump()) == customer
        assert Customer.model_validate(json.loads(customer.to_json())) == customer
        assert customer.phone is not None
        assert phonenumbers.is_possible_number(phonenumbers.parse(customer.phone))
        assert customer.timezone == zones[customer.region]
        assert 1 <= len(customer.products) <= 2
    for attr in ("id", "phone", "email"):
        assert len({getattr(c, attr) for c in small.customers}) == len(small.customers)
    assert small.customers[0].id == "CU-00001" and small.customers[0].email == "c00001@example.com"


def test_firmware_and_lot_imply_the_model() -> None:
    seen: dict[str, str] = {}
    for model in MODELS:
        for value in [f for f, _ in model.firmwares] + list(model.lots):
            assert seen.setdefault(value, model.name) == model.name


def test_region_table_is_plausible() -> None:
    codes = [r.code for r in REGIONS]
    assert len(set(codes)) == len(codes) >= 50
    for region in REGIONS:
        assert re.fullmatch(r"[A-Z]{2}-\d{3}", region.code)
        zoneinfo.ZoneInfo(region.timezone)
        assert 18 < region.lat < 72 and -170 < region.lon < -60


def test_default_population_shape(default: Scenario) -> None:
    sizes = Counter(c.region for c in default.customers)
    assert len(sizes) == 50 and min(sizes.values()) >= 80
    assert max(sizes.values()) > 10 * min(sizes.values())
    n = len(default.customers)
    assert 0.60 < sum(c.preferred_channel == "sms" for c in default.customers) / n < 0.70
    assert 0.01 < sum(c.opt_out.sms for c in default.customers) / n < 0.05
    assert 0.05 < sum(c.language == "es" for c in default.customers) / n < 0.30
    r7000 = [p for c in default.customers for p in c.products if p.model == "R7000"]
    assert 0.20 < sum(p.firmware == "2.1.7" for p in r7000) / len(r7000) < 0.30


def test_events_validate_and_are_sorted(small: Scenario) -> None:
    customers = {c.id: c for c in small.customers}
    times = []
    for n, event in enumerate(small.events, start=1):
        case = Case.model_validate(event)
        assert event["id"] == f"C-{n:06d}"
        assert event["ts"].endswith("Z")
        assert event["region"] == customers[event["customer_id"]].region
        assert event["channel"] in {"phone", "chat", "email", "app"}
        assert case.model_extra == {"attachments": event["attachments"]}
        times.append(case.ts)
    assert times == sorted(times)
    assert small.start <= times[0] and times[-1] < small.end


@pytest.mark.parametrize("which", ["small", "default"])
def test_ground_truth_matches_injected_cases(which: str, request: pytest.FixtureRequest) -> None:
    scenario: Scenario = request.getfixturevalue(which)
    assert [t.name for t in scenario.truths] == ["regional_outage", "firmware_defect", "quiet_control"]
    events = {e["id"]: e for e in scenario.events}
    customers = {c.id: c for c in scenario.customers}
    for truth in scenario.truths[:2]:
        injected = [events[i] for i in truth.case_ids]
        assert truth.affected_customer_ids
        assert {e["customer_id"] for e in injected} == truth.affected_customer_ids
        assert len(injected) == len(truth.affected_customer_ids)  # at most one per customer
        assert all(e["topic"] == truth.topic for e in injected)
        assert all(truth.start <= _ts(e) < truth.end for e in injected)
        for cid in truth.affected_customer_ids:
            attrs = customers[cid].attributes()
            assert all(value in attrs[key] for key, value in truth.segment.items())

    outage = scenario.truth("regional_outage")
    sizes = Counter(c.region for c in scenario.customers)
    assert outage.segment == {"region": outage.region} and outage.topic == "no_internet"
    assert outage.region != sizes.most_common(1)[0][0]
    assert len(outage.affected_customer_ids) == round(0.10 * sizes[outage.region])
    assert outage.start == scenario.start + timedelta(days=1, hours=14)
    first_hour = sum(_ts(events[i]) < outage.start + timedelta(hours=1) for i in outage.case_ids)
    assert first_hour > len(outage.case_ids) / 2

    defect = scenario.truth("firmware_defect")
    assert defect.region == NATIONAL and defect.segment == {"model": "R7000", "firmware": "2.1.7"}
    eligible = [
        c for c in scenario.customers if any(p.model == "R7000" and p.firmware == "2.1.7" for p in c.products)
    ]
    assert len(defect.affected_customer_ids) == round(0.08 * len(eligible))
    assert defect.start == scenario.start + timedelta(days=2, hours=8)
    assert defect.end - defect.start == timedelta(hours=6)

    control = scenario.truth("quiet_control")
    assert control.topic is None and control.region == NATIONAL and control.segment == {}
    assert not control.affected_customer_ids and not control.case_ids


def test_firmware_defect_spans_regions_and_ramps_up(default: Scenario) -> None:
    defect = default.truth("firmware_defect")
    events = {e["id"]: e for e in default.events}
    injected = [events[i] for i in defect.case_ids]
    assert len({e["region"] for e in injected}) > 20
    by_hour = Counter(int((_ts(e) - defect.start).total_seconds() // 3600) for e in injected)
    plateau = sum(by_hour[h] for h in (2, 3, 4, 5)) / 4
    assert by_hour[0] < by_hour[1] and 2 * by_hour[0] < plateau
    assert (by_hour[0] + by_hour[1]) / 2 < plateau


def test_daily_cycle_is_visible(small: Scenario) -> None:
    injected = _injected_ids(small)
    zones = {c.id: zoneinfo.ZoneInfo(c.timezone) for c in small.customers}
    by_local_hour = Counter(
        _ts(e).astimezone(zones[e["customer_id"]]).hour for e in small.events if e["id"] not in injected
    )
    night = sum(by_local_hour[h] for h in range(0, 5)) / 5
    afternoon = sum(by_local_hour[h] for h in range(13, 18)) / 5
    assert night * 4 < afternoon


def test_background_volume(default: Scenario) -> None:
    injected = _injected_ids(default)
    background = [e for e in default.events if e["id"] not in injected]
    assert 0.9 * 2_400 * 3 < len(background) < 1.1 * 2_400 * 3
    topics = Counter(e["topic"] for e in background)
    assert set(topics) == {
        "no_internet",
        "wifi_drops",
        "slow_speed",
        "billing",
        "tv_signal",
        "account_access",
    }


def test_control_window_holds_only_background(small: Scenario) -> None:
    control = small.truth("quiet_control")
    inside = [e for e in small.events if control.start <= _ts(e) < control.end]
    assert inside  # background continues
    assert not {e["id"] for e in inside} & _injected_ids(small)


def test_write_produces_readable_files(small: Scenario, tmp_path: Path) -> None:
    small.write(tmp_path / "out")
    lines = (tmp_path / "out" / "customers.jsonl").read_text().splitlines()
    assert [Customer.model_validate_json(line) for line in lines] == small.customers
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert events == small.events
    assert all(Case.model_validate(e) for e in events)
    truth = json.loads((tmp_path / "out" / "truth.json").read_text())
    assert [t["name"] for t in truth["truths"]] == ["regional_outage", "firmware_defect", "quiet_control"]
    outage = truth["truths"][0]
    assert outage["affected_customer_ids"] == sorted(small.truths[0].affected_customer_ids)
    assert outage["start"].endswith("Z") and truth["start"] == "2026-11-16T00:00:00Z"


@pytest.mark.parametrize("kwargs", [{"days": 2}, {"regions": 0}, {"regions": 1000}, {"customers": 50}])
def test_bad_parameters_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        _small(**kwargs)


# --- the hazard episode: a Severe Thunderstorm Warning, its Update and its Cancel -------------


@pytest.mark.parametrize("which", ["small", "default"])
def test_storm_alerts_are_nws_features_that_follow_each_other(which: str, request: pytest.FixtureRequest) -> None:
    scenario: Scenario = request.getfixturevalue(which)
    [storm] = scenario.hazards
    assert scenario.hazard("severe_thunderstorm") is storm
    lines = [json.dumps(a, separators=(",", ":")).encode() for a in scenario.alerts]
    assert all(is_alert_document(line) for line in lines)  # the flow tells them from cases by shape
    alerts = [alert for line in lines for alert in parse_alerts(line)]
    assert [a.msg_type for a in alerts] == ["Alert", "Update", "Cancel"]
    assert tuple(a.identifier for a in alerts) == storm.alert_ids
    assert all(a.is_actionable and a.event == "Severe Thunderstorm Warning" for a in alerts)
    assert [{r.identifier for r in a.references} for a in alerts] == [set(), {alerts[0].identifier},
                                                                      {alerts[0].identifier, alerts[1].identifier}]
    assert [a.severity_rank() for a in alerts] == [3, 3, 0]  # severe and imminent, then past
    for a in alerts:
        for ts in (a.sent, a.effective, a.onset, a.expires):
            assert ts is not None and ts.utcoffset() is not None
            assert scenario.start <= ts < scenario.end
        state, county = storm.region.split("-")
        assert a.areas[0].geocodes["UGC"] == (f"{state}C{county}",) and a.areas[0].geocodes["SAME"][0][3:] == county
    first, update, cancel = alerts
    assert first.sent < update.sent < cancel.sent and (storm.start, storm.end) == (first.sent, cancel.sent)
    assert first.expires is not None and update.expires is not None and cancel.sent < update.expires
    assert first.expires < update.expires, "the update extends the warning"
    assert first.areas[0].polygons != update.areas[0].polygons, "... and moves it with the storm"
    rings = [a.areas[0].polygons[0] for a in (first, update)]
    assert all(ring[0] == ring[-1] for ring in rings)  # GeoJSON rings are closed
    assert storm.polygons == tuple(ring[:-1] for ring in rings)


def test_storm_keeps_away_from_the_injected_incidents(default: Scenario) -> None:
    storm, outage, defect = default.hazards[0], default.truth("regional_outage"), default.truth("firmware_defect")
    assert storm.region != outage.region
    # A day apart from both, so a per-customer daily warning cap cannot make them compete.
    assert storm.end + timedelta(hours=12) < outage.start and storm.end + timedelta(days=1) < defect.start
    assert storm.start.date() == default.start.date()


def test_storm_polygons_hold_the_customers_in_its_path(default: Scenario) -> None:
    storm = default.hazards[0]
    located = [c for c in default.customers if c.lat is not None and c.lon is not None]
    # The flow's own geo test (shapely, edges included) agrees with the generator's exact one.
    assert {c.id for c in Area(storm.polygons).filter(located)} == storm.affected_customer_ids
    in_region = {c.id for c in default.customers if c.region == storm.region}
    assert storm.affected_customer_ids <= in_region, "the storm covers part of one region"
    assert 0.3 * len(in_region) < len(storm.affected_customer_ids) < 0.8 * len(in_region)
    first, moved = storm.polygons
    points = [(c.id, c.lat, c.lon) for c in located if c.lat is not None and c.lon is not None]
    only_first = {i for i, lat, lon in points if covers(first, lat, lon) and not covers(moved, lat, lon)}
    only_moved = {i for i, lat, lon in points if covers(moved, lat, lon) and not covers(first, lat, lon)}
    assert only_first and only_moved, "the update reaches customers the first alert did not"


def test_storm_truth_is_written(small: Scenario, tmp_path: Path) -> None:
    small.write(tmp_path / "out")
    alerts = [json.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    assert alerts == small.alerts
    [storm] = json.loads((tmp_path / "out" / "truth.json").read_text())["hazards"]
    assert storm["affected_customer_ids"] == sorted(small.hazards[0].affected_customer_ids)
    assert storm["alert_ids"] == [a["properties"]["id"] for a in alerts]
    assert storm["start"].endswith("Z") and storm["polygons"][0][0] == list(small.hazards[0].polygons[0][0])
