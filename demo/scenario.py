"""A seeded generator of a realistic demo scenario: customers, support cases, ground truth.

The scenario is what `forewarn demo`, the tests and the benchmarks replay. It holds a
customer base spread over US county-style regions, a few days of background support
cases with a daily cycle and overdispersed hourly counts, and injected incidents whose
ground truth is known:

* ``regional_outage``: day 2, 14:00–17:00 UTC, ``no_internet`` in one mid-sized region,
  about 10% of its customers call, most in the first hour;
* ``firmware_defect``: day 3, 08:00–14:00 UTC, ``wifi_drops`` among customers with an
  R7000 on firmware 2.1.7 in every region, about 8% of them call, ramping up over 2 hours;
* ``quiet_control``: day 3, 18:00–24:00 UTC, nothing injected: nothing should fire;
* ``severe_thunderstorm`` (in `Scenario.hazards`, its alerts in `Scenario.alerts`): day 1, about
  19:30–21:00 UTC, an NWS Severe Thunderstorm Warning over part of another region, an Update that
  moves and extends it, then a Cancel; the customers inside either polygon are in its path.

Only `random.Random(seed)` draws numbers, so a seed gives the same scenario byte for byte.
"""

from __future__ import annotations

import json
import math
import random
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from forewarn.demo.scenario_data import (
    CASE_CHANNELS,
    FALLBACK_OFFICE,
    FIRMWARE_TEXTS,
    HOURLY_PROFILE,
    MODELS,
    OUTAGE_TEXTS,
    REGIONS,
    SPANISH_STATES,
    STORM_TEXTS,
    TEXTS,
    TOPIC_SHARES,
    WEATHER_OFFICES,
    Picker,
    RegionInfo,
    poisson,
    region_sizes,
)
from forewarn.hazards import STATE_FIPS
from forewarn.records import NATIONAL, Customer, OptOut, Product, rfc3339, utc

DEFECT_MODEL, DEFECT_FIRMWARE = "R7000", "2.1.7"
OUTAGE_SHARE, DEFECT_SHARE = 0.10, 0.08
_HOUR = 3600


@dataclass(frozen=True)
class GroundTruth:
    """One injected incident (or the quiet control period) and who was hit.

    `case_ids` are the ids of the injected cases, so a benchmark can tell them apart
    from background cases of the same topic and region.
    """

    name: str
    topic: str | None
    region: str
    segment: dict[str, str]
    start: datetime
    end: datetime
    affected_customer_ids: frozenset[str]
    case_ids: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, with ids sorted."""
        return {
            "name": self.name,
            "topic": self.topic,
            "region": self.region,
            "segment": dict(self.segment),
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "affected_customer_ids": sorted(self.affected_customer_ids),
            "case_ids": sorted(self.case_ids),
        }


LatLon = tuple[float, float]


@dataclass(frozen=True)
class HazardTruth:
    """A hazard episode: the ids of its alerts (Alert, Update, Cancel, in order), their polygons
    as (lat, lon) rings, and the customers located inside any of them: those in the path."""

    name: str
    event: str
    region: str
    start: datetime
    end: datetime
    alert_ids: tuple[str, ...]
    polygons: tuple[tuple[LatLon, ...], ...]
    affected_customer_ids: frozenset[str]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, with ids sorted."""
        return {
            "name": self.name, "event": self.event, "region": self.region,
            "start": rfc3339(self.start), "end": rfc3339(self.end), "alert_ids": list(self.alert_ids),
            "polygons": [[list(p) for p in ring] for ring in self.polygons],
            "affected_customer_ids": sorted(self.affected_customer_ids),
        }  # fmt: skip


