"""Seeded synthetic outbreaks: many (topic, region) count streams with known injected surges.

The streams are built to look like support-case counts in 15-minute panes:

- **Keys** are topics x regions. A region has a customer base (log-uniform over a factor
  of 100) and a topic a per-customer rate (log-uniform over a factor of 4), so a key's
  mean count per pane ranges from sparse (`min_rate`, 0.05) to dense (`max_rate`, 20)
  and a topic's regions keep stable shares, as in real data.
- **Weekly seasonality**, one profile per topic: an hour-of-day cycle (quiet nights at
  about a fifth of the mean, a morning climb, an evening bump), weekends lower than
  weekdays (0.5-0.8), and a Monday-morning bump (+40-70 % around 09:30). Clock hours are
  UTC. The profile is scaled so its mean over a week is 1: a key's `rate` is its mean
  count per pane over a week.
- **Overdispersion**: each pane's count is gamma-Poisson (negative binomial) around its
  mean, with a per-key size drawn from 10-50 (variance = mu + mu^2 / size).
- **Surges** start only after the first `train_days` (default one week, kept clean for
  warm-up). Each multiplies the key's expected count by its `size` (2, 3 or 5), with one
  of two shapes: a `step` (the full size from the first pane, lasting 2-6 hours) or a
  `ramp` (a linear climb from 1x to the full size over 2 hours, then held 2-4 hours). A
  surge is `local` (one region of a topic) or `national` (every region of a topic at
  once, `region` = "*"). Surges touching the same key never overlap and leave at least
  12 hours between them.

Everything is drawn from `random.Random` seeded by strings derived from `seed`: the
same arguments give the same streams on every machine, with no numpy.

>>> data = generate(topics=2, regions=4, weeks=2, seed=7)
>>> len(data.keys), data.n_panes, sorted({s.scope for s in data.surges})
(8, 1344, ['local', 'national'])
>>> data.counts == generate(topics=2, regions=4, weeks=2, seed=7).counts
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from forewarn.detectors.topic import PANE_EPOCH, pane_index
from forewarn.records import NATIONAL, PaneCases

Key = tuple[str, str]
"""(topic, region); region "*" (`NATIONAL`) is the topic summed over its regions."""

START = datetime(2026, 1, 5, tzinfo=PANE_EPOCH.tzinfo)
"""The streams start on a Monday midnight UTC."""

SIZES = (2.0, 3.0, 5.0)
SHAPES = ("step", "ramp")
RAMP = timedelta(hours=2)

# Hour-of-day cycle at the top of each hour (interpolated linearly in between): quiet
# night, morning climb, a lunchtime plateau and a small evening bump.
_HOURLY = (0.35, 0.25, 0.2, 0.18, 0.18, 0.25, 0.45, 0.8, 1.2, 1.5, 1.6, 1.6,
           1.5, 1.5, 1.5, 1.45, 1.4, 1.35, 1.35, 1.4, 1.3, 1.0, 0.75, 0.5)


def hour_of_day(h: float) -> float:
    """The daily cycle at clock hour `h` (0 <= h < 24), before weekly scaling."""
    i = int(h) % 24
    frac = h - int(h)
    return _HOURLY[i] * (1 - frac) + _HOURLY[(i + 1) % 24] * frac


@dataclass(frozen=True)
class Season:
    """One topic's weekly profile: weekend level and Monday-morning bump."""

    weekend: float = 0.65
    monday_bump: float = 0.5

    def raw(self, t: datetime) -> float:
        h = t.hour + t.minute / 60
        level = hour_of_day(h)
        day = t.weekday()
        if day >= 5:
            level *= self.weekend
        elif day == 0:
            level *= 1 + self.monday_bump * max(0.0, 1 - abs(h - 9.5) / 3.5)
        return level


@dataclass(frozen=True)
class Surge:
    """One injected surge: panes `start` (first) to `end` (exclusive), absolute pane indices."""

    topic: str
    region: str
    """The region of a local surge, "*" for a national one (every region of the topic)."""
    start: int
    end: int
    size: float
    shape: str
    ramp_panes: int = 8

    @property
    def key(self) -> Key:
        return (self.topic, self.region)

    @property
    def scope(self) -> str:
        return "national" if self.region == NATIONAL else "local"

    def affects(self, key: Key) -> bool:
        """Whether the surge raises the counts of `key` (a national key sums its regions)."""
        topic, region = key
        return topic == self.topic and (NATIONAL in (region, self.region) or region == self.region)

    def multiplier(self, pane: int) -> float:
        """The factor on the expected count in pane `pane` (1 outside the surge)."""
        if not self.start <= pane < self.end:
            return 1.0
        if self.shape == "ramp":
            return 1.0 + (self.size - 1.0) * min(1.0, (pane - self.start + 1) / self.ramp_panes)
        return self.size


