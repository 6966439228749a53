"""Hand-made panes for driving a TopicDetector, shared by the detector test modules.

Steady traffic is 1 case per pane in each of 20 regions; `DAY0` is the pane of a midnight,
so pane offsets from it are clock times.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.records import PaneCases, Spike, WindowVerdict

SLIDE = timedelta(minutes=15)
PER_DAY = 96
DAY0 = pane_index(datetime(2026, 11, 16, tzinfo=UTC), SLIDE)  # a midnight, so pane offsets are clock times
REGIONS = [f"R{i:02d}" for i in range(20)]


def steady(counts: dict[str, int] | None = None) -> dict[str, PaneCases]:
    """One pane: by default 1 case in each of 20 regions (4 per region per 1-hour window)."""
    counts = counts if counts is not None else dict.fromkeys(REGIONS, 1)
    return {region: PaneCases(n, (f"C-{region}",), tuple(f"CU-{region}-{i}" for i in range(n)))
            for region, n in counts.items() if n}


def feed(det: TopicDetector, first: int, last: int,
         make: Callable[[int], dict[str, PaneCases]] = lambda _: steady()) -> list[WindowVerdict]:
    """Process panes first..last-1, `make(index)` building each."""
    return [v for index in range(first, last) for v in det.process(index, make(index))]


def spikes_of(verdicts: list[WindowVerdict]) -> list[Spike]:
    return [s for v in verdicts for s in v.spikes]


def warmed(days: int = 2, **kwargs: Any) -> TopicDetector:
    """A "no_internet" detector fed `days` of steady traffic, which must never fire."""
    det = TopicDetector("no_internet", **kwargs)
    quiet = feed(det, DAY0, DAY0 + days * PER_DAY)
    assert not spikes_of(quiet), "steady traffic must never fire"
    return det


def with_(**changes: int) -> dict[str, PaneCases]:
    """A steady pane with some regions' counts changed."""
    counts = dict.fromkeys(REGIONS, 1)
    counts.update(changes)
    return steady(counts)
