"""Detection quality on seeded synthetic outbreaks: recall, delay and false alarms per detector.

    python -m bench.bench_synthetic [--quick] [--seed 0] [--topics 10] [--regions 40] [--weeks 5] [-j 2]
                                    [--json gap.json]

The default run (10 topics x 40 regions, 5 weeks) takes about a minute on 2 cores; `--quick`
(3 x 20, 3 weeks) a few seconds. The oracle rows add a second or two (printed).

Draws the streams of `bench/synthetic.py` (topics x regions of seasonal, overdispersed
15-minute counts with injected 2x/3x/5x step and ramp surges, local and national), runs
every detector over them and prints one row per detector:

- **recall 2x / 3x / 5x**: the share of surges of that size detected. A surge counts as
  detected when an alarm on its key fires between its start and its end + 1 window
  (a window whose end lies in (start, end + window]). The key of a local surge is its
  (topic, region). A national surge is detected by an alarm on (topic, "*") or once
  the regions of the topic that alarmed since its start usually carry at least half of
  the topic's cases (`NATIONAL_SHARE`), at the window where that share is reached.
- **delay median / p90**: over the detected surges, in slides from the surge's start to
  the end of the first alarming window (1 = the window ending with the surge's first
  pane); p90 by nearest rank. **3x delay med**: the median over detected 3x surges.
- **FA / 1k key-days**: alarm episodes (runs of consecutive alarming windows on one key)
  outside every surge that raises that key's counts, per 1,000 key-days of the test
  period. A surge excuses the windows that could detect it (ending in (start, end + 1
  window]) and the `TAIL_PANES` (24 panes, 6 hours) after them: an alarm in the 6 hours
  after a surge on its key is the surge's late echo, not a false alarm; it is not a
  detection either. The rule is the same for every detector and for the oracle (a CUSUM
  whose evidence of a weak surge crosses its threshold a few panes after the grace would
  otherwise pay for its memory in false alarms). Keys are the topic x region keys plus
  one national key per topic. A (topic, region) key is raised by its own local surges and
  by its topic's national ones; a (topic, "*") key by every surge of its topic.

Beside each detector, an **oracle** row (`bench/oracle.py`): NB CUSUMs that know every key's
true no-surge mean, with the threshold set so that their false-alarm episodes on the same
streams are at or below that detector's ("oracle @ X's FA rate"; for a detector without false
alarms, the smallest threshold without any). The **gap** table (`bench/gap.py`) sets Forewarn
against the oracle at Forewarn's rate, with the issue's goals beside: recall within `RECALL_SLACK` of the oracle's
overall, by scope and in each density class of local surges; median delay on the surges both
found at most `DELAY_RATIO` times the oracle's; at most `FA_GOAL` false alarms per 1,000
key-days. `--json PATH` writes those figures and each row's recall and false alarms.

The first week trains the detectors (no surges, no scoring). Detectors plug in as
adapters (`Adapter`: a name and `run(data) -> Run`); per-key classic baselines (EARS C2,
Poisson CUSUM from `detectors/classic.py`) run on each key's windowed count through
`PerKey`, added in `adapters()` when that module exists.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import pickle
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bench.synthetic import SIZES, Key, Surge, SyntheticData, generate
from forewarn.detectors.topic import pane_index
from forewarn.flows.steps import DetectorFactory
from forewarn.records import NATIONAL
from forewarn.settings import BUNDLED_CONFIG, DetectionSettings, load_settings

NATIONAL_SHARE = 0.5
"""A national surge is also detected once regions usually carrying this share of its topic's cases alarm."""

BANDS = ((0.0, 0.5, "sparse <0.5/pane"), (0.5, 3.0, "medium 0.5-3"), (3.0, math.inf, "dense >=3/pane"))

TAIL_PANES = 24
"""Panes (6 h) after a surge's one-window grace in which an alarm on a key it raises is its echo, not a false alarm."""

Alarms = dict[Key, list[int]]
"""Per key, the sorted last-pane indices of its alarming windows (the window ends one slide later)."""


# --- metrics (pure functions over pane indices) -------------------------------------------------------


