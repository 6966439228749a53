"""Geo targeting: the customers whose location falls inside alert polygons and circles.

A CAP `<area>` carries polygons ("lat,lon lat,lon ...") and circles ("lat,lon radius_km"); a
customer is targeted when its point lies in any of them. Everything here takes (lat, lon) in
degrees, in that order, like CAP; shapely is fed (x=lon, y=lat).

- `RedisCustomerIndex`: one GEOSEARCH per shape pre-filters candidates (BYBOX over the
  polygon's bounds, BYRADIUS for a circle, both with a margin), the candidates' docs are
  fetched in pipelined batches and the exact test runs on the doc's own lat/lon.
- any other `CustomerIndex` (the in-memory one): a scan of every customer (`segment({})`).

Both paths apply the same exact test to the same stored lat/lon, so they agree:
- a point exactly on a polygon's edge or vertex is inside ("covers", not "contains"): for a
  warning, reaching a customer on the county line beats missing them;
- a circle holds the points whose great-circle distance to its centre is <= radius (haversine
  on Redis's Earth radius);
- customers without lat/lon, or beyond latitude ±85.05112878 (outside Redis GEO), never match;
- polygons are planar in (lon, lat) degrees, must not cross the antimeridian, and a
  self-intersecting ring is repaired with `shapely.make_valid`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import shapely
from numpy.typing import NDArray

from forewarn.connectors.redis_index import GEO_MAX_LAT, RedisCustomerIndex
from forewarn.hazards import Circle
from forewarn.interfaces import CustomerIndex
from forewarn.records import Customer

EARTH_RADIUS_M = 6372797.560856
"""The radius Redis GEO computes distances with (geohash_helper.c)."""

MARGIN = 1.01
MARGIN_KM = 0.1
"""The GEO pre-filter asks for 1% + 100 m more than the exact shape needs: never too few."""

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


def bounding_box(geometry: shapely.Geometry) -> tuple[float, float, float, float]:
    """(centre lon, centre lat, width km, height km) of a GEOSEARCH BYBOX covering `geometry`.

    Redis measures a point's east-west offset along the point's own latitude, where a degree
    is widest nearest the equator: the width is taken there, so the box holds every point of
    the bounds. 1% + 100 m of margin on both sides absorbs rounding and geohash quantisation.

    >>> lon, lat, w, h = bounding_box(polygon_geometry([(30, -98), (30, -97), (31, -97), (31, -98)]))
    >>> lon, lat, round(w, 1), round(h, 1)
    (-97.5, 30.5, 97.5, 112.5)
    """
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    c_lon, c_lat = (min_lon + max_lon) / 2, (min_lat + max_lat) / 2
    widest_lat = 0.0 if min_lat <= 0 <= max_lat else min(abs(min_lat), abs(max_lat))
    half_width_m = haversine_m(widest_lat, c_lon, widest_lat, max_lon)
    half_height_m = EARTH_RADIUS_M * math.radians(max_lat - c_lat)
    return (c_lon, c_lat,
            2 * (half_width_m / 1000 * MARGIN + MARGIN_KM), 2 * (half_height_m / 1000 * MARGIN + MARGIN_KM))


class Area:
    """The union of polygons and circles, with the exact point test (see the module doc)."""

    def __init__(self, polygons: Iterable[Sequence[LatLon]] = (),
                 circles: Iterable[Circle | tuple[float, float, float]] = ()) -> None:
        self.polygons = [polygon_geometry(p) for p in polygons]
        self.circles = [checked_circle(c) for c in circles]

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
        mask = self.contains([c.lat for c in customers], [c.lon for c in customers])
        return [c for c, keep in zip(customers, mask, strict=True) if keep]


def candidate_ids(index: RedisCustomerIndex, area: Area) -> set[str]:
    """The ids the Redis GEO pre-filter returns for `area`: a superset of the customers in it."""
    pipe = index.client.pipeline(transaction=False)
    key = f"{index.prefix}:geo"
    for geometry in area.polygons:
        lon, lat, width, height = bounding_box(geometry)
        lat, moved_km = _searchable(lat)
        pipe.geosearch(key, longitude=lon, latitude=lat, width=width, height=height + 2 * moved_km, unit="km")
    for circle in area.circles:
        lat, moved_km = _searchable(circle.lat)
        pipe.geosearch(key, longitude=circle.lon, latitude=lat,
                       radius=circle.radius_km * MARGIN + MARGIN_KM + moved_km, unit="km")
    ids: set[str] = set()
    for members in pipe.execute():
        ids.update(m.decode() if isinstance(m, bytes) else m for m in members)
    return ids


def _searchable(lat: float) -> tuple[float, float]:
    """A search centre Redis accepts (within ±GEO_MAX_LAT) and how many km it moved."""
    clamped = max(-GEO_MAX_LAT, min(GEO_MAX_LAT, lat))
    return clamped, EARTH_RADIUS_M * math.radians(abs(lat - clamped)) / 1000


def customers_in_area(index: CustomerIndex, polygons: Iterable[Sequence[LatLon]] = (),
                      circles: Iterable[Circle | tuple[float, float, float]] = (), *,
                      batch_size: int = 1_000) -> Iterator[Customer]:
    """Every customer of `index` inside any of the polygons or circles, each once, in batches."""
    area = Area(polygons, circles)
    if not area.polygons and not area.circles:
        return iter(())
    if isinstance(index, RedisCustomerIndex):
        return _redis_area(index, area, batch_size)
    return _scan_area(index, area, batch_size)


def customers_in_polygon(index: CustomerIndex, polygon: Sequence[LatLon], *,
                         batch_size: int = 1_000) -> Iterator[Customer]:
    """Every customer of `index` inside (or on the edge of) one (lat, lon) polygon."""
    return customers_in_area(index, [polygon], batch_size=batch_size)


def _redis_area(index: RedisCustomerIndex, area: Area, batch_size: int) -> Iterator[Customer]:
    ids = sorted(candidate_ids(index, area))
    for start in range(0, len(ids), batch_size):
        found = [c for c in index.get_many(ids[start:start + batch_size]) if c is not None]
        yield from area.filter(found)


def _scan_area(index: CustomerIndex, area: Area, batch_size: int) -> Iterator[Customer]:
    batch: list[Customer] = []
    for customer in index.segment({}):
        if customer.lat is None or customer.lon is None:
            continue
        batch.append(customer)
        if len(batch) >= batch_size:
            yield from area.filter(batch)
            batch = []
    if batch:
        yield from area.filter(batch)


__all__ = [
    "Area",
    "Circle",
    "bounding_box",
    "candidate_ids",
    "checked_circle",
    "customers_in_area",
    "customers_in_polygon",
    "haversine_m",
    "polygon_geometry",
]
