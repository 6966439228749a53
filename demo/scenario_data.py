"""Fixed tables behind the demo scenario (regions, device models, topics, case texts) and
the small seeded sampling helpers `forewarn.demo.scenario` draws with.

Everything here is constant data or a pure function of a `random.Random`, so a seed
alone decides the generated scenario.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from itertools import accumulate
from typing import NamedTuple


class RegionInfo(NamedTuple):
    """A region: a county-style code ("TX-453"), its center, IANA zone and area codes."""

    code: str
    name: str
    lat: float
    lon: float
    timezone: str
    area_codes: tuple[str, ...]


_ET, _CT, _MT, _PT = "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"

REGIONS: tuple[RegionInfo, ...] = (
    RegionInfo("CA-037", "Los Angeles, CA", 34.05, -118.24, _PT, ("213", "310", "323", "818")),
    RegionInfo("IL-031", "Cook, IL", 41.88, -87.63, _CT, ("312", "773", "708")),
    RegionInfo("TX-201", "Harris, TX", 29.76, -95.37, _CT, ("713", "281", "832")),
    RegionInfo("AZ-013", "Maricopa, AZ", 33.45, -112.07, "America/Phoenix", ("602", "480", "623")),
    RegionInfo("CA-073", "San Diego, CA", 32.72, -117.16, _PT, ("619", "858")),
    RegionInfo("CA-059", "Orange, CA", 33.72, -117.83, _PT, ("714", "949")),
    RegionInfo("FL-086", "Miami-Dade, FL", 25.76, -80.19, _ET, ("305", "786")),
    RegionInfo("TX-113", "Dallas, TX", 32.78, -96.80, _CT, ("214", "469")),
    RegionInfo("NY-047", "Kings, NY", 40.65, -73.95, _ET, ("718", "347")),
    RegionInfo("CA-065", "Riverside, CA", 33.95, -117.40, _PT, ("951",)),
    RegionInfo("NY-081", "Queens, NY", 40.73, -73.79, _ET, ("929",)),
    RegionInfo("WA-033", "King, WA", 47.61, -122.33, _PT, ("206", "425")),
    RegionInfo("NV-003", "Clark, NV", 36.17, -115.14, _PT, ("702", "725")),
    RegionInfo("CA-071", "San Bernardino, CA", 34.11, -117.29, _PT, ("909",)),
    RegionInfo("TX-439", "Tarrant, TX", 32.76, -97.33, _CT, ("817", "682")),
    RegionInfo("TX-029", "Bexar, TX", 29.42, -98.49, _CT, ("210", "726")),
    RegionInfo("FL-011", "Broward, FL", 26.12, -80.14, _ET, ("954", "754")),
    RegionInfo("CA-085", "Santa Clara, CA", 37.34, -121.89, _PT, ("408", "669")),
    RegionInfo("MI-163", "Wayne, MI", 42.33, -83.05, "America/Detroit", ("313", "734")),
    RegionInfo("TX-453", "Travis, TX", 30.27, -97.74, _CT, ("512", "737")),
    RegionInfo("NY-061", "New York, NY", 40.78, -73.97, _ET, ("212", "646")),
    RegionInfo("PA-101", "Philadelphia, PA", 39.95, -75.17, _ET, ("215", "267")),
    RegionInfo("CA-001", "Alameda, CA", 37.80, -122.27, _PT, ("510",)),
    RegionInfo("MA-017", "Middlesex, MA", 42.49, -71.39, _ET, ("781", "978")),
    RegionInfo("CA-067", "Sacramento, CA", 38.58, -121.49, _PT, ("916", "279")),
    RegionInfo("NY-005", "Bronx, NY", 40.84, -73.87, _ET, ("917",)),
    RegionInfo("FL-099", "Palm Beach, FL", 26.71, -80.05, _ET, ("561",)),
    RegionInfo("NY-103", "Suffolk, NY", 40.88, -72.85, _ET, ("631", "934")),
    RegionInfo("FL-057", "Hillsborough, FL", 27.95, -82.46, _ET, ("813", "656")),
    RegionInfo("FL-095", "Orange, FL", 28.54, -81.38, _ET, ("407", "689")),
    RegionInfo("OH-049", "Franklin, OH", 39.96, -83.00, _ET, ("614", "380")),
    RegionInfo("MN-053", "Hennepin, MN", 44.98, -93.27, _CT, ("612", "952")),
    RegionInfo("UT-035", "Salt Lake, UT", 40.76, -111.89, _MT, ("801", "385")),
    RegionInfo("NC-119", "Mecklenburg, NC", 35.23, -80.84, _ET, ("704", "980")),
    RegionInfo("OH-035", "Cuyahoga, OH", 41.50, -81.69, _ET, ("216", "440")),
    RegionInfo("PA-003", "Allegheny, PA", 40.44, -79.99, _ET, ("412", "878")),
    RegionInfo("NC-183", "Wake, NC", 35.78, -78.64, _ET, ("919", "984")),
    RegionInfo("VA-059", "Fairfax, VA", 38.85, -77.31, _ET, ("703", "571")),
    RegionInfo("TX-085", "Collin, TX", 33.19, -96.57, _CT, ("972", "945")),
    RegionInfo("MI-125", "Oakland, MI", 42.66, -83.38, "America/Detroit", ("248", "947")),
    RegionInfo("CO-031", "Denver, CO", 39.74, -104.99, _MT, ("303", "720")),
    RegionInfo("WI-079", "Milwaukee, WI", 43.04, -87.91, _CT, ("414",)),
    RegionInfo("TN-157", "Shelby, TN", 35.15, -90.05, _CT, ("901",)),
    RegionInfo("TN-037", "Davidson, TN", 36.16, -86.78, _CT, ("615", "629")),
    RegionInfo("MO-189", "St. Louis, MO", 38.63, -90.44, _CT, ("314", "636")),
    RegionInfo("OR-051", "Multnomah, OR", 45.52, -122.68, _PT, ("503", "971")),
    RegionInfo("GA-121", "Fulton, GA", 33.75, -84.39, _ET, ("404", "678")),
    RegionInfo("IN-097", "Marion, IN", 39.77, -86.16, "America/Indiana/Indianapolis", ("317", "463")),
    RegionInfo("KY-111", "Jefferson, KY", 38.25, -85.76, "America/Kentucky/Louisville", ("502",)),
    RegionInfo("OK-109", "Oklahoma, OK", 35.47, -97.52, _CT, ("405", "572")),
    RegionInfo("NM-001", "Bernalillo, NM", 35.08, -106.65, _MT, ("505",)),
    RegionInfo("LA-071", "Orleans, LA", 29.95, -90.07, _CT, ("504",)),
    RegionInfo("MD-031", "Montgomery, MD", 39.14, -77.20, _ET, ("301", "240")),
    RegionInfo("HI-003", "Honolulu, HI", 21.31, -157.86, "Pacific/Honolulu", ("808",)),
    RegionInfo("AK-020", "Anchorage, AK", 61.22, -149.90, "America/Anchorage", ("907",)),
    RegionInfo("NE-055", "Douglas, NE", 41.26, -95.94, _CT, ("402", "531")),
    RegionInfo("ID-001", "Ada, ID", 43.62, -116.20, "America/Boise", ("208", "986")),
    RegionInfo("SC-045", "Greenville, SC", 34.85, -82.40, _ET, ("864",)),
    RegionInfo("AL-073", "Jefferson, AL", 33.52, -86.80, _CT, ("205", "659")),
    RegionInfo("KS-173", "Sedgwick, KS", 37.69, -97.34, _CT, ("316",)),
    RegionInfo("IA-153", "Polk, IA", 41.59, -93.62, _CT, ("515",)),
    RegionInfo("AR-119", "Pulaski, AR", 34.75, -92.29, _CT, ("501",)),
    RegionInfo("CT-001", "Fairfield, CT", 41.18, -73.19, _ET, ("203", "475")),
    RegionInfo("NJ-003", "Bergen, NJ", 40.96, -74.07, _ET, ("201", "551")),
)
"""Populous US counties, roughly largest first; a scenario takes the first N."""

SPANISH_STATES = frozenset({"TX", "CA", "FL", "AZ", "NM", "NV"})
"""States where the scenario gives more customers Spanish as their language."""


class ModelInfo(NamedTuple):
    """A device model: its share of products, firmwares with shares, and its lots."""

    name: str
    share: float
    firmwares: tuple[tuple[str, float], ...]
    lots: tuple[str, ...]


def _lots(prefix: int) -> tuple[str, ...]:
    return tuple(f"L-{prefix}{11 + i}" for i in range(8))


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("R7000", 0.30, (("2.1.7", 0.25), ("2.1.5", 0.45), ("2.0.9", 0.30)), _lots(22)),
    ModelInfo("R6400", 0.25, (("1.0.4.128", 0.5), ("1.0.4.102", 0.35), ("1.0.2.94", 0.15)), _lots(23)),
    ModelInfo("AX50", 0.20, (("3.2.1", 0.6), ("3.1.8", 0.4)), _lots(24)),
    ModelInfo("X20", 0.15, (("20.4.2", 0.7), ("20.3.9", 0.3)), _lots(25)),
    ModelInfo("N300", 0.10, (("0.9.33", 0.55), ("0.9.31", 0.45)), _lots(26)),
)
"""Device models; firmware strings and lots are unique per model, so each implies its model."""

TOPIC_SHARES: tuple[tuple[str, float], ...] = (
    ("no_internet", 0.22),
    ("wifi_drops", 0.20),
    ("slow_speed", 0.18),
    ("billing", 0.20),
    ("tv_signal", 0.10),
    ("account_access", 0.10),
)

CASE_CHANNELS: tuple[tuple[str, float], ...] = (
    ("phone", 0.40),
    ("chat", 0.25),
    ("email", 0.15),
    ("app", 0.20),
)

HOURLY_PROFILE: tuple[float, ...] = (
    0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.4, 0.7, 1.0, 1.25, 1.4, 1.45,
    1.5, 1.55, 1.6, 1.6, 1.55, 1.5, 1.4, 1.3, 1.15, 0.95, 0.65, 0.4,
)  # fmt: skip
"""Relative case volume by local hour of day (normalized to mean 1 by the generator)."""

TEXTS: dict[str, tuple[str, ...]] = {
    "no_internet": (
        "internet is down, modem lights blinking red",
        "no internet connection since this morning",
        "cannot get online at all, router says no WAN",
        "my connection dropped and has not come back",
        "internet stopped working, restarted modem twice",
    ),
    "wifi_drops": (
        "wifi keeps disconnecting every few minutes",
        "devices lose wifi randomly throughout the day",
        "wireless signal drops in the evening",
        "laptop keeps falling off the wifi network",
    ),
    "slow_speed": (
        "speeds are much slower than my plan",
        "internet very slow, speed test shows 5 Mbps",
        "video calls keep freezing, connection sluggish",
        "downloads crawl in the evenings",
    ),
    "billing": (
        "charged twice on my last bill",
        "question about a late fee on my statement",
        "my promotional rate ended without notice",
        "need to update the card used for autopay",
        "bill is higher than last month",
    ),
    "tv_signal": (
        "tv shows no signal on several channels",
        "picture keeps pixelating on live tv",
        "set-top box says signal lost",
    ),
    "account_access": (
        "cannot log in to my account",
        "password reset email never arrives",
        "account locked after too many attempts",
        "two-factor code not received",
    ),
}
"""Background case texts by topic."""

OUTAGE_TEXTS: tuple[str, ...] = (
    "internet went out completely about an hour ago",
    "whole house offline, modem online light is off",
    "no internet and neighbours say theirs is down too",
    "service dropped suddenly, all lights red on the modem",
    "is there an outage in my area? nothing connects",
)
"""Texts of the injected regional outage cases."""

FIRMWARE_TEXTS: tuple[str, ...] = (
    "wifi drops constantly since the router updated",
    "R7000 keeps dropping wifi after last night's update",
    "router reboots and wifi disappears every half hour",
    "after the firmware update my wifi cuts out",
    "wireless keeps disconnecting on my R7000",
)
"""Texts of the injected firmware defect cases."""


class Picker:
    """Weighted choice from a fixed table, one `random()` draw per pick."""

    def __init__(self, items: tuple[tuple[str, float], ...]) -> None:
        self.names = [name for name, _ in items]
        self.cum = list(accumulate(weight for _, weight in items))

    def __call__(self, rng: random.Random) -> str:
        return self.names[min(bisect(self.cum, rng.random() * self.cum[-1]), len(self.names) - 1)]


def region_sizes(customers: int, regions: int) -> list[int]:
    """Zipf-like customer counts, largest first: a 20% floor spread evenly, the rest as 1/rank."""
    floor = customers // (5 * regions)
    rest = customers - floor * regions
    weights = [1.0 / (rank + 1) for rank in range(regions)]
    total = sum(weights)
    exact = [rest * w / total for w in weights]
    sizes = [int(x) for x in exact]
    by_remainder = sorted(range(regions), key=lambda i: (sizes[i] - exact[i], i))
    for i in by_remainder[: rest - sum(sizes)]:
        sizes[i] += 1
    return [floor + s for s in sizes]


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: Knuth's method for small means, a rounded normal above 30."""
    if lam >= 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