def detection_delay(surge: Surge, alarms: Alarms, window: int,
                    region_weights: dict[str, float] | None = None,
                    national_share: float = NATIONAL_SHARE) -> int | None:
    """Slides from the surge's start to the end of its first detecting window, or None if missed.

    `window` is the window length in panes. An alarming window with last pane `p`
    detects when start <= p <= end + window - 1 (its end p + 1 is in (start, end + window]).
    A national surge is detected by its (topic, "*") key, or at the first pane where the
    regions that alarmed since the start usually carry `national_share` of the topic
    (`region_weights`, summing to 1).

    >>> s = Surge("t", "R1", start=100, end=108, size=3.0, shape="step")
    >>> detection_delay(s, {("t", "R1"): [99, 101, 102]}, window=4)
    2
    >>> detection_delay(s, {("t", "R1"): [112]}, window=4) is None   # after end + 1 window
    True
    """
    last = surge.end + window - 1

    def first_in(panes: Iterable[int]) -> int | None:
        return next((p for p in panes if surge.start <= p <= last), None)

    hits: list[int] = []
    own = first_in(alarms.get(surge.key, ()))
    if own is not None:
        hits.append(own)
    if surge.region == NATIONAL and region_weights:
        firsts = sorted((p, region_weights.get(region, 0.0)) for (topic, region), panes in alarms.items()
                        if topic == surge.topic and region != NATIONAL
                        and (p := first_in(panes)) is not None)
        carried = 0.0
        for p, weight in firsts:
            carried += weight
            if carried >= national_share - 1e-12:
                hits.append(p)
                break
    return min(hits) - surge.start + 1 if hits else None


def excused(surge: Surge, window: int, tail: int = TAIL_PANES) -> tuple[int, int]:
    """The last panes (first, last) of the windows on a key `surge` raises that are not false alarms.

    The windows that can detect it (last pane start .. end + window - 1) and `tail` panes
    after: its late echo, neither a false alarm nor a detection.

    >>> excused(Surge("t", "R1", start=100, end=108, size=3.0, shape="step"), 4)
    (100, 135)
    """
    return surge.start, surge.end + window - 1 + tail


def false_alarm_episodes(alarms: Alarms, surges: Sequence[Surge], window: int, start: int, end: int,
                         tail: int = TAIL_PANES) -> list[tuple[Key, int, int]]:
    """Episodes of consecutive alarming windows outside every surge raising their key.

    Windows with last pane in [start, end) count; one ending within (s.start, s.end + window]
    of a surge `s` that affects the key is excused, and so is one ending in the `tail` panes
    after that (`excused`). Returns (key, first pane, last pane).

    >>> s = Surge("t", "R1", start=100, end=108, size=3.0, shape="step")
    >>> alarms = {("t", "R1"): [50, 51, 52, 60, 104, 111, 112, 113, 135, 136, 137]}
    >>> false_alarm_episodes(alarms, [s], 4, 0, 1000)   # 112-135: the surge's tail
    [(('t', 'R1'), 50, 52), (('t', 'R1'), 60, 60), (('t', 'R1'), 136, 137)]
    >>> false_alarm_episodes(alarms, [s], 4, 0, 1000, tail=0)
    [(('t', 'R1'), 50, 52), (('t', 'R1'), 60, 60), (('t', 'R1'), 112, 113), (('t', 'R1'), 135, 137)]
    """
    episodes: list[tuple[Key, int, int]] = []
    for key in sorted(alarms):
        spans = [excused(s, window, tail) for s in surges if s.affects(key)]
        run: list[int] = []
        for p in sorted(set(alarms[key])):
            if not start <= p < end or any(a <= p <= b for a, b in spans):
                continue
            if run and p != run[-1] + 1:
                episodes.append((key, run[0], run[-1]))
                run = []
            run.append(p)
        if run:
            episodes.append((key, run[0], run[-1]))
    return episodes