@dataclass
class SyntheticData:
    """The streams, their expected values and the ground truth."""

    seed: int
    slide: timedelta
    first_pane: int
    n_panes: int
    train_panes: int
    topics: list[str]
    regions: list[str]
    rates: dict[Key, float]
    """Mean count per pane over a week, per (topic, region) key."""
    dispersion: dict[Key, float]
    seasons: dict[str, Season]
    counts: dict[Key, list[int]]
    """Per (topic, region) key, the count of each pane from `first_pane` on."""
    surges: list[Surge]
    _season: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def keys(self) -> list[Key]:
        return [(t, r) for t in self.topics for r in self.regions]

    @property
    def eval_start(self) -> int:
        """The first pane after training: surges and scoring start here."""
        return self.first_pane + self.train_panes

    @property
    def end_pane(self) -> int:
        return self.first_pane + self.n_panes

    @property
    def panes_per_day(self) -> int:
        return timedelta(days=1) // self.slide

    def pane_start(self, pane: int) -> datetime:
        return PANE_EPOCH + pane * self.slide

    def season(self, topic: str, pane: int) -> float:
        return self._season[topic][pane - self.first_pane]

    def expected(self, key: Key, pane: int) -> float:
        """The mean count of `key` in `pane`, surges included ("*" sums the topic's regions)."""
        topic, region = key
        if region == NATIONAL:
            return sum(self.expected((topic, r), pane) for r in self.regions)
        mult = 1.0
        for s in self.surges:
            if s.affects(key):
                mult *= s.multiplier(pane)
        return self.rates[key] * self.season(topic, pane) * mult

    def count(self, key: Key, pane: int) -> int:
        topic, region = key
        i = pane - self.first_pane
        if region == NATIONAL:
            return sum(self.counts[(topic, r)][i] for r in self.regions)
        return self.counts[key][i]

    def series(self, key: Key) -> list[int]:
        """Counts of `key` per pane from `first_pane` ("*" sums the topic's regions)."""
        topic, region = key
        if region != NATIONAL:
            return self.counts[key]
        columns = [self.counts[(topic, r)] for r in self.regions]
        return [sum(c) for c in zip(*columns, strict=True)]

    def panes(self, topic: str) -> Iterator[tuple[int, dict[str, PaneCases]]]:
        """(pane index, {region: PaneCases}) for every pane, as `TopicDetector.process` takes them.

        Regions without a case in the pane are left out, as the flow does.
        """
        columns = [(r, self.counts[(topic, r)]) for r in self.regions]
        for i in range(self.n_panes):
            yield self.first_pane + i, {r: PaneCases(c[i]) for r, c in columns if c[i]}

    def only(self, topic: str) -> SyntheticData:
        """The same streams restricted to one topic (they share nothing with other topics)."""
        return replace(self, topics=[topic], rates={k: v for k, v in self.rates.items() if k[0] == topic},
                       dispersion={k: v for k, v in self.dispersion.items() if k[0] == topic},
                       counts={k: v for k, v in self.counts.items() if k[0] == topic},
                       surges=[s for s in self.surges if s.topic == topic])

    def region_weights(self, topic: str) -> dict[str, float]:
        """Each region's usual share of the topic's cases (from the true rates)."""
        total = sum(self.rates[(topic, r)] for r in self.regions)
        return {r: self.rates[(topic, r)] / total for r in self.regions}


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: inversion for small means, Hörmann's PTRS (as numpy) for large ones."""
    if lam <= 0.0:
        return 0
    if lam < 10.0:
        u = rng.random()
        k = 0
        p = math.exp(-lam)
        cdf = p
        while u > cdf:
            k += 1
            p *= lam / k
            cdf += p
            if p == 0.0:  # rounding: u above the representable cdf
                break
        return k
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b)
                <= -lam + k * loglam - math.lgamma(k + 1)):
            return k