WEATHER_OFFICES: dict[str, tuple[str, str]] = {
    "IL-031": ("LOT", "NWS Chicago IL"),
    "TX-201": ("HGX", "NWS Houston/Galveston TX"),
    "FL-086": ("MFL", "NWS Miami FL"),
    "TX-113": ("FWD", "NWS Fort Worth TX"),
    "TX-439": ("FWD", "NWS Fort Worth TX"),
    "TX-029": ("EWX", "NWS Austin/San Antonio TX"),
    "FL-011": ("MFL", "NWS Miami FL"),
    "TX-453": ("EWX", "NWS Austin/San Antonio TX"),
}
"""Regions where a November severe thunderstorm is plausible, with the NWS office that would warn them
(its identifier, as in VTEC and AWIPS ids, and its sender name)."""

FALLBACK_OFFICE = ("LOX", "NWS Los Angeles/Oxnard CA")
"""The office of the first region (Los Angeles), for scenarios too small to hold any of the above."""

STORM_TEXTS: dict[str, str] = {
    "instruction": "For your protection move to an interior room on the lowest floor of a building.",
    "hazard": "HAZARD...60 mph wind gusts and quarter size hail.\n\nSOURCE...Radar indicated.\n\n"
              "IMPACT...Expect damage to roofs, siding, trees and power lines.",
    "cancel": "The storm which prompted the warning has weakened below severe limits, and no longer poses "
              "an immediate threat to life or property. Therefore, the warning has been cancelled. "
              "Gusty winds and heavy rain are still possible with this thunderstorm.",
}
"""Wording of the demo's Severe Thunderstorm Warning, after real NWS warnings and statements."""
