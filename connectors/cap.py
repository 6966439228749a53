"""Parse hazard alerts: CAP 1.2 / CAP 1.1 XML ``<alert>`` and api.weather.gov GeoJSON, into `HazardAlert`.

Parsing only: no I/O, no targeting. Bad documents raise `ValueError` naming the element or field at fault.
XML is parsed with the stdlib ElementTree (defusedxml is not installed); any DOCTYPE is refused, so no entity
can be declared and no entity-expansion ("billion laughs") or external-entity attack is possible.
Coordinates are always (lat, lon): CAP writes "lat,lon", GeoJSON writes [lon, lat] and is converted.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from forewarn.hazards import (  # noqa: F401 - re-exported: the parsed records
    MSG_TYPES,
    STATUSES,
    TEST_EVENT_CODES,
    Area,
    Circle,
    HazardAlert,
    Point,
    Reference,
    same_to_fips,
)

CAP_NAMESPACES = ("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1")

def is_alert_document(raw: bytes) -> bool:
    """Whether a raw record looks like a hazard alert: CAP XML, or GeoJSON holding NWS alert features."""
    head = raw.lstrip()[:1]
    if head == b"<":
        return True
    return head == b"{" and (b'"FeatureCollection"' in raw[:200] or b'"Feature"' in raw[:200])


def parse_alerts(data: bytes | str) -> list[HazardAlert]:
    """Sniff the document: XML (one CAP alert) or JSON (a GeoJSON Feature or FeatureCollection)."""
    head = (data.encode() if isinstance(data, str) else data).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return [parse_cap_xml(data)]
    if head in (b"{", b"["):
        return parse_geojson(data)
    raise ValueError("hazard alert is neither XML nor JSON")


# ---------------------------------------------------------------- CAP XML


class _NoDoctype(ET.TreeBuilder):
    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise ValueError("CAP document: a DOCTYPE is not allowed (entity expansion guard)")


def parse_cap_xml(data: bytes | str) -> HazardAlert:
    raw = data.encode() if isinstance(data, str) else data
    if re.search(rb"<!DOCTYPE|<!ENTITY", raw, re.IGNORECASE):
        raise ValueError("CAP document: a DOCTYPE is not allowed (entity expansion guard)")
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(raw)
        root = parser.close()
    except ET.ParseError as exc:
        raise ValueError(f"CAP document is not well-formed XML: {exc}") from exc
    ns, _, tag = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    if tag != "alert":
        raise ValueError(f"CAP document: root element is <{tag}>, expected <alert>")
    if ns not in CAP_NAMESPACES:
        raise ValueError(f"CAP <alert>: unsupported namespace {ns!r}, expected one of {CAP_NAMESPACES}")
    q = f"{{{ns}}}"

    def text(el: ET.Element, name: str, *, required: bool = False) -> str | None:
        child = el.find(q + name)
        value = (child.text or "").strip() if child is not None else ""
        if not value and required:
            raise ValueError(f"CAP <{_local(el.tag)}>: missing required <{name}>")
        return value or None

    def pairs(el: ET.Element, name: str) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for item in el.findall(q + name):
            key, value = text(item, "valueName"), text(item, "value")
            if key and value:
                out[key] = (*out.get(key, ()), value)
        return out

    infos = root.findall(q + "info")
    # Several <info> blocks are usually translations: prefer English, else the first.
    info = next((i for i in infos if (text(i, "language") or "en").lower().startswith("en")), None)
    info = info if info is not None else (infos[0] if infos else None)
    areas: list[Area] = []
    for area in info.findall(q + "area") if info is not None else []:
        polys = [_cap_polygon(p.text or "") for p in area.findall(q + "polygon") if (p.text or "").strip()]
        circles = [_cap_circle(c.text or "") for c in area.findall(q + "circle") if (c.text or "").strip()]
        desc = text(area, "areaDesc") or ""
        areas.append(Area(desc, tuple(polys), tuple(circles), pairs(area, "geocode")))

    def info_field(name: str) -> str | None:
        return text(info, name) if info is not None else None

    return HazardAlert(
        identifier=str(text(root, "identifier", required=True)),
        sender=str(text(root, "sender", required=True)),
        sent=_when(text(root, "sent", required=True), "sent"),
        status=_choice(text(root, "status", required=True), "status", STATUSES),
        msg_type=_choice(text(root, "msgType", required=True), "msgType", MSG_TYPES),
        scope=text(root, "scope"),
        references=_cap_references(text(root, "references") or ""),
        event=info_field("event"),
        event_codes=pairs(info, "eventCode") if info is not None else {},
        severity=info_field("severity"),
        urgency=info_field("urgency"),
        certainty=info_field("certainty"),
        onset=_when_opt(info_field("onset"), "onset"),
        effective=_when_opt(info_field("effective"), "effective"),
        expires=_when_opt(info_field("expires"), "expires"),
        headline=info_field("headline"),
        description=info_field("description"),
        instruction=info_field("instruction"),
        areas=tuple(areas),
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _cap_references(value: str) -> tuple[Reference, ...]:
    refs = []
    for item in value.split():
        parts = item.split(",")
        if len(parts) != 3:
            raise ValueError(f"CAP <references>: {item!r} is not 'sender,identifier,sent'")
        refs.append(Reference(parts[0], parts[1], _when(parts[2], "references sent")))
    return tuple(refs)


def _cap_point(pair: str, where: str) -> Point:
    try:
        lat_s, lon_s = pair.split(",")
        return _checked(float(lat_s), float(lon_s), where)
    except ValueError as exc:
        raise ValueError(f"CAP <{where}>: bad point {pair!r} ({exc})") from exc


def _cap_polygon(value: str) -> tuple[Point, ...]:
    points = [_cap_point(pair, "polygon") for pair in value.split()]
    if points and points[0] != points[-1]:
        points.append(points[0])  # CAP requires a closed ring; close it rather than reject it
    if len(points) < 4:
        raise ValueError(f"CAP <polygon>: needs at least 3 distinct points, got {value!r}")
    return tuple(points)


def _cap_circle(value: str) -> Circle:
    parts = value.split()
    if len(parts) != 2:
        raise ValueError(f"CAP <circle>: expected 'lat,lon radius', got {value!r}")
    lat, lon = _cap_point(parts[0], "circle")
    try:
        radius = float(parts[1])
    except ValueError as exc:
        raise ValueError(f"CAP <circle>: bad radius in {value!r}") from exc
    if radius < 0:
        raise ValueError(f"CAP <circle>: negative radius in {value!r}")
    return Circle(lat, lon, radius)


# ---------------------------------------------------------------- api.weather.gov GeoJSON


def parse_geojson(data: bytes | str | Mapping[str, Any]) -> list[HazardAlert]:
    """An api.weather.gov ``/alerts/active`` FeatureCollection (→ all its alerts) or a single Feature."""
    if not isinstance(data, Mapping):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"alerts GeoJSON is not valid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ValueError("alerts GeoJSON: top level must be an object")
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise ValueError("alerts GeoJSON: FeatureCollection has no 'features' list")
        return [_feature(f) for f in features]
    if kind == "Feature":
        return [_feature(data)]
    raise ValueError(f"alerts GeoJSON: type must be Feature or FeatureCollection, got {kind!r}")


def _feature(feature: Any) -> HazardAlert:
    props = feature.get("properties") if isinstance(feature, Mapping) else None
    if not isinstance(props, Mapping):
        raise ValueError("alerts GeoJSON Feature: missing 'properties' object")

    def req(name: str) -> str:
        value = props.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"alerts GeoJSON Feature: missing or non-string properties.{name}")
        return value

    def opt(name: str) -> str | None:
        value = props.get(name)
        return value if isinstance(value, str) and value else None

    refs = tuple(
        Reference(str(r.get("sender", "")), str(r["identifier"]), _when_opt(r.get("sent"), "references sent"))
        for r in props.get("references") or []
        if isinstance(r, Mapping) and r.get("identifier")
    )
    area = Area(opt("areaDesc") or "", _geojson_polygons(feature.get("geometry")), (), _str_lists(props, "geocode"))
    return HazardAlert(
        identifier=req("id"),
        sender=req("sender"),
        sent=_when(req("sent"), "sent"),
        status=_choice(req("status"), "status", STATUSES),
        msg_type=_choice(req("messageType"), "messageType", MSG_TYPES),
        scope=opt("scope"),
        references=refs,
        event=opt("event"),
        event_codes=_str_lists(props, "eventCode"),
        severity=opt("severity"),
        urgency=opt("urgency"),
        certainty=opt("certainty"),
        onset=_when_opt(opt("onset"), "onset"),
        effective=_when_opt(opt("effective"), "effective"),
        expires=_when_opt(opt("expires"), "expires"),
        headline=opt("headline"),
        description=opt("description"),
        instruction=opt("instruction"),
        areas=(area,),
    )


def _str_lists(props: Mapping[str, Any], name: str) -> dict[str, tuple[str, ...]]:
    value = props.get(name) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"alerts GeoJSON Feature: properties.{name} must be an object of lists")
    return {str(k): tuple(str(v) for v in vs) for k, vs in value.items() if isinstance(vs, list)}


def _geojson_polygons(geometry: Any) -> tuple[tuple[Point, ...], ...]:
    """Outer rings of a Polygon / MultiPolygon, as (lat, lon). NWS alert polygons carry no holes."""
    if geometry is None:
        return ()
    if not isinstance(geometry, Mapping):
        raise ValueError("alerts GeoJSON Feature: geometry must be an object or null")
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    try:
        if kind == "Polygon":
            rings = [coords[0]]
        elif kind == "MultiPolygon":
            rings = [poly[0] for poly in coords]
        else:
            raise ValueError(f"type {kind!r} is not Polygon or MultiPolygon")
        return tuple(tuple(_checked(float(p[1]), float(p[0]), "geometry") for p in ring) for ring in rings)
    except (TypeError, IndexError, KeyError, ValueError) as exc:
        raise ValueError(f"alerts GeoJSON Feature: bad geometry ({exc})") from exc


# ---------------------------------------------------------------- shared helpers


def _checked(lat: float, lon: float, where: str) -> Point:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"{where}: coordinate out of range (lat={lat}, lon={lon})")
    return (lat, lon)


def _choice(value: str | None, name: str, allowed: tuple[str, ...]) -> str:
    if value is None or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _when(value: str | None, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value or "")
    except ValueError as exc:
        raise ValueError(f"{name}: not an ISO 8601 date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"{name}: date-time has no UTC offset: {value!r}")
    return parsed


def _when_opt(value: str | None, name: str) -> datetime | None:
    return _when(value, name) if value else None