def negbin(rng: random.Random, mu: float, size: float) -> int:
    """A gamma-Poisson draw with mean `mu` and variance mu + mu^2 / size."""
    if mu <= 0.0:
        return 0
    return poisson(rng, mu * rng.gammavariate(size, 1.0 / size))


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _plan_surges(rng: random.Random, topics: list[str], regions: list[str], train_panes: int, n_panes: int,
                 first_pane: int, per_day: int, national_per_topic: int, local_per_region: int) -> list[Surge]:
    """Non-overlapping surges (half a day apart on any key they touch), sizes and shapes balanced."""
    gap = per_day // 2
    combos = [(size, shape) for size in SIZES for shape in SHAPES]

    def draw_shape(bag: list[tuple[float, str]]) -> tuple[float, str, int]:
        if not bag:
            bag.extend(combos)
            rng.shuffle(bag)
        size, shape = bag.pop()
        panes = rng.randint(8, 24) if shape == "step" else 8 + rng.randint(8, 16)
        return size, shape, panes

    national_bag: list[tuple[float, str]] = []
    local_bag: list[tuple[float, str]] = []
    surges: list[Surge] = []
    lo, hi = first_pane + train_panes, first_pane + n_panes
    for topic in topics:
        # National surges: one in each of `national_per_topic` equal stretches of the test period.
        stretch = (hi - lo) // max(1, national_per_topic)
        busy: list[tuple[int, int]] = []  # the topic's national surges, with the gap around them
        for k in range(national_per_topic):
            size, shape, panes = draw_shape(national_bag)
            a, b = lo + k * stretch + gap // 2, lo + (k + 1) * stretch - panes - gap // 2
            start = rng.randint(a, max(a, b))
            surges.append(Surge(topic, NATIONAL, start, start + panes, size, shape))
            busy.append((start - gap, start + panes + gap))
        for region in regions:
            taken = list(busy)
            for _ in range(local_per_region):
                size, shape, panes = draw_shape(local_bag)
                for _attempt in range(200):
                    start = rng.randint(lo, hi - panes - 1)
                    if all(start + panes <= a or start >= b for a, b in taken):
                        surges.append(Surge(topic, region, start, start + panes, size, shape))
                        taken.append((start - gap, start + panes + gap))
                        break
    surges.sort(key=lambda s: (s.start, s.topic, s.region))
    return surges


def generate(topics: int = 5, regions: int = 40, weeks: int = 5, seed: int = 0,
             slide: timedelta = timedelta(minutes=15), start: datetime = START, train_days: int = 7,
             min_rate: float = 0.05, max_rate: float = 20.0, national_per_topic: int | None = None,
             local_per_region: int | None = None) -> SyntheticData:
    """Draw `topics` x `regions` count streams over `weeks` weeks of panes `slide` long.

    `national_per_topic` national surges per topic (default 2 per test week) and
    `local_per_region` local surges per (topic, region) key (default 1 per 2 test weeks)
    are injected after the first `train_days` days.
    """
    if timedelta(days=1) % slide:
        raise ValueError("slide must divide a day")
    plan = random.Random(f"forewarn-synthetic-{seed}-plan")
    draw = random.Random(f"forewarn-synthetic-{seed}-counts")
    topic_names = [f"topic{t:02d}" for t in range(topics)]
    region_names = [f"R{r:03d}" for r in range(regions)]
    per_day = timedelta(days=1) // slide
    n_panes = weeks * 7 * per_day
    train_panes = train_days * per_day
    first = pane_index(start, slide)
    test_weeks = (n_panes - train_panes) / (7 * per_day)
    if national_per_topic is None:
        national_per_topic = max(1, round(2 * test_weeks))
    if local_per_region is None:
        local_per_region = max(1, round(test_weeks / 2))

    # Rates: region size (x1..x100) times topic intensity (x1..x4), scaled into [min_rate, max_rate].
    span = max_rate / min_rate
    region_span = min(span, 100.0)
    topic_span = span / region_span
    region_size = {r: _log_uniform(plan, 1.0, region_span) for r in region_names}
    topic_scale = {t: _log_uniform(plan, 1.0, topic_span) for t in topic_names}
    rates = {(t, r): min_rate * topic_scale[t] * region_size[r] for t in topic_names for r in region_names}
    dispersion = {key: plan.uniform(10.0, 50.0) for key in rates}
    seasons = {t: Season(weekend=plan.uniform(0.5, 0.8), monday_bump=plan.uniform(0.4, 0.7))
               for t in topic_names}

    surges = _plan_surges(plan, topic_names, region_names, train_panes, n_panes, first, per_day,
                          national_per_topic, local_per_region)
    season_of: dict[str, list[float]] = {}
    week = 7 * per_day
    for t in topic_names:
        raw = [seasons[t].raw(PANE_EPOCH + (first + i) * slide) for i in range(week)]
        mean = sum(raw) / week
        season_of[t] = [raw[i % week] / mean for i in range(n_panes)]

    counts: dict[Key, list[int]] = {}
    for t in topic_names:
        national = [s for s in surges if s.topic == t and s.region == NATIONAL]
        for r in region_names:
            mult = [1.0] * n_panes
            for s in national + [s for s in surges if s.key == (t, r)]:
                for p in range(s.start, s.end):
                    mult[p - first] *= s.multiplier(p)
            rate, size, season = rates[(t, r)], dispersion[(t, r)], season_of[t]
            counts[(t, r)] = [negbin(draw, rate * season[i] * mult[i], size) for i in range(n_panes)]

    return SyntheticData(seed=seed, slide=slide, first_pane=first, n_panes=n_panes, train_panes=train_panes,
                         topics=topic_names, regions=region_names, rates=rates, dispersion=dispersion,
                         seasons=seasons, counts=counts, surges=surges, _season=season_of)
