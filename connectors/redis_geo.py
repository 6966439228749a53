"""The Redis GEO pre-filter of `RedisCustomerIndex.in_area`: a superset of the customers in an area.

One GEOSEARCH per shape, all in one pipelined round trip: BYBOX over a polygon's bounds,
BYRADIUS for a circle, both with a margin so that no customer in the shape is missed. The
index then fetches the candidates' docs and applies the exact test of `forewarn.geo.Area`
to each doc's own lat/lon.
"""

from __future__ import annotations

import math

import shapely

from forewarn.connectors.redis_keys import RedisClient
from forewarn.geo import EARTH_RADIUS_M, GEO_MAX_LAT, Area, haversine_m

MARGIN = 1.01
MARGIN_KM = 0.1
"""The GEO pre-filter asks for 1% + 100 m more than the exact shape needs: never too few."""


def bounding_box(geometry: shapely.Geometry) -> tuple[float, float, float, float]:
    """(centre lon, centre lat, width km, height km) of a GEOSEARCH BYBOX covering `geometry`.

    Redis measures a point's east-west offset along the point's own latitude, where a degree
    is widest nearest the equator: the width is taken there, so the box holds every point of
    the bounds. 1% + 100 m of margin on both sides absorbs rounding and geohash quantisation.

    >>> from forewarn.geo import polygon_geometry
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


def searchable(lat: float) -> tuple[float, float]:
    """A search centre Redis accepts (within ±GEO_MAX_LAT) and how many km it moved.

    >>> searchable(10.0), searchable(-90.0)[0] == -GEO_MAX_LAT
    ((10.0, 0.0), True)
    """
    clamped = max(-GEO_MAX_LAT, min(GEO_MAX_LAT, lat))
    return clamped, EARTH_RADIUS_M * math.radians(abs(lat - clamped)) / 1000


def geo_candidates(client: RedisClient, key: str, area: Area) -> set[str]:
    """The members of the GEO set `key` the pre-filter returns for `area`: a superset of those in it."""
    if area.is_empty:
        return set()
    pipe = client.pipeline(transaction=False)
    for geometry in area.polygons:
        lon, lat, width, height = bounding_box(geometry)
        lat, moved_km = searchable(lat)
        pipe.geosearch(key, longitude=lon, latitude=lat, width=width, height=height + 2 * moved_km, unit="km")
    for circle in area.circles:
        lat, moved_km = searchable(circle.lat)
        pipe.geosearch(key, longitude=circle.lon, latitude=lat,
                       radius=circle.radius_km * MARGIN + MARGIN_KM + moved_km, unit="km")
    ids: set[str] = set()
    for members in pipe.execute():
        ids.update(m.decode() if isinstance(m, bytes) else m for m in members)
    return ids
