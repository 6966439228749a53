"""Polygon and circle targeting (`CustomerIndex.in_area`) against a real Redis, checked against the in-memory scan."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

import pytest
import redis

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.geo import EARTH_RADIUS_M, Area, Circle, LatLon
from forewarn.records import Customer

pytestmark = pytest.mark.integration

M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180

# A county-like polygon around Austin, TX: a straight west edge, a slanted east edge (lat, lon).
COUNTY = [(30.10, -98.00), (30.60, -98.00), (30.62, -97.62), (30.40, -97.40), (30.05, -97.55)]
# A U shape: its bounding box holds the notch between the arms, which is outside the polygon.
U_SHAPE = [(40.0, -100.0), (40.4, -100.0), (40.4, -99.9), (40.1, -99.9), (40.1, -99.6),
           (40.4, -99.6), (40.4, -99.5), (40.0, -99.5)]


Pair = tuple[RedisCustomerIndex, InMemoryCustomerIndex]


def shifted(lat: float, lon: float, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    """The point `north_m` north and `east_m` east of (lat, lon), in a local flat approximation."""
    return (lat + north_m / M_PER_DEG_LAT, lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat))))


def across_edge(a: tuple[float, float], b: tuple[float, float], metres: float) -> tuple[float, float]:
    """The midpoint of edge a-b moved `metres` to the right of a->b (negative: to the left)."""
    lat, lon = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    north = (b[0] - a[0]) * M_PER_DEG_LAT
    east = (b[1] - a[1]) * M_PER_DEG_LAT * math.cos(math.radians(lat))
    length = math.hypot(north, east)
    # The right-hand normal of (east, north) is (north, -east).
    return shifted(lat, lon, north_m=-east / length * metres, east_m=north / length * metres)


def customer(cid: str, lat: float | None, lon: float | None) -> Customer:
    return Customer.model_validate({"id": cid, "region": "R-1", "lat": lat, "lon": lon})


@pytest.fixture
def indexes(redis_url: str) -> Iterator[Pair]:
    client = redis.Redis.from_url(redis_url)
    yield RedisCustomerIndex(client, prefix="geo", batch_size=7), InMemoryCustomerIndex()
    client.close()


def load(indexes: Pair, customers: list[Customer]) -> None:
    for index in indexes:
        index.upsert(customers)


def ids(found: Iterator[Customer]) -> list[str]:
    result = [c.id for c in found]
    assert len(result) == len(set(result)), "a customer came out twice"
    return sorted(result)


def both(indexes: Pair, polygons: Sequence[Sequence[LatLon]] = (),
         circles: Sequence[Circle | tuple[float, float, float]] = ()) -> list[str]:
    """The ids found in the area by the Redis index, after checking that the scan agrees."""
    area = Area(polygons, circles)
    from_redis = ids(indexes[0].in_area(area))
    from_memory = ids(indexes[1].in_area(area))
    assert from_redis == from_memory
    return from_redis


def test_50_m_inside_and_outside_each_edge_of_a_county(indexes: Pair) -> None:
    # The ring is listed clockwise (seen from above, lon east), so the inside is to the right.
    ring = COUNTY
    people = []
    for i, (a, b) in enumerate(zip(ring, ring[1:] + ring[:1], strict=True)):
        people.append(customer(f"in-{i}", *across_edge(a, b, 50)))
        people.append(customer(f"out-{i}", *across_edge(a, b, -50)))
    people.append(customer("centre", 30.35, -97.75))
    people.append(customer("vertex", *COUNTY[2]))  # exactly on the boundary: covered
    people.append(customer("far", 32.0, -96.0))
    load(indexes, people)

    found = both(indexes, polygons=[COUNTY])
    assert found == sorted(["centre", "vertex", *(f"in-{i}" for i in range(len(ring)))])
    assert ids(indexes[0].in_area(Area([COUNTY]), batch_size=2)) == found
    # Listing the ring the other way round, or closed, changes nothing.
    assert ids(indexes[0].in_area(Area([[*reversed(COUNTY), COUNTY[-1]]]))) == found


def test_concave_polygon_drops_the_box_candidates_outside_it(
        indexes: Pair) -> None:
    people = [
        customer("left-arm", 40.3, -99.95),
        customer("right-arm", 40.3, -99.55),
        customer("base", 40.05, -99.75),
        customer("notch", 40.3, -99.75),  # inside the bounding box, outside the U
        customer("notch-edge-out", *shifted(40.1, -99.75, north_m=50)),
        customer("notch-edge-in", *shifted(40.1, -99.75, north_m=-50)),
    ]
    load(indexes, people)
    assert both(indexes, polygons=[U_SHAPE]) == ["base", "left-arm", "notch-edge-in", "right-arm"]
    assert {"notch", "notch-edge-out"} <= indexes[0].candidate_ids(Area([U_SHAPE]))


def test_circle_by_distance_from_its_centre(indexes: Pair) -> None:
    lat, lon, radius_km = 45.0, -93.0, 10.0
    people = [
        customer("north-in", *shifted(lat, lon, north_m=radius_km * 1000 - 50)),
        customer("north-out", *shifted(lat, lon, north_m=radius_km * 1000 + 50)),
        customer("east-in", *shifted(lat, lon, east_m=radius_km * 1000 - 50)),
        customer("east-out", *shifted(lat, lon, east_m=radius_km * 1000 + 50)),
        customer("centre", lat, lon),
    ]
    load(indexes, people)
    assert both(indexes, circles=[(lat, lon, radius_km)]) == ["centre", "east-in", "north-in"]
    assert both(indexes, circles=[Circle(lat, lon, 0.0)]) == ["centre"]


def test_several_polygons_and_circles_each_customer_once(
        indexes: Pair) -> None:
    people = [
        customer("county", 30.35, -97.75),
        customer("u", 40.3, -99.95),
        customer("circle-only", 45.0, -93.0),
        customer("everywhere", 30.36, -97.76),  # in the county and in the circle around it
        customer("nowhere", 35.0, -90.0),
    ]
    load(indexes, people)
    found = both(indexes, polygons=[COUNTY, U_SHAPE], circles=[(45.0, -93.0, 1.0), (30.36, -97.76, 5.0)])
    assert found == ["circle-only", "county", "everywhere", "u"]
    assert both(indexes) == []


def test_customers_without_a_usable_location_never_match(
        indexes: Pair) -> None:
    world = [(-89.0, -179.0), (89.0, -179.0), (89.0, 179.0), (-89.0, 179.0)]
    people = [
        customer("located", 10.0, 10.0),
        customer("no-location", None, None),
        customer("lat-only", 10.0, None),
        customer("lon-only", None, 10.0),
        customer("polar", 86.0, 10.0),  # beyond Redis GEO: kept in the index, never targeted
        customer("arctic", 84.0, 10.0),
    ]
    load(indexes, people)
    assert both(indexes, polygons=[world]) == ["arctic", "located"]
    # A centre beyond Redis GEO's reach still finds the customers within reach.
    assert both(indexes, circles=[(86.0, 10.0, 500.0)]) == ["arctic"]
    assert both(indexes, polygons=[[(83.0, 0.0), (89.0, 0.0), (89.0, 20.0), (83.0, 20.0)]]) == ["arctic"]


def test_redis_and_scan_agree_on_random_shapes_everywhere(
        indexes: Pair) -> None:
    """The GEO pre-filter never drops a customer, at any latitude (box width, margins)."""
    rng = random.Random(3)
    centres = [(30.3, -97.7), (64.8, -147.7), (-33.9, 151.2), (0.2, 32.6), (78.0, 15.6), (-54.8, -68.3)]
    people = []
    shapes = []
    for k, (lat, lon) in enumerate(centres):
        half_deg = 0.4
        ring = [(lat + half_deg * math.sin(t) * rng.uniform(0.3, 1.0),
                 lon + half_deg * math.cos(t) * rng.uniform(0.3, 1.0) / math.cos(math.radians(lat)))
                for t in (2 * math.pi * i / 9 for i in range(9))]
        shapes.append(ring)
        for i in range(300):
            people.append(customer(f"c{k}-{i}", lat + rng.uniform(-0.6, 0.6),
                                   lon + rng.uniform(-0.6, 0.6) / math.cos(math.radians(lat))))
    load(indexes, people)
    total = 0
    for k, ring in enumerate(shapes):
        found = both(indexes, polygons=[ring])
        assert found and all(f.startswith(f"c{k}-") for f in found)
        total += len(found)
    assert 0 < total < len(people)
    assert both(indexes, polygons=shapes, circles=[(lat, lon, 20.0) for lat, lon in centres])


def test_area_and_segment_together(indexes: Pair) -> None:
    people = [Customer.model_validate({"id": cid, "region": region, "lat": lat, "lon": lon,
                                       "products": [{"model": model, "firmware": "1.0"}]})
              for cid, region, model, (lat, lon) in [("a", "R-1", "R7000", (30.35, -97.75)),
                                                     ("b", "R-2", "R7000", (30.36, -97.76)),
                                                     ("c", "R-1", "X20", (30.34, -97.74)),
                                                     ("d", "R-1", "R7000", (35.0, -90.0))]]
    load(indexes, people)
    for index in indexes:
        assert ids(index.in_area(Area([COUNTY]), {"region": "R-1", "model": "R7000"})) == ["a"]
        assert ids(index.in_area(Area([COUNTY]), {"model": "R7000", "firmware": "1.0"}, batch_size=1)) == ["a", "b"]
        assert ids(index.in_area(Area([COUNTY]), {})) == ["a", "b", "c"]
        with pytest.raises(ValueError, match="unknown attribute 'colour'"):
            index.in_area(Area([COUNTY]), {"colour": "red"})


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="3 distinct"):
        Area([[(1.0, 1.0), (2.0, 2.0), (1.0, 1.0)]])
    with pytest.raises(ValueError, match="out of range"):
        Area([[(91.0, 1.0), (2.0, 2.0), (3.0, 1.0)]])
    with pytest.raises(ValueError, match="bad circle"):
        Area(circles=[(1.0, 1.0, -1.0)])
