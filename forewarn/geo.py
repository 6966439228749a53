"""Areas on the map: polygons and circles, and the exact test of whether a point lies in one.

A CAP `<area>` carries polygons ("lat,lon lat,lon ...") and circles ("lat,lon radius_km"); a
customer is in the area when its point lies in any of them. Everything here takes (lat, lon)
in degrees, in that order, like CAP; shapely is fed (x=lon, y=lat).

`CustomerIndex.in_area` answers with this one test, whatever the index (the Redis index
pre-filters with GEO searches first, the in-process one scans), so every index agrees:

- a point exactly on a polygon's edge or vertex is inside ("covers", not "contains"): for a
  warning, reaching a customer on the county line beats missing them;
- a circle holds the points whose great-circle distance to its centre is <= radius (haversine
  on Redis's Earth radius);
- points without lat/lon, or beyond latitude ±`GEO_MAX_LAT` (outside Redis GEO), never match;
- polygons are planar in (lon, lat) degrees, must not cross the antimeridian, and a
  self-intersecting ring is repaired with `shapely.make_valid`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import shapely
from numpy.typing import NDArray

from forewarn.hazards import Circle
from forewarn.records import Customer

EARTH_RADIUS_M = 6372797.560856
"""The radius Redis GEO computes distances with (geohash_helper.c)."""

GEO_MAX_LAT = 85.05112878
"""Redis GEO cannot store latitudes beyond this (the Web Mercator limit): no area reaches past it."""

LatLon = tuple[float, float]


def checked_circle(circle: Circle | tuple[float, float, float]) -> Circle:
    """A circle (the shared `forewarn.hazards.Circle`) with its centre and radius checked."""
    lat, lon, radius_km = circle
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not radius_km >= 0:
        raise ValueError(f"bad circle {tuple(circle)}: need -90 <= lat <= 90, -180 <= lon <= 180, radius_km >= 0")
    return Circle(lat, lon, radius_km)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres, the formula Redis GEO uses.

    >>> round(haversine_m(0, 0, 1, 0))
    111226
    """
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _haversine_m_many(lat: float, lon: float, lats: NDArray[np.float64],
                      lons: NDArray[np.float64]) -> NDArray[np.float64]:
    phi1, phi2 = math.radians(lat), np.radians(lats)
    a = (np.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lons - lon) / 2) ** 2)
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a))), dtype=np.float64)


def polygon_geometry(polygon: Sequence[LatLon]) -> shapely.Geometry:
    """A prepared shapely geometry for a (lat, lon) ring; closing the ring is optional.

    >>> g = polygon_geometry([(0, 0), (0, 1), (1, 1), (1, 0)])
    >>> g.geom_type, g.bounds
    ('Polygon', (0.0, 0.0, 1.0, 1.0))
    """
    points = [(float(lon), float(lat)) for lat, lon in polygon]
    if len(set(points)) < 3:
        raise ValueError("a polygon needs at least 3 distinct points")
    for lon, lat in points:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"point out of range: lat={lat}, lon={lon}")
    geometry = shapely.Polygon(points)
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    shapely.prepare(geometry)
    return geometry


class Area:
    """The union of polygons and circles, with the exact point test (see the module doc).

    Shapes are checked when the area is built (ValueError for a bad one).

    >>> area = Area([[(0, 0), (0, 1), (1, 1), (1, 0)]], [(10, 10, 1.0)])
    >>> area.contains([0.5, 1.0, 10.0, 2.0, None], [0.5, 1.0, 10.0, 2.0, 0.5]).tolist()
    [True, True, True, False, False]
    >>> Area().is_empty
    True
    """

    def __init__(self, polygons: Iterable[Sequence[LatLon]] = (),
                 circles: Iterable[Circle | tuple[float, float, float]] = ()) -> None:
        self.polygons = [polygon_geometry(p) for p in polygons]
        self.circles = [checked_circle(c) for c in circles]

    @property
    def is_empty(self) -> bool:
        """No shape at all: nobody is in the area."""
        return not self.polygons and not self.circles

    def contains(self, lats: Sequence[float | None], lons: Sequence[float | None]) -> NDArray[np.bool_]:
        """Which of these points are in the area (None coordinates never are)."""
        lat = np.array([np.nan if v is None else v for v in lats], dtype=np.float64)
        lon = np.array([np.nan if v is None else v for v in lons], dtype=np.float64)
        located = ~(np.isnan(lat) | np.isnan(lon))
        located[located] &= np.abs(lat[located]) <= GEO_MAX_LAT
        inside = np.zeros(len(lat), dtype=bool)
        if not located.any():
            return inside
        la, lo = lat[located], lon[located]
        hit = np.zeros(len(la), dtype=bool)
        for geometry in self.polygons:
            hit |= shapely.intersects_xy(geometry, lo, la)  # intersects a point == covers it
        for circle in self.circles:
            hit |= _haversine_m_many(circle.lat, circle.lon, la, lo) <= circle.radius_km * 1000
        inside[located] = hit
        return inside

    def filter(self, customers: Sequence[Customer]) -> list[Customer]:
        """The customers whose own lat/lon is in the area, in the order given."""
        mask = self.contains([c.lat for c in customers], [c.lon for c in customers])
        return [c for c, keep in zip(customers, mask, strict=True) if keep]


__all__ = [
    "EARTH_RADIUS_M",
    "GEO_MAX_LAT",
    "Area",
    "Circle",
    "LatLon",
    "checked_circle",
    "haversine_m",
    "polygon_geometry",
]
