"""Stream the NAB files through Forewarn's detectors and the classic baselines, and score them.

Streaming only: each file is read in row order by a fresh detector, which scores row i
before it learns it, with one parameter set for the whole corpus. A detector's raw
score becomes a NAB anomaly score through `alarms`, the same causal rule for every
detector: a row alarms when its raw score reaches the detector's alarm level, fell below
it since the last alarm, and no alarm was raised in the `refractory` before it (so one
event is one alarm, as in Skyline's expiration time and as an incident stays open while
its key fires); an alarming row gets raw / (raw + level) ∈ [0.5, 1), every other row 0.
The scorer then picks one threshold per profile for the whole corpus.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Protocol

from bench.nab.scorer import PROFILES, Corpus, LabelledFile, corpus_score, n_windows, normalise, optimise, read_series
from forewarn.detectors.classic import EarsC2, PoissonCusum
from forewarn.detectors.fleet import value_alarm
from forewarn.detectors.rarity import RarityGate
from forewarn.detectors.telemetry import ValueAnomaly
from forewarn.detectors.topic import pane_index
from forewarn.flows.steps import DetectorFactory
from forewarn.records import PaneCases
from forewarn.settings import DetectionSettings

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"
COUNTS = "realTweets"


@dataclass(frozen=True)
class Series:
    """One NAB data file: its category, timestamps (read as UTC) and values."""

    name: str
    timestamps: tuple[datetime, ...]
    values: tuple[float, ...]

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


def load_series(root: Path, labels: dict[str, LabelledFile]) -> list[Series]:
    out = []
    for name in labels:
        stamps, values = read_series(root / name, "value")
        times = tuple(datetime.fromisoformat(s).replace(tzinfo=UTC) for s in stamps)
        out.append(Series(name, times, tuple(values)))
    return out


class SeriesDetector(Protocol):
    def score_one(self, t: datetime, x: float) -> float: ...
    def learn_one(self, t: datetime, x: float) -> None: ...


def stream_values(make: Callable[[], SeriesDetector], series: Series) -> list[float]:
    """Raw scores of a value detector: row i is scored, then learned."""
    det = make()
    raw = []
    for t, x in zip(series.timestamps, series.values, strict=True):
        raw.append(det.score_one(t, x))
        det.learn_one(t, x)
    return raw


NAB_SLIDE = timedelta(minutes=5)
"""The count files' spacing: the detector's panes are their rows (the default slide is 15 minutes)."""


@dataclass(frozen=True)
class TopicCounts:
    """Forewarn's count detector on a count file, built as the flow builds it from `settings` (the defaults but
    `slide`): each row's count is one topic's cases in its pane, and a row scores when the window ending with
    its pane fired.

    The raw score of a row is −log10 of the p-value of its window's spike (0 when nothing fired, and before
    warm-up). A row whose pane was already closed (two rows in one pane) adds nothing and scores 0.
    """

    settings: DetectionSettings = field(default_factory=lambda: DetectionSettings(slide=NAB_SLIDE))

    def __call__(self, series: Series) -> list[float]:
        det = DetectorFactory(self.settings)(series.name)
        raw = []
        for t, x in zip(series.timestamps, series.values, strict=True):
            verdicts = det.process(pane_index(t, self.settings.slide), {"all": PaneCases(round(x))})
            spikes = verdicts[-1].spikes if verdicts else ()
            raw.append(max((spike.score for spike in spikes), default=0.0))
        return raw


@dataclass(frozen=True)
class FleetValues:
    """Forewarn's telemetry alarm on a metric file, as `FleetStep` decides it per pane: a row scores its
    `ValueAnomaly` |z| when that reaches `z` and the `RarityGate` admits it (`rarity` of the rows over
    `rarity_memory`, counted at the file's median row spacing), else 0."""

    season: str | None = "week"
    z: float = DetectionSettings().telemetry_value_z
    rarity: float | None = DetectionSettings().telemetry_value_rarity
    rarity_memory: timedelta = DetectionSettings().rarity_memory

    def __call__(self, series: Series) -> list[float]:
        model = ValueAnomaly(season=self.season)
        gate = RarityGate.spanning(self.rarity, self.rarity_memory, _spacing(series)) if self.rarity else None
        alarms = (value_alarm(model, t, x, self.z, gate, series.name, row)
                  for row, (t, x) in enumerate(zip(series.timestamps, series.values, strict=True)))
        return [z or 0.0 for z in alarms]


def _spacing(series: Series) -> timedelta:
    seconds = statistics.median((b - a).total_seconds() for a, b in itertools.pairwise(series.timestamps))
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Detector:
    """How one benchmark row turns a series into raw scores, and the raw score that alarms.

    `raw` must pickle (module-level functions, `functools.partial`, dataclasses): files
    are streamed in worker processes.
    """

    name: str
    raw: Callable[[Series], list[float]]
    level: float


@dataclass(frozen=True)
class Row:
    """A benchmark row: which detector runs on which category of file (else `default`)."""

    name: str
    default: Detector
    by_category: tuple[tuple[str, Detector], ...] = ()

    def detector(self, series: Series) -> Detector:
        return dict(self.by_category).get(series.category, self.default)


def alarms(raw: Sequence[float], times: Sequence[datetime], level: float, refractory: timedelta) -> list[float]:
    """NAB anomaly scores from raw scores: raw / (raw + level) at alarms, 0 elsewhere (causal).

    A row alarms when its raw score reaches `level`, the score fell below it since the last alarm (one
    alarm per excursion: an incident stays open while its key goes on firing) and no alarm was raised in
    the `refractory` before it.

    >>> t = [datetime(2015, 3, 1) + timedelta(minutes=5 * i) for i in range(8)]
    >>> alarms([0, 4, 8, 1, 4, 4, 8, 8], t, level=4.0, refractory=timedelta(minutes=10))
    [0.0, 0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]

    An excursion that begins within the refractory alarms once the refractory is over:

    >>> alarms([4, 1, 4, 4, 4, 0, 0, 0], t, level=4.0, refractory=timedelta(minutes=10))
    [0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    """
    out = []
    last: datetime | None = None
    armed = True
    for r, t in zip(raw, times, strict=True):
        if r >= level and armed and (last is None or t - last > refractory):
            out.append(r / (r + level))
            last, armed = t, False
        else:
            out.append(0.0)
            armed = armed or r < level
    return out


REFRACTORY = timedelta(hours=12)
"""One alarm per event: after an alarm, a detector stays quiet this long (every detector alike)."""


def forewarn_row(rarity_runs: int | None = DetectionSettings().rarity_runs) -> Row:
    """Ours as configured by default (but a 5-minute slide, and a weekly season for telemetry): TopicDetector on
    the count files (its spikes, its keys' runs gated by `rarity_runs`), telemetry value alarms on the rest
    (|z| >= 6, admitted by the rarity gate)."""
    settings = DetectionSettings(slide=NAB_SLIDE, rarity_runs=rarity_runs)
    topic = Detector("TopicDetector", TopicCounts(settings), level=4.0)
    values = Detector("ValueAnomaly", FleetValues(), level=DetectionSettings().telemetry_value_z)
    name = f"Forewarn, rarity_runs {rarity_runs}"
    if rarity_runs is None:
        name = "Forewarn, no topic gate"
    elif rarity_runs == DetectionSettings().rarity_runs:
        name = "Forewarn (Topic+Value)"
    return Row(name, values, ((COUNTS, topic),))


def classic_rows() -> list[Row]:
    """EARS C2 (alarm at z >= 3, as in EARS) and Poisson CUSUM (alarm and reset above 5), on every file."""
    return [
        Row("EARS C2", Detector("EARS C2", partial(stream_values, EarsC2), level=3.0)),
        Row("Poisson CUSUM", Detector("Poisson CUSUM", partial(stream_values, partial(PoissonCusum, reset=5.0)),
                                      level=5.0)),
    ]


def _stream(job: tuple[int, Detector, Series]) -> tuple[int, str, list[float], float]:
    row, detector, series = job
    start = time.process_time()
    return row, series.name, detector.raw(series), time.process_time() - start


def stream_all(rows: Sequence[Row], series: Sequence[Series], workers: int) -> tuple[RawScores, dict[str, float]]:
    """Raw scores of every row on every file, (row index, file) -> scores; and CPU seconds per row."""
    jobs = [(r, row.detector(s), s) for r, row in enumerate(rows) for s in series]
    jobs.sort(key=lambda job: -len(job[2].values) * (job[1].name == "TopicDetector"))  # slowest first
    raw: RawScores = {}
    seconds: dict[str, float] = {row.name: 0.0 for row in rows}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for r, name, scores, spent in pool.map(_stream, jobs):
            raw[(r, name)] = scores
            seconds[rows[r].name] += spent
    return raw, seconds


RawScores = dict[tuple[int, str], list[float]]


@dataclass(frozen=True)
class Scores:
    """Normalised NAB scores of one detector, per profile (standard, low FP, low FN)."""

    corpus: tuple[float, ...]
    by_category: dict[str, tuple[float, ...]]
    thresholds: tuple[float, ...]


def _normalised(corpus: Corpus, thresholds: Sequence[float]) -> tuple[float, ...]:
    return tuple(normalise(corpus_score(corpus, p, th), n_windows(corpus), p)
                 for p, th in zip(PROFILES, thresholds, strict=True))


def evaluate(corpus: Corpus, thresholds: Sequence[float] | None = None) -> Scores:
    """Scores at the given thresholds (one per profile), or at the corpus-optimal ones."""
    if thresholds is None:
        thresholds = [optimise(corpus, p)[0] for p in PROFILES]
    categories = sorted({labels.name.split("/", 1)[0] for labels, _ in corpus})
    by_category = {c: _normalised([f for f in corpus if f[0].name.startswith(c + "/")], thresholds)
                   for c in categories}
    return Scores(_normalised(corpus, thresholds), by_category, tuple(thresholds))


def anomaly_scores(row: Row, r: int, series: Sequence[Series], labels: dict[str, LabelledFile], raw: RawScores,
                   refractory: timedelta = REFRACTORY) -> list[tuple[LabelledFile, list[float]]]:
    return [(labels[s.name], alarms(raw[(r, s.name)], s.timestamps, row.detector(s).level, refractory))
            for s in series]