def key_days_at_risk(data: SyntheticData, window: int, tail: int = TAIL_PANES) -> float:
    """Key-days in which an alarm could be false: every key's scored panes outside the spans its surges excuse
    (`excused`), so that a rate of false alarms on a stream with surges means what it means on one without.

    >>> data = generate(topics=1, regions=2, weeks=2, seed=0, national_per_topic=0, local_per_region=0)
    >>> key_days_at_risk(data, 4) == 3 * (data.end_pane - data.eval_start) / data.panes_per_day
    True
    """
    panes = 0
    for key in [*data.keys, *((topic, NATIONAL) for topic in data.topics)]:
        covered: set[int] = set()
        for surge in data.surges:
            if surge.affects(key):
                first, last = excused(surge, window, tail)
                covered.update(range(max(first, data.eval_start), min(last + 1, data.end_pane)))
        panes += data.end_pane - data.eval_start - len(covered)
    return panes / data.panes_per_day


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty sequence.

    >>> percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), percentile([4], 50)
    (9, 4)
    """
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Scores:
    """What the table prints for one detector."""

    recall: dict[float, float]
    n_surges: dict[float, int]
    delays: list[int]
    false_alarms: list[tuple[Key, int, int]]
    key_days: float
    per_surge: list[tuple[Surge, int | None]] = field(default_factory=list)

    @property
    def fa_per_1k(self) -> float:
        return 1000.0 * len(self.false_alarms) / self.key_days if self.key_days else math.nan

    @property
    def recall_all(self) -> float:
        """The share of all surges detected, whatever their size."""
        return sum(d is not None for _, d in self.per_surge) / len(self.per_surge) if self.per_surge else math.nan

    def delay(self, q: float) -> float:
        return percentile(self.delays, q) if self.delays else math.nan


def evaluate(data: SyntheticData, alarms: Alarms, window: int, tail: int = TAIL_PANES) -> Scores:
    """Recall per size, delays and false-alarm episodes of one detector's alarms on `data`.

    `tail`: the panes after a surge's grace whose alarms are its echo, not false alarms.
    """
    per_surge = []
    for surge in data.surges:
        weights = data.region_weights(surge.topic) if surge.region == NATIONAL else None
        per_surge.append((surge, detection_delay(surge, alarms, window, weights)))
    recall, n = {}, {}
    for size in SIZES:
        of_size = [d for s, d in per_surge if s.size == size]
        n[size] = len(of_size)
        recall[size] = sum(d is not None for d in of_size) / len(of_size) if of_size else math.nan
    delays = [d for _, d in per_surge if d is not None]
    fas = false_alarm_episodes(alarms, data.surges, window, data.eval_start, data.end_pane, tail)
    n_keys = len(data.keys) + len(data.topics)
    key_days = n_keys * (data.end_pane - data.eval_start) / data.panes_per_day
    return Scores(recall, n, delays, fas, key_days, per_surge)


# --- detector adapters -------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    alarms: Alarms
    seconds: float
    notes: list[str] = field(default_factory=list)
    p_values: dict[tuple[Key, int], float] = field(default_factory=dict)
    """Optional: the tail probability of each alarm, by (key, last pane), for the diagnostics."""
    state_bytes: int | None = None
    """Optional: the pickled size of the detectors' state after the run, all keys together."""

    def merge(self, other: Run) -> Run:
        """This run and one over other topics, as one."""
        state = None if self.state_bytes is None or other.state_bytes is None else self.state_bytes + other.state_bytes
        return Run(self.name, {**self.alarms, **other.alarms}, self.seconds + other.seconds,
                   list(dict.fromkeys(self.notes + other.notes)), {**self.p_values, **other.p_values}, state)


class Adapter(Protocol):
    name: str

    def run(self, data: SyntheticData) -> Run: ...


@dataclass
class Ours:
    """Forewarn's TopicDetector, one per topic, built as the flow builds it."""

    settings: DetectionSettings
    name: str = "Forewarn TopicDetector"

    def run(self, data: SyntheticData) -> Run:
        factory = DetectorFactory(self.settings)
        alarms: Alarms = {}
        p_values: dict[tuple[Key, int], float] = {}
        started = time.perf_counter()
        state_bytes = 0
        for topic in data.topics:
            det = factory(topic)
            for index, cases in data.panes(topic):
                for verdict in det.process(index, cases):
                    for spike in verdict.spikes:
                        last = pane_index(spike.window_end, data.slide) - 1
                        alarms.setdefault((topic, spike.region), []).append(last)
                        p_values[((topic, spike.region), last)] = spike.p_value
            state_bytes += len(pickle.dumps(det))
        seconds = time.perf_counter() - started
        return Run(self.name, alarms, seconds, [], p_values, state_bytes)


