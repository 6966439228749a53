"""Stream the NAB files through Forewarn's detectors and the classic baselines, and score them.

Streaming only: each file is read in row order by a fresh detector, which scores row i
before it learns it, with one parameter set for the whole corpus. A detector's raw
score becomes a NAB anomaly score through `alarms`, the same causal rule for every
detector: a row alarms when its raw score reaches the detector's alarm level and no
alarm was raised in the `refractory` before it (so one event is one alarm, as in
Skyline's expiration time); an alarming row gets raw / (raw + level) ∈ [0.5, 1), every
other row 0. The scorer then picks one threshold per profile for the whole corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from bench.nab.scorer import LabelledFile, read_series
from detectors.classic import EarsC2, PoissonCusum
from detectors.telemetry import ValueAnomaly
from detectors.topic import TopicDetector, pane_index
from forewarn.records import PaneCases
from forewarn.stats import score

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


@dataclass(frozen=True)
class TopicCounts:
    """Forewarn's count detector on a count file: each row's count is one topic's cases in its pane.

    The raw score of a row is −log10 of the p-value of the window that ends with the
    row's pane (0 before warm-up). A row whose pane was already closed (two rows in
    one pane) adds nothing and scores 0.
    """

    window: timedelta = timedelta(hours=1)
    slide: timedelta = timedelta(minutes=5)
    warmup: timedelta = timedelta(days=1)

    def __call__(self, series: Series) -> list[float]:
        det = TopicDetector(series.name, window=self.window, slide=self.slide, warmup=self.warmup)
        raw = []
        for t, x in zip(series.timestamps, series.values, strict=True):
            verdicts = det.process(pane_index(t, self.slide), {"all": PaneCases(round(x))})
            national = verdicts[-1].national if verdicts else None
            raw.append(score(national.p_value) if national is not None else 0.0)
        return raw


@dataclass(frozen=True)
class Detector:
    """How one benchmark row turns a series into raw scores, and the raw level that alarms."""

    name: str
    raw: Callable[[Series], list[float]]
    level: float


@dataclass(frozen=True)
class Row:
    """A benchmark row: which detector runs on which category of file."""

    name: str
    by_category: dict[str, Detector]
    default: Detector

    def detector(self, series: Series) -> Detector:
        return self.by_category.get(series.category, self.default)


def alarms(raw: Sequence[float], times: Sequence[datetime], level: float, refractory: timedelta) -> list[float]:
    """NAB anomaly scores from raw scores: raw / (raw + level) at alarms, 0 elsewhere (causal).

    >>> t = [datetime(2015, 3, 1) + timedelta(minutes=5 * i) for i in range(6)]
    >>> alarms([0, 4, 8, 1, 4, 4], t, level=4.0, refractory=timedelta(minutes=10))
    [0.0, 0.5, 0.0, 0.0, 0.5, 0.0]
    """
    out = []
    last: datetime | None = None
    for r, t in zip(raw, times, strict=True):
        if r >= level and (last is None or t - last > refractory):
            out.append(r / (r + level))
            last = t
        else:
            out.append(0.0)
    return out


def forewarn_row(window: timedelta = timedelta(hours=1)) -> Row:
    """Ours: TopicDetector on the count files, ValueAnomaly on the telemetry values."""
    return Row(
        "Forewarn (TopicDetector + ValueAnomaly)",
        {COUNTS: Detector("TopicDetector", TopicCounts(window=window), level=4.0)},
        Detector("ValueAnomaly", lambda s: stream_values(ValueAnomaly, s), level=4.0),
    )


def classic_rows() -> list[Row]:
    ears = Detector("EARS C2", lambda s: stream_values(EarsC2, s), level=3.0)
    cusum = Detector("Poisson CUSUM", lambda s: stream_values(PoissonCusum, s), level=5.0)
    return [Row(ears.name, {}, ears), Row(cusum.name, {}, cusum)]
