"""A cap on the distinct regions of a topic: regions beyond it count in one overflow bucket.

A region is whatever string a case carries, so one writer can invent millions; each would
grow the topic's pane and detector state (a share per region, a score per region per pane).
`RegionCap` admits the first `max_regions` regions of a topic; a case from any later new
region still counts, under `OVERFLOW_REGION` (national counts stay whole, and a flood of
invented regions shows up as a spike of the overflow bucket), and the flow writes a dead
letter saying so, so nothing is hidden. Outreach never targets the overflow bucket.

Per-key state (one per topic): a plain set of region names, no closures.

>>> cap = RegionCap(max_regions=2)
>>> [cap.region_for(r) for r in ["TX-453", "CA-037", "TX-453", "NY-061"]]
['TX-453', 'CA-037', 'TX-453', '~overflow']
>>> capped_reason("no_internet", "NY-061", 2)[-39:]
"region 'NY-061' counted under ~overflow"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forewarn.settings import OVERFLOW_REGION

MAX_NAME_TEXT = 80
"""A topic or region name is cut to this many characters in a dead letter's reason."""


@dataclass(slots=True)
class RegionCap:
    """The regions admitted for one topic, at most `max_regions`."""

    max_regions: int
    known: set[str] = field(default_factory=set)

    def __deepcopy__(self, memo: dict[int, Any]) -> RegionCap:
        return RegionCap(self.max_regions, self.known.copy())  # strings are immutable

    def region_for(self, region: str) -> str:
        """The region a case of `region` counts under: itself while there is room, else the overflow bucket."""
        if region in self.known:
            return region
        if len(self.known) < self.max_regions:
            self.known.add(region)
            return region
        return OVERFLOW_REGION


def capped_reason(topic: str, region: str, max_regions: int) -> str:
    """The dead letter's reason for a case counted under the overflow bucket instead of its own region."""
    return (f"region capped: topic {topic[:MAX_NAME_TEXT]!r} already has {max_regions} regions "
            f"(detection.max_regions_per_topic); region {region[:MAX_NAME_TEXT]!r} counted under {OVERFLOW_REGION}")
