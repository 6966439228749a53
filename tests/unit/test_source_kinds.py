"""The source decides a record's type (issue 9): what each source accepts, and parsing at the edge.

A production topic carries one kind whatever its records claim; only a mixed source (a replay
file) lets a record's "type" or its shape (an alert document) choose. Also: telemetry that
counted nowhere is a dead letter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from forewarn.batches import RawBatch
from forewarn.detectors.shard import CountedCase
from forewarn.detectors.time_bounds import TimeBounds
from forewarn.flows.partitions import PartitionRules
from forewarn.flows.wiring import production_io, production_kinds
from forewarn.hazards import HazardAlert
from forewarn.records import Customer, DeadLetter, Origin, Telemetry
from forewarn.settings import ConfigError, Settings
from forewarn.sources import SourceKinds

PHONE = "+19005550199"
CASE = {"type": "case", "id": "C-1", "ts": "2026-11-20T14:03:11Z", "topic": "no_internet", "region": "TX-453"}
TELEMETRY = {"type": "telemetry", "ts": "2026-11-20T14:03:00Z", "device_id": "D-9", "metric": "wan_down",
             "value": 1.0, "region": "TX-453", "model": "R7000", "firmware": "2.1.7"}
CUSTOMER = {"type": "customer", "id": "CU-42", "phone": PHONE, "region": "TX-453"}
NWS_FEATURE = {
    "id": "https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.1", "type": "Feature",
    "geometry": {"type": "Polygon", "coordinates": [[[-97.8, 30.2], [-97.6, 30.2], [-97.6, 30.4], [-97.8, 30.2]]]},
    "properties": {"id": "urn:oid:2.49.0.1.840.0.1", "sender": "w-nws.webmaster@noaa.gov",
                   "sent": "2026-11-20T14:00:00-06:00",
                   "effective": "2026-11-20T14:00:00-06:00", "expires": "2026-11-20T15:00:00-06:00",
                   "status": "Actual", "messageType": "Alert", "category": "Met", "severity": "Severe",
                   "certainty": "Observed", "urgency": "Immediate", "event": "Severe Thunderstorm Warning",
                   "areaDesc": "Travis, TX", "geocode": {"SAME": ["048453"], "UGC": ["TXC453"]},
                   "instruction": f"Call {PHONE} now.", "references": []}}
CAP_XML = (b'<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X</identifier>'
           b"</alert>")


def settings(**topics: Any) -> Settings:
    return Settings.model_validate({"kafka": {"brokers": ["localhost:9092"], "topics": topics},
                                    "hazards": {"poll": {"user_agent": "forewarn (ops@example.com)"}}})


def parse_on(source: str, record: dict[str, Any] | bytes, kinds: dict[str, SourceKinds] | None = None) -> Any:
    """What the partition step makes of one record at offset 7 of `source` (fast path and full validation
    alike): a dead letter, or (origin, record) — a case as the `CountedCase` the shards count."""
    raw = record if isinstance(record, bytes) else orjson.dumps(record)
    rules = PartitionRules(kinds or production_kinds(settings()), 64 * 1024, TimeBounds(), live=False,
                           slide=timedelta(minutes=15), shards=2, now=lambda: datetime.now(UTC))
    routed, _ = rules(None).on_item(RawBatch(source, 0, [(7, raw)], end=True))
    out = [item for kind, item in routed if kind in ("letter", "record")]
    out += [(Origin(source, 0, case.position), case) for kind, item in routed if kind == "shard"
            for case in item[1].cases]
    [only] = out
    return only


# --- what each source accepts -----------------------------------------------------------------


def test_no_production_source_is_mixed_and_each_carries_its_own_kind() -> None:
    kinds = production_kinds(settings())
    assert {source: (k.default, k.mixed) for source, k in kinds.items()} == {
        "cases": ("case", False), "telemetry": ("telemetry", False), "alerts": ("alert", False),
        "customers": ("customer", False), "https://api.weather.gov/alerts/active": ("alert", False)}


def test_one_topic_for_two_kinds_is_refused_at_start_naming_the_topic() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.topics: shared is configured for both case and customer"):
        production_kinds(settings(cases="shared", customers="shared"))


def test_production_wiring_refuses_a_shared_topic_before_connecting_anywhere() -> None:
    shared = Settings.model_validate({"kafka": {"brokers": ["127.0.0.1:1"], "topics": {"telemetry": "cases"}},
                                      "redis": {"url": "redis://127.0.0.1:1/0"}, "outreach": {"channels": []}})
    with pytest.raises(ConfigError, match="cases is configured for both case and telemetry"):
        production_io(shared)  # no broker or Redis listens on port 1: reaching them would raise otherwise


# --- a record claiming another type -----------------------------------------------------------


def test_customer_record_on_the_cases_topic_is_a_dead_letter_not_an_upsert() -> None:
    letter = parse_on("cases", CUSTOMER)
    assert isinstance(letter, DeadLetter) and letter.step == "parse"
    assert letter.reason == "type customer is not accepted on source cases"
    assert letter.origin == Origin("cases", 0, 7) and PHONE not in letter.reason


@pytest.mark.parametrize(("source", "record", "kind"), [
    ("cases", TELEMETRY, "telemetry"), ("telemetry", CASE, "case"), ("customers", CASE, "case"),
    ("telemetry", CUSTOMER, "customer"),
])
def test_every_cross_kind_record_is_refused_by_name(source: str, record: dict[str, Any], kind: str) -> None:
    letter = parse_on(source, record)
    assert isinstance(letter, DeadLetter) and letter.reason == f"type {kind} is not accepted on source {source}"


def test_nws_alert_on_the_cases_topic_is_a_dead_letter_not_a_hazard() -> None:
    letter = parse_on("cases", NWS_FEATURE)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "type Feature (a GeoJSON alert) is not accepted on source cases"
    assert PHONE not in letter.reason


def test_cap_xml_on_the_cases_topic_is_a_dead_letter_not_a_hazard() -> None:
    letter = parse_on("cases", CAP_XML)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "an XML document (such as a CAP alert) is not accepted on source cases"


def test_records_on_their_own_topic_still_parse_with_or_without_a_type() -> None:
    assert isinstance(parse_on("cases", CASE)[1], CountedCase)
    assert isinstance(parse_on("cases", {k: v for k, v in CASE.items() if k != "type"})[1], CountedCase)
    assert isinstance(parse_on("telemetry", TELEMETRY)[1], Telemetry)
    customer = parse_on("customers", CUSTOMER)[1]
    assert isinstance(customer, Customer) and customer.model_extra == {}
    assert isinstance(parse_on("alerts", NWS_FEATURE)[1], HazardAlert)
    assert isinstance(parse_on("https://api.weather.gov/alerts/active", NWS_FEATURE)[1], HazardAlert)


def test_a_source_nobody_configured_carries_nothing() -> None:
    letter = parse_on("elsewhere", CASE)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "source elsewhere is not configured to carry any record type"


def test_unknown_type_names_what_the_source_accepts_and_a_long_claim_is_not_quoted() -> None:
    assert parse_on("cases", {**CASE, "type": "complaint"}).reason == (
        "unknown record type 'complaint': source cases accepts ['case']")
    long = parse_on("cases", {**CASE, "type": f"call {PHONE} about your account now"}).reason
    assert PHONE not in long and long.startswith("unknown record type (not a plain name)")
    assert parse_on("cases", {**CASE, "type": ["case"]}).reason.startswith("record type must be a string")


# --- a mixed source (the demo's and replay's file) sniffs as before ---------------------------


def test_a_mixed_file_still_lets_records_say_what_they_are() -> None:
    mixed = {"events.jsonl": SourceKinds.mixed_file()}
    assert isinstance(parse_on("events.jsonl", CASE, mixed)[1], CountedCase)
    assert isinstance(parse_on("events.jsonl", {k: v for k, v in CASE.items() if k != "type"}, mixed)[1], CountedCase)
    assert isinstance(parse_on("events.jsonl", TELEMETRY, mixed)[1], Telemetry)
    assert isinstance(parse_on("events.jsonl", CUSTOMER, mixed)[1], Customer)
    assert isinstance(parse_on("events.jsonl", NWS_FEATURE, mixed)[1], HazardAlert)


def test_a_mixed_file_without_alerts_refuses_an_alert_document() -> None:
    no_alerts = {"f": SourceKinds.mixed_file(accepts=("case", "telemetry"))}
    assert parse_on("f", NWS_FEATURE, no_alerts).reason == "type Feature (a GeoJSON alert) is not accepted on source f"
    assert parse_on("f", CUSTOMER, no_alerts).reason == "type customer is not accepted on source f"


# --- telemetry that counts nowhere is said, not dropped ----------------------------------------


def test_telemetry_with_neither_region_nor_model_is_a_dead_letter_not_silently_dropped() -> None:
    bare = {k: v for k, v in TELEMETRY.items() if k not in ("region", "model", "firmware")}
    letter = parse_on("telemetry", bare)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "telemetry counts in no device group: it needs a region, or a model and a firmware"
    assert isinstance(parse_on("telemetry", {**bare, "region": "TX-453"})[1], Telemetry)
    assert isinstance(parse_on("telemetry", {**bare, "model": "R7000", "firmware": "2.1.7"})[1], Telemetry)