@dataclass
class PerKey:
    """A classic per-key detector over each key's windowed count: score, alarm at threshold, learn.

    `make()` builds one detector per key (regions and each topic's "*"); it is handed
    (t, x) with t the end of the window and x the window's count.
    """

    name: str
    make: Callable[[], Any]
    threshold: float
    window: int = 4
    """Panes summed into the windowed count (detection.window / detection.slide)."""
    learn_on_alarm: bool = True

    def run(self, data: SyntheticData) -> Run:
        window = self.window
        alarms: Alarms = {}
        keys = data.keys + [(t, NATIONAL) for t in data.topics]
        started = time.perf_counter()
        for key in keys:
            det = self.make()
            series = data.series(key)
            total = sum(series[:window - 1])
            out = alarms.setdefault(key, [])
            for i in range(window - 1, data.n_panes):
                total += series[i]
                pane = data.first_pane + i
                t = data.pane_start(pane + 1)
                if pane >= data.eval_start:
                    alarm = det.score_one(t, total) >= self.threshold
                    if alarm:
                        out.append(pane)
                    if self.learn_on_alarm or not alarm:
                        det.learn_one(t, total)
                else:
                    det.learn_one(t, total)
                total -= series[i - window + 1]
        return Run(self.name, alarms, time.perf_counter() - started,
                   [f"{self.name}: per key on the {window}-pane windowed count, alarm at score >= {self.threshold}"])


_SHARED: tuple[list[Adapter], SyntheticData] | None = None
"""The adapters and streams, inherited by forked workers instead of pickled to each."""


def _run_part(task: tuple[int, str]) -> Run:
    assert _SHARED is not None
    found, data = _SHARED
    index, topic = task
    return found[index].run(data.only(topic))


def run_all(found: Sequence[Adapter], data: SyntheticData, jobs: int = 1) -> list[Run]:
    """Each adapter over every topic (topics are independent), on `jobs` forked processes."""
    global _SHARED
    tasks = [(i, topic) for i in range(len(found)) for topic in data.topics]
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        parts = [found[i].run(data.only(topic)) for i, topic in tasks]
    else:
        _SHARED = (list(found), data)
        try:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                parts = pool.map(_run_part, tasks, chunksize=1)
        finally:
            _SHARED = None
    runs: list[Run | None] = [None] * len(found)
    for (i, _), part in zip(tasks, parts, strict=True):
        previous = runs[i]
        runs[i] = part if previous is None else previous.merge(part)
    return [r for r in runs if r is not None]


def _window_panes(data: SyntheticData, settings: DetectionSettings) -> int:
    if settings.slide != data.slide:
        raise ValueError(f"the streams' slide {data.slide} differs from detection.slide {settings.slide}")
    return settings.window // settings.slide


def adapters(settings: DetectionSettings) -> tuple[list[Adapter], list[str]]:
    """Ours, plus the classic baselines when `detectors/classic.py` exists; notes on what was left out."""
    found: list[Adapter] = [Ours(settings)]
    notes: list[str] = []
    try:
        from forewarn.detectors import classic
    except ImportError:
        notes.append("detectors/classic.py not found: EARS C2 and Poisson CUSUM rows left out "
                     "(each is one `PerKey(...)` line in bench/bench_synthetic.py::adapters)")
        return found, notes
    window = settings.window // settings.slide
    # EARS C2 alarms at 3 (standard deviations above its lagged baseline); Poisson CUSUM at h = 5 (its reset).
    found.append(PerKey("EARS C2", classic.EarsC2, threshold=3.0, window=window))
    found.append(PerKey("Poisson CUSUM", classic.PoissonCusum, threshold=5.0, window=window))
    return found, notes


