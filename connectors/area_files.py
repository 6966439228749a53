"""Areas from files: a GeoJSON polygon or feature, or a CAP/NWS alert with polygons and circles."""

from __future__ import annotations

from pathlib import Path

import orjson

from forewarn.connectors.cap import parse_alerts
from forewarn.geo import Area

Polygons = list[list[tuple[float, float]]]
Circles = list[tuple[float, float, float]]


def load_area(path: Path) -> tuple[Polygons, Circles]:
    """Polygons (lat, lon rings) and circles from a GeoJSON polygon/feature or a CAP/NWS alert file."""
    raw = path.read_bytes()
    if raw.lstrip()[:1] == b"{":
        doc = orjson.loads(raw)
        geometry = doc.get("geometry", doc) if doc.get("type") == "Feature" else doc
        if geometry and geometry.get("type") in ("Polygon", "MultiPolygon"):
            rings = ([geometry["coordinates"][0]] if geometry["type"] == "Polygon"
                     else [poly[0] for poly in geometry["coordinates"]])
            return [[(lat, lon) for lon, lat in ring] for ring in rings], []
    polygons: Polygons = []
    circles: Circles = []
    for alert in parse_alerts(raw):
        for area in alert.areas:
            polygons.extend([list(ring) for ring in area.polygons])
            circles.extend((c.lat, c.lon, c.radius_km) for c in area.circles)
    if not polygons and not circles:
        raise ValueError(f"{path} holds no polygon or circle: give a GeoJSON Polygon/MultiPolygon or a CAP "
                         "alert with <polygon>/<circle> areas")
    return polygons, circles


def read_area(path: Path) -> Area:
    """The `Area` of a GeoJSON or CAP/NWS file (see `load_area`); ValueError for a bad shape."""
    return Area(*load_area(path))