@dataclass
class Scenario:
    """A generated scenario: customers, case records sorted by time, and the ground truth.

    Hazard alerts (NWS GeoJSON Features, sorted by time) and their truth are kept apart from the
    cases and their truth: the cases are what `forewarn detect` and the benchmarks replay.
    """

    customers: list[Customer]
    events: list[dict[str, Any]]
    truths: list[GroundTruth]
    start: datetime
    end: datetime
    regions: list[RegionInfo] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    hazards: list[HazardTruth] = field(default_factory=list)

    def truth(self, name: str) -> GroundTruth:
        """The ground truth called `name`."""
        for truth in self.truths:
            if truth.name == name:
                return truth
        raise KeyError(name)

    def hazard(self, name: str) -> HazardTruth:
        """The hazard episode called `name`."""
        for hazard in self.hazards:
            if hazard.name == name:
                return hazard
        raise KeyError(name)

    def write(self, directory: Path) -> None:
        """Write ``customers.jsonl``, ``events.jsonl``, ``alerts.jsonl`` and ``truth.json`` into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "customers.jsonl", "w", encoding="utf-8") as out:
            for customer in self.customers:
                out.write(_dumps(customer.model_dump(mode="json")) + "\n")
        with open(directory / "events.jsonl", "w", encoding="utf-8") as out:
            for event in self.events:
                out.write(_dumps(event) + "\n")
        with open(directory / "alerts.jsonl", "w", encoding="utf-8") as out:
            for alert in self.alerts:
                out.write(_dumps(alert) + "\n")
        truth = {
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "truths": [t.to_dict() for t in self.truths],
            "hazards": [h.to_dict() for h in self.hazards],
        }
        (directory / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


_TOPIC = Picker(TOPIC_SHARES)
_CHANNEL = Picker(CASE_CHANNELS)
_MODEL = Picker(tuple((m.name, m.share) for m in MODELS))
_FIRMWARE = {m.name: Picker(m.firmwares) for m in MODELS}
_LOTS = {m.name: m.lots for m in MODELS}


def _make_customers(
    rng: random.Random, table: tuple[RegionInfo, ...], sizes: list[int], start: datetime
) -> list[Customer]:
    """Build customers; fields are generated valid, so models are constructed without re-validation."""
    assignment = [r for r, size in enumerate(sizes) for _ in range(size)]
    rng.shuffle(assignment)
    all_codes = [code for info in REGIONS for code in info.area_codes]
    used: dict[str, int] = {}
    made: list[Customer] = []
    for i, r in enumerate(assignment, start=1):
        info = table[r]
        code = next((c for c in (*info.area_codes, *all_codes) if used.get(c, 0) < 10_000), None)
        if code is None:
            raise ValueError("too many customers for the fictional phone number ranges")
        line = (100 + used.get(code, 0)) % 10_000  # 555-0100..0199 (fictional) come first
        used[code] = used.get(code, 0) + 1
        models = [_MODEL(rng)]
        if rng.random() < 0.25:
            second = _MODEL(rng)
            if second != models[0]:
                models.append(second)
        products = tuple(
            Product.model_construct(
                model=m,
                firmware=_FIRMWARE[m](rng),
                lot=rng.choice(_LOTS[m]),
                installed=(start - timedelta(days=rng.randint(30, 1400))).date(),
            )
            for m in models
        )
        spanish = 0.25 if info.code[:2] in SPANISH_STATES else 0.06
        made.append(
            Customer.model_construct(
                id=f"CU-{i:05d}",
                phone=f"+1{code}555{line:04d}",
                email=f"c{i:05d}@example.com",
                preferred_channel="sms" if rng.random() < 0.65 else "email",
                region=info.code,
                lat=round(info.lat + rng.gauss(0, 0.12), 4),
                lon=round(info.lon + rng.gauss(0, 0.12), 4),
                timezone=info.timezone,
                language="es" if rng.random() < spanish else "en",
                products=products,
                opt_out=OptOut.model_construct(sms=rng.random() < 0.03, email=rng.random() < 0.02),
            )
        )
    return made


# An event before ids are assigned: (ts, customer, topic, text, channel, attachments, truth name).
_Raw = tuple[datetime, Customer, str, str, str, int, str | None]


def _case(
    rng: random.Random,
    ts: datetime,
    customer: Customer,
    topic: str,
    texts: tuple[str, ...],
    truth: str | None = None,
) -> _Raw:
    attachments = 1 if rng.random() < 0.15 else 0
    return (ts, customer, topic, rng.choice(texts), _CHANNEL(rng), attachments, truth)


def _background(
    rng: random.Random,
    table: tuple[RegionInfo, ...],
    members: list[list[Customer]],
    start: datetime,
    days: int,
    cases_per_day: int,
) -> list[_Raw]:
    """Cases per region and hour: Poisson with a gamma(20) factor, shaped by the local hour."""
    mean = sum(HOURLY_PROFILE) / len(HOURLY_PROFILE)
    profile = [x / mean for x in HOURLY_PROFILE]
    per_customer_hour = cases_per_day / 24 / sum(len(m) for m in members)
    zones = [zoneinfo.ZoneInfo(info.timezone) for info in table]
    raws: list[_Raw] = []
    for hour in range(days * 24):
        t0 = start + timedelta(hours=hour)
        for r, zone in enumerate(zones):
            local = t0.astimezone(zone).hour
            lam = per_customer_hour * len(members[r]) * profile[local] * rng.gammavariate(20, 1 / 20)
            for _ in range(poisson(rng, lam)):
                ts = t0 + timedelta(seconds=rng.randrange(_HOUR))
                topic = _TOPIC(rng)
                raws.append(_case(rng, ts, rng.choice(members[r]), topic, TEXTS[topic]))
    return raws


def _front_loaded(rng: random.Random) -> float:
    """Seconds into the outage: exponential, mean 40 min, cut at 3 h (~78% in the first hour)."""
    offset = rng.expovariate(1 / 2400)
    return offset if offset < 3 * _HOUR else _front_loaded(rng)


def _ramp(rng: random.Random) -> float:
    """Seconds into the defect window: a rate rising linearly over 2 h, then flat to 6 h."""
    return 2 * _HOUR * math.sqrt(rng.random()) if rng.random() < 0.2 else (2 + 4 * rng.random()) * _HOUR


def _inject(rng: random.Random, name: str, topic: str, texts: tuple[str, ...], chosen: list[Customer],
            t0: datetime, offset: Callable[[random.Random], float]) -> list[_Raw]:  # fmt: skip
    """One case per chosen customer at `t0` plus an offset drawn from `offset`."""
    return [_case(rng, t0 + timedelta(seconds=int(offset(rng))), c, topic, texts, name) for c in chosen]


def _has_defect(customer: Customer) -> bool:
    return any(p.model == DEFECT_MODEL and p.firmware == DEFECT_FIRMWARE for p in customer.products)


_NWS = "w-nws.webmaster@noaa.gov"
_STORM_EVENT = "Severe Thunderstorm Warning"
_FIPS_OF_STATE = {postal: fips for fips, postal in STATE_FIPS.items()}


def covers(ring: tuple[LatLon, ...], lat: float, lon: float) -> bool:
    """Whether a (lat, lon) ring holds the point, its edges included (as geo targeting counts them).

    Exact rational arithmetic, so a customer on an edge is decided the same way every time.

    >>> square = ((30.0, -98.0), (30.0, -97.0), (31.0, -97.0), (31.0, -98.0))
    >>> covers(square, 30.5, -97.5), covers(square, 30.0, -97.5), covers(square, 31.5, -97.5)
    (True, True, False)
    """
    lats, lons = [p[0] for p in ring], [p[1] for p in ring]
    if not (min(lats) <= lat <= max(lats) and min(lons) <= lon <= max(lons)):
        return False  # float comparisons are exact: only points in the bounding box need fractions
    y, x = Fraction(lat), Fraction(lon)
    inside = False
    for (lat1, lon1), (lat2, lon2) in zip(ring, ring[1:] + ring[:1], strict=True):
        y1, x1, y2, x2 = Fraction(lat1), Fraction(lon1), Fraction(lat2), Fraction(lon2)
        if ((x2 - x1) * (y - y1) == (y2 - y1) * (x - x1)
                and min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2)):
            return True
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _box(lat0: float, lon0: float, south: float, north: float, west: float, east: float,
         lean: float) -> tuple[LatLon, ...]:
    """A storm-based warning polygon: a parallelogram leaning `lean` degrees east at its north edge,
    vertices at NWS precision (two decimals), counter-clockwise from the south-west corner."""
    corners = ((south, west), (south, east), (north, east + lean), (north, west + lean))
    return tuple((round(lat0 + dlat, 2), round(lon0 + dlon, 2)) for dlat, dlon in corners)


def _local_text(ts: datetime) -> str:
    """ "November 16 at 1:40PM CST", as NWS headlines write times."""
    return f"{ts:%B} {ts.day} at {ts.hour % 12 or 12}:{ts:%M%p} {ts:%Z}"


def _storm_feature(rng: random.Random, info: RegionInfo, office: tuple[str, str], kind: str, sent: datetime,
                   expires: datetime, ring: tuple[LatLon, ...], earlier: list[dict[str, Any]]) -> dict[str, Any]:
    """One api.weather.gov alert Feature shaped like the real ones (see ../shared/data/cap/nws_geojson)."""
    zone = zoneinfo.ZoneInfo(info.timezone)
    local_sent, local_expires = sent.astimezone(zone), expires.astimezone(zone)
    urn = f"urn:oid:2.49.0.1.840.0.{rng.getrandbits(160):040x}.001.1"
    state, county = info.code.split("-")
    wfo, sender_name = office
    action = {"Alert": "NEW", "Update": "EXB", "Cancel": "CAN"}[kind]  # EXB: extended in area and time
    begins = f"{sent:%y%m%dT%H%MZ}" if kind == "Alert" else "000000T0000Z"
    if kind == "Cancel":
        headline = f"The {_STORM_EVENT} for {info.name} is cancelled by {sender_name}"
        description, threat = STORM_TEXTS["cancel"], ("Minor", "Observed", "Past")
    else:
        verb = "issued" if kind == "Alert" else "updated"
        headline = (f"{_STORM_EVENT} {verb} {_local_text(local_sent)} until {_local_text(local_expires)} "
                    f"by {sender_name}")
        description, threat = (f"The National Weather Service has {verb} a\n\n* {_STORM_EVENT} for...\n"
                               f"{info.name}...\n\n* Until {local_expires.hour % 12 or 12}{local_expires:%M %p %Z}.\n\n"
                               f"{STORM_TEXTS['hazard']}",
                               ("Severe", "Observed", "Immediate"))
    severity, certainty, urgency = threat
    return {
        "id": f"https://api.weather.gov/alerts/{urn}",
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[lon, lat] for lat, lon in (*ring, ring[0])]]},
        "properties": {
            "@id": f"https://api.weather.gov/alerts/{urn}", "@type": "wx:Alert", "id": urn,
            "areaDesc": info.name,
            "geocode": {"SAME": [f"0{_FIPS_OF_STATE.get(state, '00')}{county}"], "UGC": [f"{state}C{county}"]},
            "affectedZones": [f"https://api.weather.gov/zones/county/{state}C{county}"],
            "references": [{"@id": e["id"], "identifier": e["properties"]["id"], "sender": _NWS,
                            "sent": e["properties"]["sent"]} for e in earlier],
            "sent": local_sent.isoformat(), "effective": local_sent.isoformat(),
            "onset": local_sent.isoformat(), "expires": local_expires.isoformat(), "ends": local_expires.isoformat(),
            "status": "Actual", "messageType": kind, "category": "Met", "severity": severity,
            "certainty": certainty, "urgency": urgency, "event": _STORM_EVENT, "sender": _NWS,
            "senderName": sender_name, "headline": headline, "description": description,
            "instruction": None if kind == "Cancel" else STORM_TEXTS["instruction"],
            "response": "AllClear" if kind == "Cancel" else "Shelter",
            "eventCode": {"SAME": ["SVR"], "NationalWeatherService": ["SVW"]},
            "parameters": {
                "AWIPSidentifier": [f"SVR{wfo}" if kind == "Alert" else f"SVS{wfo}"],
                "maxWindGust": ["60 MPH"], "maxHailSize": ["1.00"],
                "VTEC": [f"/O.{action}.K{wfo}.SV.W.0042.{begins}-{expires:%y%m%dT%H%MZ}/"],
                "eventEndingTime": [local_expires.isoformat()],
            },
        },
    }  # fmt: skip


def _storm(rng: random.Random, table: tuple[RegionInfo, ...], people: list[Customer], avoid: int,
           start: datetime) -> tuple[list[dict[str, Any]], HazardTruth]:
    """A Severe Thunderstorm Warning on day 1 over part of a region other than the outage's: the
    Alert, an Update that moves the polygon east and extends it, and a Cancel.

    Day 1 and another region keep its warnings at least a day away from the outage's and the
    defect's customers, so a per-customer daily cap cannot let it change their counts.
    """
    choices = [r for r, info in enumerate(table) if info.code in WEATHER_OFFICES and r != avoid]
    r = rng.choice(choices) if choices else 0
    info = table[r]
    office = WEATHER_OFFICES.get(info.code, FALLBACK_OFFICE)
    sent = start + timedelta(hours=19, minutes=rng.randrange(20, 45))
    south, north, lean = -0.04 + rng.uniform(-0.02, 0.02), 0.22 + rng.uniform(-0.02, 0.02), rng.uniform(0.02, 0.06)
    first = _box(info.lat, info.lon, south, north, -0.42, 0.0, lean)
    moved = _box(info.lat, info.lon, south + 0.02, north + 0.02, -0.14, 0.3, lean)
    steps = (("Alert", sent, sent + timedelta(minutes=45), first),
             ("Update", sent + timedelta(minutes=28), sent + timedelta(minutes=95), moved),
             ("Cancel", sent + timedelta(minutes=70), sent + timedelta(minutes=95), moved))
    alerts: list[dict[str, Any]] = []
    for kind, at, expires, ring in steps:
        alerts.append(_storm_feature(rng, info, office, kind, at, expires, ring, alerts[:]))
    rings = (first, moved)
    inside = frozenset(c.id for c in people if c.lat is not None and c.lon is not None
                       and any(covers(ring, c.lat, c.lon) for ring in rings))
    truth = HazardTruth("severe_thunderstorm", _STORM_EVENT, info.code, sent, steps[-1][1],
                        tuple(a["properties"]["id"] for a in alerts), rings, inside)
    return alerts, truth


def generate(
    seed: int = 7,
    customers: int = 20_000,
    regions: int = 50,
    days: int = 3,
    start: datetime = datetime(2026, 11, 16, tzinfo=UTC),
    cases_per_day: int = 2_400,
) -> Scenario:
    """Generate the demo scenario for `seed`; the same arguments give the same scenario.

    >>> s = generate(seed=1, customers=2_000, regions=10, days=3)
    >>> len(s.customers), len(s.events), [len(t.affected_customer_ids) for t in s.truths]
    (2000, 7362, [31, 14, 0])
    """
    if not 1 <= regions <= len(REGIONS):
        raise ValueError(f"regions must be between 1 and {len(REGIONS)}")
    if days < 3:
        raise ValueError("days must be at least 3: the incidents fall on days 2 and 3")
    if customers < 10 * regions:
        raise ValueError("need at least 10 customers per region")
    rng = random.Random(seed)
    start = utc(start)
    table = REGIONS[:regions]
    people = _make_customers(rng, table, region_sizes(customers, regions), start)
    members: list[list[Customer]] = [[] for _ in table]
    index = {info.code: r for r, info in enumerate(table)}
    for c in people:
        members[index[c.region]].append(c)
    raws = _background(rng, table, members, start, days, cases_per_day)

    # Regional outage: a mid-sized region (never the largest), ~10% of it calls, front-loaded.
    lo = min(max(1, regions // 6), regions - 1)
    outage_r = rng.randrange(lo, max(lo + 1, regions // 3))
    o_start = start + timedelta(days=1, hours=14)
    o_hit = rng.sample(members[outage_r], round(OUTAGE_SHARE * len(members[outage_r])))
    raws += _inject(rng, "regional_outage", "no_internet", OUTAGE_TEXTS, o_hit, o_start, _front_loaded)

    # Firmware defect: R7000 on 2.1.7 in every region, ~8% of them call, ramping up over 2 h.
    f_start = start + timedelta(days=2, hours=8)
    eligible = [c for c in people if _has_defect(c)]
    f_hit = rng.sample(eligible, round(DEFECT_SHARE * len(eligible)))
    raws += _inject(rng, "firmware_defect", "wifi_drops", FIRMWARE_TEXTS, f_hit, f_start, _ramp)

    raws.sort(key=lambda raw: raw[0])
    events: list[dict[str, Any]] = []
    case_ids: dict[str, set[str]] = {"regional_outage": set(), "firmware_defect": set()}
    for n, (ts, c, topic, text, channel, attachments, truth) in enumerate(raws, start=1):
        case_id = f"C-{n:06d}"
        events.append({
            "type": "case", "id": case_id, "ts": rfc3339(ts), "customer_id": c.id, "topic": topic,
            "region": c.region, "text": text, "channel": channel, "attachments": attachments,
        })  # fmt: skip
        if truth is not None:
            case_ids[truth].add(case_id)

    code = table[outage_r].code
    truths = [
        GroundTruth("regional_outage", "no_internet", code, {"region": code}, o_start,
                    o_start + timedelta(hours=3), frozenset(c.id for c in o_hit),
                    frozenset(case_ids["regional_outage"])),
        GroundTruth("firmware_defect", "wifi_drops", NATIONAL,
                    {"model": DEFECT_MODEL, "firmware": DEFECT_FIRMWARE}, f_start,
                    f_start + timedelta(hours=6), frozenset(c.id for c in f_hit),
                    frozenset(case_ids["firmware_defect"])),
        GroundTruth("quiet_control", None, NATIONAL, {}, start + timedelta(days=2, hours=18),
                    start + timedelta(days=3), frozenset()),
    ]  # fmt: skip
    # Drawn last, so the customers, cases and truths above are what they were before the storm was added.
    alerts, storm = _storm(rng, table, people, outage_r, start)
    return Scenario(people, events, truths, start, start + timedelta(days=days), list(table), alerts, [storm])