# --- the table ---------------------------------------------------------------------------------------


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if isinstance(x, float) and math.isnan(x) else f"{x:.{digits}f}"


def table(rows: list[tuple[str, Scores, float]]) -> str:
    header = ("detector", "recall 2x", "recall 3x", "recall 5x", "recall all", "delay med", "delay p90",
              "3x delay med", "FA/1k key-days", "FA episodes", "run s")
    lines: list[tuple[str, ...]] = [header]
    for name, sc, seconds in rows:
        three = [d for s, d in sc.per_surge if s.size == 3.0 and d is not None]
        lines.append((name, *(_fmt(sc.recall[s]) for s in SIZES), _fmt(sc.recall_all), _fmt(sc.delay(50), 0),
                      _fmt(sc.delay(90), 0),
                      _fmt(float(statistics.median(three)), 1) if three else "-",
                      _fmt(sc.fa_per_1k), str(len(sc.false_alarms)), f"{seconds:.1f}"))
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    out = []
    for n, r in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                            strict=True))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _band(rate: float) -> str:
    return next(name for lo, hi, name in BANDS if lo <= rate < hi)


def _surge_rate(data: SyntheticData, s: Surge) -> float:
    return sum(data.rates[(s.topic, r)] for r in data.regions) if s.region == NATIONAL else data.rates[s.key]


def breakdown(data: SyntheticData, name: str, sc: Scores) -> str:
    """Recall and median delay by scope, shape and key density; where the false alarms were."""
    groups: dict[tuple[str, str, str], list[tuple[float, int | None]]] = {}
    for s, d in sc.per_surge:
        band = "national" if s.region == NATIONAL else _band(data.rates[s.key])
        groups.setdefault((s.scope, band, s.shape), []).append((s.size, d))
    lines = [f"  {name}: recall (n) and median delay by surge kind"]
    lines.append(f"    {'scope':9}{'key mean/pane':18}{'shape':6}" + "".join(f"{f'{s:g}x':>18}" for s in SIZES))
    for (scope, band, shape), items in sorted(groups.items()):
        cells = []
        for size in SIZES:
            ds = [d for z, d in items if z == size]
            hit = [d for d in ds if d is not None]
            rec = len(hit) / len(ds) if ds else math.nan
            med = _fmt(statistics.median(hit), 1) if hit else "-"
            cells.append(f"{_fmt(rec)} ({len(ds):3d}) d{med:>4}")
        lines.append(f"    {scope:9}{band if scope == 'local' else 'all regions':18}{shape:6}"
                     + "".join(f"{c:>18}" for c in cells))
    by: Counter[str] = Counter()
    for (topic, region), first, _last in sc.false_alarms:
        t = data.pane_start(first + 1)
        when = _when(t)
        where = "national" if region == NATIONAL else _band(data.rates[(topic, region)])
        by[f"{where}, {when}"] += 1
    if by:
        lines.append("    false-alarm episodes by key and time of window end: "
                     + "; ".join(f"{k}: {v}" for k, v in by.most_common()))
    return "\n".join(lines)


