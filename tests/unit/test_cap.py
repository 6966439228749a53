"""CAP 1.2 / CAP 1.1 / api.weather.gov GeoJSON parsing on the real samples in shared/data/cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from forewarn.connectors.cap import Circle, HazardAlert, parse_alerts, parse_cap_xml, parse_geojson, same_to_fips

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "cap"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/cap is absent")

CAP12 = "cap12_xml"
SVR = "CT1261CA1D1864.SevereThunderstormWarning.1261CA1D3740CT.BOXSVRBOX.41a552d3d5af8ca6660387d309fa171e.xml"


def load(sub: str, name: str) -> HazardAlert:
    (alert,) = parse_alerts((DATA / sub / name).read_bytes())
    return alert


@needs_data
def test_local_area_emergency_polygon_and_same() -> None:
    a = load(CAP12, "ipaws-5e7e0fc5023f1930efcf3deb.xml")
    assert (a.identifier, a.sender, a.status, a.msg_type, a.scope) == (
        "402013233923688",
        "402013233923688",
        "Actual",
        "Alert",
        "Public",
    )
    assert a.sent == datetime(2019, 12, 13, 13, 24, 50, tzinfo=timezone(timedelta(hours=-8)))
    assert a.expires == datetime(2019, 12, 13, 22, 24, 50, tzinfo=UTC)
    assert a.event == "Local Area Emergency" and a.event_codes == {"SAME": ("LAE",)}
    assert (a.severity, a.urgency, a.certainty) == ("Extreme", "Immediate", "Observed")
    assert a.headline == "Alert Montgomery - Police Searching for Suspicious Person"
    assert a.description is None and a.onset is None
    (area,) = a.areas
    assert area.description == "Montgomery County" and area.geocodes == {"SAME": ("024031",)}
    (poly,) = area.polygons
    assert len(poly) == 41 and poly[0] == poly[-1] == (39.09930403047015, -77.12967945345733)
    assert all(39.0 < lat < 39.2 and -77.2 < lon < -77.1 for lat, lon in poly)  # Rockville MD, lat first
    assert same_to_fips(area.geocodes["SAME"][0]) == "24031"
    assert a.is_actionable and a.severity_rank() == 4


@needs_data
def test_statewide_civil_emergency() -> None:
    a = load(CAP12, "ipaws-5ea321f39fc226a7b44b6874.xml")
    assert a.event == "Civil Emergency Message" and a.event_codes == {"SAME": ("CEM",)}
    assert a.headline == "IPAWS Message - MI Stay Home Stay Safe Extension 5/15"
    assert a.description is not None and a.description.startswith("From the Governor's Office")
    (area,) = a.areas
    assert area.description == "State of MI" and area.polygons == () and area.geocodes == {"SAME": ("026000",)}
    assert same_to_fips("026000") == "26000"  # CCC 000: the whole state
    assert a.is_actionable and a.severity_rank() == 4


@needs_data
def test_required_monthly_test_is_not_actionable() -> None:
    a = load(CAP12, "ipaws-5e6ddbad023f1930ef6c1a5a.xml")
    assert a.status == "Actual" and a.event == "Required Monthly Test" and a.event_codes == {"SAME": ("RMT",)}
    assert a.onset == a.effective == datetime(2019, 5, 30, 15, 55, tzinfo=UTC)
    assert a.instruction is None  # <instruction></instruction>
    assert a.areas[0].geocodes == {"SAME": ("072115",)}
    assert not a.is_actionable
    assert a.severity_rank() == 3  # Severe/Immediate/Observed, the rank ignores actionability


@needs_data
def test_administrative_message_is_not_actionable() -> None:
    a = load(CAP12, "ipaws-5e6dd964023f1930ef638846.xml")
    assert a.event == "Administrative Message/Follow up Statement" and a.event_codes == {"SAME": ("ADR",)}
    assert a.headline == "ADR Test Message"
    assert a.areas[0].geocodes["SAME"] == ("053011", "041005", "041009", "041051", "041067")
    assert not a.is_actionable and a.severity_rank() == 0  # Unknown/Unknown/Unknown


@needs_data
def test_bare_cancel_with_references_and_no_info() -> None:
    a = load(CAP12, "ipaws-5e6dd9de023f1930ef6548d9.xml")
    assert a.identifier == "AS-NV-58d33e3a-1f9a-4909-9d59-34e90b33b3e8"
    assert a.msg_type == "Cancel" and a.sender == "bbrundage@dps.state.nv.us"
    assert a.event is None and a.areas == () and a.event_codes == {}
    (ref,) = a.references
    assert ref.sender == "bbrundage@dps.state.nv.us"
    assert ref.identifier == "AS-NV-e18921c7-1b35-4a81-9705-42d25c265ddd"
    assert ref.sent == datetime(2019, 4, 18, 18, 2, 32, tzinfo=UTC)
    assert a.is_actionable and a.severity_rank() == 0


@needs_data
def test_tsunami_update_with_circle_and_references() -> None:
    a = load(CAP12, "google-PAAQ-4-mg5a94.xml")
    assert (a.identifier, a.sender, a.msg_type) == ("PAAQ-4-mg5a94", "wcatwc@noaa.gov", "Update")
    assert [r.identifier for r in a.references] == ["PAAQ-1-mg5a94", "PAAQ-2-mg5a94", "PAAQ-3-mg5a94"]
    assert a.references[2].sent == datetime(2013, 1, 5, 10, 17, 31, tzinfo=UTC)
    assert a.sent.utcoffset() == timedelta(0)  # "-00:00"
    (area,) = a.areas
    assert area.description == "95 miles NW of Dixon Entrance, Alaska"
    assert area.circles == (Circle(55.3, -134.9, 0.0),) and area.polygons == ()
    assert (a.urgency, a.certainty) == ("Past", "Unlikely") and a.severity_rank() == 0


@needs_data
def test_nws_cap11_severe_thunderstorm_polygon() -> None:
    a = load("nws_cap11_xml", SVR)
    assert a.identifier.startswith("NOAA-NWS-ALERTS-CT1261CA1D1864.SevereThunderstormWarning")
    assert a.sender == "w-nws.webmaster@noaa.gov" and a.event == "Severe Thunderstorm Warning"
    assert a.event_codes == {"SAME": ("SVR",)}
    assert a.effective == datetime(2021, 12, 12, 3, 21, tzinfo=UTC)
    assert a.expires == datetime(2021, 12, 12, 4, 0, tzinfo=UTC)
    assert a.instruction is not None and a.instruction.startswith("For your protection")
    (area,) = a.areas
    assert area.description == "Hartford; Tolland"
    assert area.geocodes == {"FIPS6": ("009003", "009013"), "UGC": ("CTC003", "CTC013")}
    assert [same_to_fips(c) for c in area.geocodes["FIPS6"]] == ["09003", "09013"]
    (poly,) = area.polygons
    assert len(poly) == 20 and poly[0] == poly[-1] == (42.04, -73.01)
    assert all(41.0 < lat < 42.1 and -73.1 < lon < -72.0 for lat, lon in poly)  # Connecticut, lat first
    assert a.is_actionable and a.severity_rank() == 3


@needs_data
def test_nws_cap11_blizzard_empty_polygon() -> None:
    a = load("nws_cap11_xml", "nws-5c2cf27b1f56885d61654dc47fa411d5.xml")
    assert a.event == "Blizzard Warning" and a.event_codes == {"SAME": ("BZW",)}
    assert (a.severity, a.urgency, a.certainty) == ("Severe", "Expected", "Likely")
    (area,) = a.areas
    assert area.polygons == ()  # <polygon></polygon>
    assert area.geocodes == {"FIPS6": ("027031", "027075"), "UGC": ("MNZ020", "MNZ021")}
    assert a.is_actionable and a.severity_rank() == 3


@needs_data
def test_geojson_flood_watch() -> None:
    (a,) = parse_geojson((DATA / "nws_geojson" / "alerts_active_zone.json").read_bytes())
    assert a.identifier == "NWS-IDP-PROD-3965873-3369046" and a.sender == "w-nws.webmaster@noaa.gov"
    assert (a.status, a.msg_type, a.event) == ("Actual", "Update", "Flood Watch")
    assert (a.severity, a.urgency, a.certainty) == ("Severe", "Future", "Possible")
    assert a.sent == datetime(2019, 12, 20, 21, 34, tzinfo=UTC)
    assert a.expires == datetime(2019, 12, 21, 13, 30, tzinfo=UTC)
    assert [r.identifier for r in a.references] == [
        "NWS-IDP-PROD-3964821-3368352",
        "NWS-IDP-PROD-3965324-3368680",
        "NWS-IDP-PROD-3965155-3368578",
        "NWS-IDP-PROD-3963421-3367361",
    ]
    (area,) = a.areas
    assert area.polygons == ()  # geometry: null
    assert len(area.geocodes["UGC"]) == 11 and "ORZ004" in area.geocodes["UGC"]
    assert len(area.geocodes["SAME"]) == 16 and area.geocodes["SAME"][0] == "041007"
    assert area.description.startswith("North Oregon Coast; Greater Portland Metro Area")
    assert a.is_actionable and a.severity_rank() == 2


@needs_data
def test_geojson_second_file_has_edited_copy() -> None:
    alerts = parse_alerts((DATA / "nws_geojson" / "alerts_active_zone_second.json").read_bytes())
    assert [a.identifier for a in alerts] == ["NWS-IDP-PROD-3965873-3369046", "NWS-IDP-PROD-3965873-001"]
    assert alerts[1].references[0].identifier == "NWS-IDP-PROD-3964821-001"
    assert alerts[0].areas[0].geocodes == alerts[1].areas[0].geocodes


@needs_data
def test_geojson_single_feature_and_polygon_order() -> None:
    collection = orjson.loads((DATA / "nws_geojson" / "alerts_active_zone.json").read_bytes())
    feature = collection["features"][0]
    ring = [[-72.8, 41.6], [-72.5, 41.6], [-72.5, 41.9], [-72.8, 41.6]]
    feature["geometry"] = {"type": "Polygon", "coordinates": [ring]}
    (a,) = parse_geojson(orjson.dumps(feature))
    assert a.areas[0].polygons == (((41.6, -72.8), (41.6, -72.5), (41.9, -72.5), (41.6, -72.8)),)
    feature["geometry"] = {"type": "Point", "coordinates": [-72.8, 41.6]}
    with pytest.raises(ValueError, match="geometry"):
        parse_geojson(feature)


def _cap(body: str, ns: str = "urn:oasis:names:tc:emergency:cap:1.2") -> str:
    return f'<alert xmlns="{ns}">{body}</alert>'


HEAD = "<identifier>X1</identifier><sender>s@x</sender><sent>2024-01-01T00:00:00-05:00</sent>"


def test_minimal_cap_and_info_geometry() -> None:
    body = (
        HEAD + "<status>Exercise</status><msgType>Alert</msgType><scope>Public</scope><info><event>E</event>"
        "<area><areaDesc>A</areaDesc><polygon>41,-72 41,-71 42,-71</polygon><circle>41.5,-72.5 10</circle></area>"
        "</info>"
    )
    a = parse_cap_xml(_cap(body))
    assert a.areas[0].polygons == (((41.0, -72.0), (41.0, -71.0), (42.0, -71.0), (41.0, -72.0)),)  # closed
    assert a.areas[0].circles == (Circle(41.5, -72.5, 10.0),)
    assert not a.is_actionable  # status Exercise
    assert parse_cap_xml(_cap(body, "urn:oasis:names:tc:emergency:cap:1.1")).identifier == "X1"


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("<alert", "not well-formed"),
        ("", "not well-formed"),
        (
            _cap(HEAD + "<status>Actual</status><msgType>Alert</msgType>", "urn:oasis:names:tc:emergency:cap:1.0"),
            "namespace",
        ),
        ("<alert><identifier>X</identifier></alert>", "namespace"),
        ('<feed xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>', "root element"),
        ('<!DOCTYPE alert [<!ENTITY a "aaaa">]>' + _cap(HEAD), "DOCTYPE"),
        (_cap("<sender>s@x</sender><sent>2024-01-01T00:00:00Z</sent><status>Actual</status>"), "identifier"),
        (_cap(HEAD + "<status>Live</status><msgType>Alert</msgType>"), "status"),
        (_cap(HEAD + "<status>Actual</status><msgType>Alert</msgType><references>a,b</references>"), "references"),
        (_cap(HEAD.replace("-05:00", "") + "<status>Actual</status><msgType>Alert</msgType>"), "UTC offset"),
        (
            _cap(
                HEAD + "<status>Actual</status><msgType>Alert</msgType><info><area><areaDesc>A</areaDesc>"
                "<polygon>41,-72 41,-271 42,-71 41,-72</polygon></area></info>"
            ),
            "polygon",
        ),
        (
            _cap(
                HEAD + "<status>Actual</status><msgType>Alert</msgType><info><area><areaDesc>A</areaDesc>"
                "<circle>41,-72</circle></area></info>"
            ),
            "circle",
        ),
    ],
)
def test_bad_cap_raises_value_error(doc: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_cap_xml(doc)


def test_doctype_refused_whatever_the_encoding() -> None:
    laughs = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE alert [<!ENTITY a "x">]><alert>&a;</alert>'
    with pytest.raises(ValueError, match="DOCTYPE"):
        parse_cap_xml(laughs.encode("utf-16"))


def test_bad_geojson_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_geojson(b"{")
    with pytest.raises(ValueError, match="Feature or FeatureCollection"):
        parse_geojson(b'{"type": "Point"}')
    with pytest.raises(ValueError, match=r"properties\.id"):
        parse_geojson(b'{"type": "Feature", "properties": {}}')
    with pytest.raises(ValueError, match="neither XML nor JSON"):
        parse_alerts(b"hello")


def test_same_to_fips_rejects_bad_codes() -> None:
    assert same_to_fips("541005") == "41005"  # P=5: the centre of the county → whole county
    for bad in ("41005", "0410050", "04100a"):
        with pytest.raises(ValueError, match="6 digits"):
            same_to_fips(bad)


def test_severity_rank_table() -> None:
    base = HazardAlert("i", "s", datetime(2024, 1, 1, tzinfo=UTC), "Actual", "Alert")
    cases = {
        ("Extreme", "Immediate", "Observed"): 4,
        ("Extreme", "Expected", "Likely"): 4,
        ("Extreme", "Future", "Possible"): 3,
        ("Severe", "Immediate", "Observed"): 3,
        ("Moderate", "Expected", "Likely"): 2,
        ("Minor", "Immediate", "Observed"): 1,
        ("Minor", "Future", "Likely"): 0,
        ("Extreme", "Past", "Observed"): 0,
        ("Severe", "Immediate", "Unlikely"): 0,
    }
    for (sev, urg, cert), rank in cases.items():
        alert = HazardAlert(**{**base.__dict__, "severity": sev, "urgency": urg, "certainty": cert})
        assert alert.severity_rank() == rank, (sev, urg, cert)
    assert base.severity_rank() == 0
