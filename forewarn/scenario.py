"""A seeded generator of a realistic demo scenario: customers, support cases, ground truth.

The scenario is what `forewarn demo`, the tests and the benchmarks replay. It holds a
customer base spread over US county-style regions, a few days of background support
cases with a daily cycle and overdispersed hourly counts, and injected incidents whose
ground truth is known:

* ``regional_outage``: day 2, 14:00–17:00 UTC, ``no_internet`` in one mid-sized region,
  about 10% of its customers call, most in the first hour;
* ``firmware_defect``: day 3, 08:00–14:00 UTC, ``wifi_drops`` among customers with an
  R7000 on firmware 2.1.7 in every region, about 8% of them call, ramping up over 2 hours;
* ``quiet_control``: day 3, 18:00–24:00 UTC, nothing injected: nothing should fire.

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
from pathlib import Path
from typing import Any

from forewarn.records import NATIONAL, Customer, OptOut, Product, rfc3339, utc
from forewarn.scenario_data import (
    CASE_CHANNELS,
    FIRMWARE_TEXTS,
    HOURLY_PROFILE,
    MODELS,
    OUTAGE_TEXTS,
    REGIONS,
    SPANISH_STATES,
    TEXTS,
    TOPIC_SHARES,
    Picker,
    RegionInfo,
    poisson,
    region_sizes,
)

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


@dataclass
class Scenario:
    """A generated scenario: customers, case records sorted by time, and the ground truth."""

    customers: list[Customer]
    events: list[dict[str, Any]]
    truths: list[GroundTruth]
    start: datetime
    end: datetime
    regions: list[RegionInfo] = field(default_factory=list)

    def truth(self, name: str) -> GroundTruth:
        """The ground truth called `name`."""
        for truth in self.truths:
            if truth.name == name:
                return truth
        raise KeyError(name)

    def write(self, directory: Path) -> None:
        """Write ``customers.jsonl``, ``events.jsonl`` and ``truth.json`` into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "customers.jsonl", "w", encoding="utf-8") as out:
            for customer in self.customers:
                out.write(_dumps(customer.model_dump(mode="json")) + "\n")
        with open(directory / "events.jsonl", "w", encoding="utf-8") as out:
            for event in self.events:
                out.write(_dumps(event) + "\n")
        truth = {
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "truths": [t.to_dict() for t in self.truths],
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
    return Scenario(people, events, truths, start, start + timedelta(days=days), list(table))