def _when(t: datetime) -> str:
    h = t.hour + t.minute / 60
    if t.weekday() == 0 and 6 <= h < 14:
        return "Monday 06-14h"
    if t.weekday() >= 5:
        return "weekend"
    return "weekday 06-22h" if 6 <= h < 22 else "weekday night"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 topics x 20 regions x 3 weeks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--regions", type=int, default=40)
    parser.add_argument("--weeks", type=int, default=5)
    parser.add_argument("-c", "--config", type=Path, default=BUNDLED_CONFIG / "default.yaml",
                        help="detection settings for ours (default: config/default.yaml)")
    parser.add_argument("--no-breakdown", action="store_true", help="print only the table")
    parser.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes running (detector, topic) parts (default: 2)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the gap figures and every row's recall and false alarms to PATH as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.topics, args.regions, args.weeks = 3, 20, 3
    settings = load_settings(args.config).detection
    started = time.perf_counter()
    data = generate(topics=args.topics, regions=args.regions, weeks=args.weeks, seed=args.seed, slide=settings.slide)
    gen_s = time.perf_counter() - started
    window = _window_panes(data, settings)
    n_by = Counter(s.size for s in data.surges)
    scopes = Counter(s.scope for s in data.surges)
    test_days = (data.end_pane - data.eval_start) / data.panes_per_day
    print(f"synthetic outbreaks, seed {args.seed}: {len(data.topics)} topics x {len(data.regions)} regions "
          f"= {len(data.keys)} keys (+{len(data.topics)} national), {args.weeks} weeks of {settings.slide} panes "
          f"(first {data.train_panes // data.panes_per_day} days training), generated in {gen_s:.1f}s")
    print(f"key means {min(data.rates.values()):.2f}-{max(data.rates.values()):.1f} per pane; "
          f"{len(data.surges)} surges ({scopes['local']} local, {scopes['national']} national; "
          + ", ".join(f"{n_by[s]} at {s:g}x" for s in SIZES) + f"); window {settings.window} = {window} panes; "
          f"{test_days:.0f} test days x {len(data.keys) + len(data.topics)} keys")
    print(f"detected = an alarm whose window ends in (start, end + 1 window]: on the region for a local surge; "
          f"on '*' or on regions usually carrying >= {NATIONAL_SHARE:.0%} of the topic for a national one. "
          f"delay = slides from start to the end of the first detecting window. FA = episodes of consecutive "
          f"alarming windows on a key outside its surges (+1 window grace, then {TAIL_PANES} panes of the surge's "
          f"echo: neither FA nor detection).")
    from bench.gap import OracleRun, gap, gap_table, report  # here: bench.gap imports this module

    found, notes = adapters(settings)
    started = time.perf_counter()
    runs = run_all(found, data, args.jobs)
    wall = time.perf_counter() - started
    rows = [(run.name, evaluate(data, run.alarms, window), run.seconds) for run in runs]
    reference = OracleRun.of(data, rows, window)
    oracles = reference.rows
    print()
    print(table(rows + [(o.name, o.scores, o.seconds) for o in oracles]))
    print()
    print(f"run s = seconds spent in each detector, summed over topics; all ran in {wall:.0f}s wall "
          f"on {args.jobs} process(es)")
    print(reference.note())
    for note in notes + [n for r in runs for n in r.notes]:
        print(note)
    for run in runs:
        if run.state_bytes is not None:
            print(f"{run.name}: state {run.state_bytes / len(data.keys):,.0f} bytes per region key after the run "
                  f"(pickled detector per topic / its {len(data.regions)} regions; "
                  f"{run.state_bytes / len(data.topics):,.0f} bytes per topic)")
    ours_at = next((i for i, adapter in enumerate(found) if isinstance(adapter, Ours)), None)
    gaps = [] if ours_at is None else gap(data, rows[ours_at][1], oracles[ours_at].scores)
    if ours_at is not None:
        print()
        print(f"gap: {rows[ours_at][0]} against the {oracles[ours_at].name} (h = {oracles[ours_at].threshold:.2f}); "
              f"goals from the issue")
        print(gap_table(gaps, rows[ours_at][0], "oracle"))
    if args.json:
        figures = report(data, rows, oracles, gaps, None if ours_at is None else rows[ours_at][0])
        args.json.write_text(json.dumps(figures, indent=2, allow_nan=False) + "\n")
        print(f"figures written to {args.json}")
    if not args.no_breakdown:
        print()
        for (name, sc, _), run, o in zip(rows, runs, oracles, strict=True):
            print(breakdown(data, name, sc))
            if run.p_values and sc.false_alarms:
                ps = sorted(min(run.p_values.get((key, p), 1.0) for p in range(first, last + 1))
                            for key, first, last in sc.false_alarms)
                cuts = ", ".join(f"{sum(p <= a for p in ps)} at p <= {a:g}" for a in (1e-5, 1e-6))
                print(f"    smallest p-value of each false-alarm episode: median {statistics.median(ps):.1e}; {cuts}")
            print(breakdown(data, o.name, o.scores))


if __name__ == "__main__":
    main()
