"""Hazard alerts as the rest of Forewarn sees them (CAP 1.1/1.2 and api.weather.gov semantics).

`connectors/cap.py` parses documents into these records; `outreach/hazards.py` turns them into
forecast incidents. Coordinates are always (lat, lon).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

#: SAME event codes of tests, demos and administrative traffic: never a real hazard to warn customers about.
#: RMT/RWT Required Monthly/Weekly Test, NPT National Periodic Test, NAT National Audible Test, NST National
#: Silent Test, DMO Practice/Demo Warning, ADR Administrative Message, NMN Network Message Notification.
TEST_EVENT_CODES = frozenset({"RMT", "RWT", "NPT", "NAT", "NST", "DMO", "ADR", "NMN"})
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")

Point = tuple[float, float]  # (lat, lon)


class Reference(NamedTuple):
    sender: str
    identifier: str
    sent: datetime | None


class Circle(NamedTuple):
    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True)
class Area:
    description: str
    polygons: tuple[tuple[Point, ...], ...] = ()  # closed rings of (lat, lon)
    circles: tuple[Circle, ...] = ()
    geocodes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # e.g. SAME, FIPS6, UGC


@dataclass(frozen=True)
class HazardAlert:
    identifier: str
    sender: str
    sent: datetime
    status: str  # Actual / Exercise / System / Test / Draft
    msg_type: str  # Alert / Update / Cancel / Ack / Error
    scope: str | None = None
    references: tuple[Reference, ...] = ()
    event: str | None = None
    event_codes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # e.g. {"SAME": ("SVR",)}
    severity: str | None = None
    urgency: str | None = None
    certainty: str | None = None
    onset: datetime | None = None
    effective: datetime | None = None
    expires: datetime | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    areas: tuple[Area, ...] = ()

    @property
    def is_actionable(self) -> bool:
        """Status Actual, a real message type (not Ack/Error), and no test event code (`TEST_EVENT_CODES`)."""
        codes = {c.upper() for values in self.event_codes.values() for c in values}
        return self.status == "Actual" and self.msg_type not in ("Ack", "Error") and not codes & TEST_EVENT_CODES

    def severity_rank(self) -> int:
        """Ordinal 0–4 from severity × urgency × certainty.

        Start from severity: Extreme 4, Severe 3, Moderate 2, Minor 1, Unknown/missing 1. Lower it one step
        (once) when the threat is not yet firm: urgency Future/Unknown or certainty Possible/Unknown. It is 0
        when the threat is over or not expected (urgency Past, certainty Unlikely) or the alert has no info.
        So Extreme/Immediate/Observed → 4, Severe/Expected/Likely → 3, Severe/Future/Possible → 2.
        """
        if self.severity is None and self.urgency is None and self.certainty is None:
            return 0
        if self.urgency == "Past" or self.certainty == "Unlikely":
            return 0
        rank = {"Extreme": 4, "Severe": 3, "Moderate": 2, "Minor": 1}.get(self.severity or "", 1)
        if self.urgency in ("Future", "Unknown", None) or self.certainty in ("Possible", "Unknown", None):
            rank -= 1
        return max(0, min(4, rank))


def same_to_fips(code: str) -> str:
    """A SAME (or CAP FIPS6) location code "PSSCCC" → the 5-digit county FIPS "SSCCC".

    P is the county subdivision: 0 the whole county, 1–9 a ninth of it (1 NW, 2 N, 3 NE, 4 W, 5 centre, 6 E,
    7 SW, 8 S, 9 SE); it is dropped, so a part-county alert maps to its whole county. CCC "000" means the whole
    state (SS000 is returned; callers match it as a state prefix).

    >>> same_to_fips("024031")
    '24031'
    >>> same_to_fips("009003")
    '09003'
    """
    code = code.strip()
    if len(code) != 6 or not code.isdigit():
        raise ValueError(f"SAME code must be 6 digits PSSCCC, got {code!r}")
    return code[1:]



HazardStatus = Literal["opened", "updated", "cancelled", "expired"]


@dataclass(frozen=True)
class HazardIncident:
    """A forecast incident: one hazard through its alerts, updates and cancellation."""

    id: str
    status: HazardStatus
    alert: HazardAlert
    first_sent: datetime


STATE_FIPS = {
    "01": "AL", "02": "AK", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT", "10": "DE", "11": "DC",
    "12": "FL", "13": "GA", "15": "HI", "16": "ID", "17": "IL", "18": "IN", "19": "IA", "20": "KS", "21": "KY",
    "22": "LA", "23": "ME", "24": "MD", "25": "MA", "26": "MI", "27": "MN", "28": "MS", "29": "MO", "30": "MT",
    "31": "NE", "32": "NV", "33": "NH", "34": "NJ", "35": "NM", "36": "NY", "37": "NC", "38": "ND", "39": "OH",
    "40": "OK", "41": "OR", "42": "PA", "44": "RI", "45": "SC", "46": "SD", "47": "TN", "48": "TX", "49": "UT",
    "50": "VT", "51": "VA", "53": "WA", "54": "WV", "55": "WI", "56": "WY", "72": "PR",
}
"""State FIPS code -> postal abbreviation, for region codes written like "TX-453"."""

RegionFormat = Literal["fips", "state-county"]


def county_regions(alert: HazardAlert, region_format: RegionFormat) -> set[str]:
    """The county region codes an alert's SAME/FIPS6 geocodes name, in the index's own format.

    >>> area = Area("Travis", geocodes={"SAME": ("048453",)})
    >>> alert = HazardAlert("X", "nws", datetime(2026, 11, 20), "Actual", "Alert", areas=(area,))
    >>> county_regions(alert, "state-county"), county_regions(alert, "fips")
    ({'TX-453'}, {'48453'})
    """
    regions = set()
    for area in alert.areas:
        for name in ("SAME", "FIPS6"):
            for code in area.geocodes.get(name, ()):
                fips = same_to_fips(code)
                if region_format == "fips":
                    regions.add(fips)
                elif fips[:2] in STATE_FIPS:
                    regions.add(f"{STATE_FIPS[fips[:2]]}-{fips[2:]}")
    return regions
