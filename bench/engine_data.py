"""Seeded case records for the engine benchmarks, and the plain-Python reference loop.

`generate_cases` draws case records for `topics` x `regions` keys over a few days, in event-time
order: each slide-long pane gets a Poisson number of cases (a daily cycle around the mean), spread
over the keys by fixed weights (a topic's intensity times a region's size, log-uniform), plus a few
injected surges (local ones on one key, one national one on a whole topic) after the first
`warm_days`. The same arguments give the same bytes on every machine.

`reference_loop` is what a hand-written detector would do with the same records, no engine:
orjson parse, the pane of each record, counts per (topic, pane, region), and at each pane close a
window sum over the last `window / slide` panes and a threshold check for every key with cases in
the window.

>>> lines = list(generate_cases(2_000, topics=2, regions=4, days=2, seed=3).lines())
>>> len(lines) > 1_500, lines == list(generate_cases(2_000, topics=2, regions=4, days=2, seed=3).lines())
(True, True)
>>> reference_loop(lines, slide_s=300, window_panes=12).records == len(lines)
True
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.synthetic import hour_of_day, poisson
from forewarn.detectors.topic import PANE_EPOCH

START = datetime(2026, 1, 5, tzinfo=UTC)
"""A Monday midnight UTC."""


@dataclass(frozen=True)
class Surge:
    topic: str
    region: str
    """A region, or "*" for every region of the topic."""
    start: datetime
    end: datetime
    factor: float


@dataclass
class CaseData:
    """The plan of a generated stream; `lines()` yields its JSONL records in event-time order."""

    records: int
    topics: list[str]
    regions: list[str]
    slide: timedelta
    days: int
    seed: int
    start: datetime = START
    warm_days: float = 1.25
    surges: list[Surge] = field(default_factory=list)
    _keys: list[tuple[str, str]] = field(default_factory=list, repr=False)
    _cum: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        plan = random.Random(f"forewarn-engine-{self.seed}-plan")
        topic_w = {t: math.exp(plan.uniform(0, math.log(4))) for t in self.topics}
        region_w = {r: math.exp(plan.uniform(0, math.log(100))) for r in self.regions}
        self._keys = [(t, r) for t in self.topics for r in self.regions]
        self._cum = list(itertools.accumulate(topic_w[t] * region_w[r] for t, r in self._keys))
        surge_from = self.start + timedelta(days=self.warm_days)
        span = self.start + timedelta(days=self.days) - surge_from - timedelta(hours=3)
        for n in range(6):  # five local surges, then one national one
            at = surge_from + span * plan.random()
            at -= timedelta(seconds=at.timestamp() % self.slide.total_seconds())
            topic = plan.choice(self.topics)
            region = "*" if n == 5 else plan.choice(self.regions)
            self.surges.append(Surge(topic, region, at, at + timedelta(hours=2), 3.0 if n == 5 else 6.0))

    @property
    def n_panes(self) -> int:
        return timedelta(days=self.days) // self.slide

    def pane_start(self, i: int) -> datetime:
        return self.start + i * self.slide

    def lines(self) -> Iterator[bytes]:
        """The records as JSONL lines (no newline), in event-time order."""
        draw = random.Random(f"forewarn-engine-{self.seed}-draw")
        season = [hour_of_day((self.pane_start(i).hour * 60 + self.pane_start(i).minute) / 60)
                  for i in range(self.n_panes)]
        per_pane = self.records / sum(season)
        total_w = self._cum[-1]
        slide_s = int(self.slide.total_seconds())
        n = 0
        for i in range(self.n_panes):
            t0 = self.pane_start(i)
            lam = per_pane * season[i]
            keys = draw.choices(self._keys, cum_weights=self._cum, k=poisson(draw, lam))
            for s in self.surges:
                if not s.start <= t0 < s.end:
                    continue
                if s.region == "*":
                    lo = bisect.bisect_left(self._keys, (s.topic, ""))
                    hi = bisect.bisect_left(self._keys, (s.topic + "\x00", ""))
                    w = self._cum[hi - 1] - (self._cum[lo - 1] if lo else 0.0)
                    extra = poisson(draw, lam * (s.factor - 1) * w / total_w)
                    keys += draw.choices(self._keys[lo:hi], cum_weights=[c - (self._cum[lo - 1] if lo else 0.0)
                                                                        for c in self._cum[lo:hi]], k=extra)
                else:
                    j = self._keys.index((s.topic, s.region))
                    w = self._cum[j] - (self._cum[j - 1] if j else 0.0)
                    extra = poisson(draw, max(3.0, lam * (s.factor - 1) * w / total_w))
                    keys += [(s.topic, s.region)] * extra
            offsets = sorted(draw.randrange(slide_s) for _ in keys)
            draw.shuffle(keys)
            for (topic, region), offset in zip(keys, offsets, strict=True):
                n += 1
                ts = (t0 + timedelta(seconds=offset)).isoformat().replace("+00:00", "Z")
                yield orjson.dumps({"type": "case", "id": f"C-{self.seed}-{n}", "ts": ts,
                                    "customer_id": f"CU-{draw.randrange(1_000_000)}", "topic": topic,
                                    "region": region, "channel": "phone"})

    def write(self, path: Path) -> int:
        """Write the JSONL file; returns the number of records."""
        n = 0
        with path.open("wb") as out:
            for chunk in _chunks(self.lines(), 10_000):
                out.write(b"\n".join(chunk) + b"\n")
                n += len(chunk)
        return n


def generate_cases(records: int, topics: int = 20, regions: int = 200, days: int = 3, seed: int = 0,
                   slide: timedelta = timedelta(minutes=5)) -> CaseData:
    """About `records` cases over `days` days (the exact number comes from the Poisson draws)."""
    return CaseData(records, [f"topic{t:02d}" for t in range(topics)], [f"R{r:03d}" for r in range(regions)],
                    slide, days, seed)


def _chunks(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


@dataclass
class ReferenceResult:
    records: int
    spikes: int
    """(key, pane) pairs that fired."""
    fired_keys: int
    """Distinct keys that fired at least once."""


def reference_loop(lines: Iterable[bytes], slide_s: int, window_panes: int, warm_panes: int = 288,
                   min_count: int = 8, z: float = 5.0) -> ReferenceResult:
    """The same work as the detection path, by hand: parse, pane, count, window sums, threshold per key.

    Records are taken in the order given (event time, as the generator writes them); a topic's pane
    closes when the first record of a later pane of that topic arrives, and the last panes at the end.
    The baseline of a key is its mean count per pane so far; a key fires when its window sum reaches
    `min_count` and lies `z` standard deviations (Poisson) above `window_panes` times that mean.
    """
    epoch = PANE_EPOCH.timestamp()
    parse_ts = datetime.fromisoformat
    loads = orjson.loads
    current: dict[str, int] = {}  # topic -> its open pane
    filling: dict[str, dict[str, int]] = {}  # topic -> region -> count in the open pane
    ring: dict[str, list[dict[str, int]]] = {}  # topic -> its last closed panes, oldest first
    window: dict[str, dict[str, int]] = {}  # topic -> region -> sum over the ring
    totals: dict[tuple[str, str], int] = {}  # key -> cases so far (the baseline)
    learned: dict[str, int] = {}  # topic -> panes learned
    spikes = 0
    fired_keys: set[tuple[str, str]] = set()
    n = 0

    def close(topic: str, counts: dict[str, int]) -> int:
        panes = ring.setdefault(topic, [])
        win = window.setdefault(topic, {})
        panes.append(counts)
        for region, c in counts.items():
            win[region] = win.get(region, 0) + c
        if len(panes) > window_panes:
            for region, c in panes.pop(0).items():  # the leaving pane is learned into the baseline
                key = (topic, region)
                totals[key] = totals.get(key, 0) + c
                left = win[region] - c
                if left:
                    win[region] = left
                else:
                    del win[region]
            learned[topic] = learned.get(topic, 0) + 1
        fired = 0
        seen = learned.get(topic, 0)
        if seen >= warm_panes:
            for region, observed in win.items():
                expected = window_panes * totals.get((topic, region), 0) / seen
                if observed >= min_count and observed > expected + z * math.sqrt(max(expected, 0.25)):
                    fired += 1
                    fired_keys.add((topic, region))
        return fired

    for line in lines:
        record = loads(line)
        topic, region = record["topic"], record["region"]
        pane = int((parse_ts(record["ts"]).timestamp() - epoch) // slide_s)
        n += 1
        open_pane = current.get(topic)
        if open_pane is None:
            current[topic] = pane
            filling[topic] = {region: 1}
            continue
        if pane > open_pane:
            spikes += close(topic, filling[topic])
            for _ in range(min(pane - open_pane - 1, window_panes)):  # empty panes in a gap
                spikes += close(topic, {})
            current[topic] = pane
            filling[topic] = {}
        counts = filling[topic]
        counts[region] = counts.get(region, 0) + 1
    for topic, counts in filling.items():
        spikes += close(topic, counts)
    return ReferenceResult(n, spikes, len(fired_keys))
