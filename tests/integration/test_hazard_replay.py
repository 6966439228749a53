"""A real NWS Flood Watch through `forewarn replay`: the customers of its counties are warned once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.records import Customer

NWS = Path(__file__).resolve().parents[3] / "shared" / "data" / "cap" / "nws_geojson"
pytestmark = pytest.mark.skipif(not NWS.is_dir(), reason="shared NWS samples are not beside the checkout")


def _customer(i: int, region: str, **fields: object) -> Customer:
    return Customer.model_validate({"id": f"CU-{i:03d}", "phone": f"+1503555{i:04d}", "region": region,
                                    "email": f"c{i}@example.com", "timezone": "America/Los_Angeles", **fields})


def test_a_flood_watch_warns_its_counties_once_and_only_those(tmp_path: Path) -> None:
    collection = orjson.loads((NWS / "alerts_active_zone.json").read_bytes())
    [feature] = collection["features"]
    same = feature["properties"]["geocode"]["SAME"]
    counties = sorted({f"OR-{code[-3:]}" for code in same if code[1:3] == "41"})
    assert "OR-007" in counties  # Clatsop County, from the alert itself
    customers = [_customer(i, region) for i, region in enumerate(counties)]
    customers += [_customer(50, counties[0], preferred_channel="email"),
                  _customer(51, counties[0], opt_out={"sms": True}),
                  _customer(52, "WA-033"), _customer(53, "CA-037")]  # outside the watch
    people = tmp_path / "customers.jsonl"
    people.write_bytes(b"".join(c.to_json() + b"\n" for c in customers))
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(orjson.dumps(feature) + b"\n" + orjson.dumps(feature) + b"\n")  # delivered twice
    config = tmp_path / "config.yaml"
    config.write_text("hazards:\n  region_format: state-county\n  rules:\n"
                      "    - {events: [Flood Watch], min_rank: 2}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["replay", "-c", str(config), "--input", str(alerts),
                                      "--customers", str(people), "--out", str(out)])
    assert result.exit_code == 0, result.output
    sms = [orjson.loads(x) for x in (out / "outbox_sms.jsonl").read_bytes().splitlines()]
    email = [orjson.loads(x) for x in (out / "outbox_email.jsonl").read_bytes().splitlines()]
    warned = [m["customer_id"] for m in sms + email]
    expected = {c.id for c in customers if c.region in counties and c.contact(c.preferred_channel)}
    assert sorted(warned) == sorted(expected), "each customer of the watch's counties once, nobody else"
    assert all("Flood Watch" in m["body"] for m in sms) and all(m["subject"] for m in email)
    reports = [orjson.loads(x) for x in (out / "incidents.jsonl").read_bytes().splitlines()]
    assert [r["hazard"]["status"] for r in reports] == ["opened", "updated"]
    assert reports[0]["excluded"] == {"opted out of sms": 1}
