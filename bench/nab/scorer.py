"""The NAB scorer, written from the rules in `data/nab/NAB_SCORING.md` (no NAB code).

A detector emits one anomaly score per row; a row is a detection at threshold θ when
its score is >= θ. Per file and profile, the earliest detection inside each label
window earns up to A_TP (less the later it comes), a window without detection costs
A_FN, and every detection outside the windows costs A_FP times a sigmoid of its
distance after the preceding window (−1 before the first window). Rows in the
probationary period (the first 15 % of a file, at most 750 rows) are ignored. One
threshold per profile is chosen for the whole corpus, and the raw corpus score is
normalised so that never detecting scores 0 and a perfect detector 100.

>>> labels = label_file("demo", n_rows=100, windows=[(50, 59)])
>>> scores = [0.0] * 100
>>> scores[50] = 1.0                            # a detection at the first row of the window
>>> raw = corpus_score([(labels, scores)], STANDARD, threshold=0.5)
>>> raw, normalise(raw, 1, STANDARD)
(1.0, 100.0)
>>> optimise([(labels, scores)], STANDARD)      # the best threshold is the lone detection
(1.0, 1.0)
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROBATION_SHARE = 0.15
PROBATION_CAP = 750  # 0.15 x 5000 rows


@dataclass(frozen=True)
class Profile:
    """Cost weights of one NAB application profile."""

    name: str
    tp: float
    fp: float
    fn: float


STANDARD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
LOW_FP = Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0)
LOW_FN = Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)
PROFILES = (STANDARD, LOW_FP, LOW_FN)


def sigmoid(y: float) -> float:
    """NAB's scaled sigmoid: 2 / (1 + e^(5y)) − 1, and −1 beyond y = 3.

    >>> [round(sigmoid(y), 6) for y in (-1.0, -0.5, 0.0, 1.0, 3.5)]
    [0.986614, 0.848284, 0.0, -0.986614, -1.0]
    """
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation(n_rows: int) -> int:
    """Rows at the start of a file that are neither rewarded nor penalised."""
    return min(math.floor(PROBATION_SHARE * n_rows), PROBATION_CAP)


@dataclass(frozen=True)
class LabelledFile:
    """One data file's windows and the per-row worth of a detection, profile-free.

    `window[i]` is the index of the window holding row i (−1 outside every window);
    `worth[i]` is σ(y)/σ(−1) inside a window (to be multiplied by A_TP) and the
    penalty factor u ∈ [−1, 0] outside (to be multiplied by A_FP).
    """

    name: str
    n_rows: int
    windows: tuple[tuple[int, int], ...]
    probation: int
    window: tuple[int, ...]
    worth: tuple[float, ...]

    @property
    def scored_windows(self) -> tuple[int, ...]:
        """Windows with at least one row after probation: the ones a detector can hit or miss."""
        return tuple(k for k, (_, right) in enumerate(self.windows) if right >= self.probation)


def label_file(name: str, n_rows: int, windows: Sequence[tuple[int, int]]) -> LabelledFile:
    """Per-row window membership and worth for a file with inclusive row windows."""
    ordered = sorted(windows)
    for (_, right), (left, _) in itertools.pairwise(ordered):
        if left <= right:
            raise ValueError(f"{name}: overlapping windows {ordered}")
    window = [-1] * n_rows
    worth = [0.0] * n_rows
    top = sigmoid(-1.0)
    previous: tuple[int, int] | None = None  # (right edge, width) of the last window ended
    spans = iter(enumerate(ordered))
    current = next(spans, None)
    for i in range(n_rows):
        while current is not None and current[1][1] < i:  # the window ended before row i
            left, right = current[1]
            previous = (right, right - left + 1)
            current = next(spans, None)
        if current is not None and current[1][0] <= i:
            k, (left, right) = current
            window[i] = k
            worth[i] = sigmoid(-(right - i + 1) / (right - left + 1)) / top
        elif previous is None:
            worth[i] = -1.0
        else:
            right, width = previous
            worth[i] = sigmoid((i - right) / (width - 1)) if width > 1 else -1.0
    return LabelledFile(name, n_rows, tuple(ordered), probation(n_rows), tuple(window), tuple(worth))


def label_timestamps(name: str, timestamps: Sequence[str], windows: Sequence[Sequence[str]]) -> LabelledFile:
    """Label a file whose windows are given as inclusive timestamps (NAB's `combined_windows.json`).

    A window edge maps to the first row at or after its start and the last row at or
    before its end (timestamps compare as `YYYY-MM-DD HH:MM:SS` strings).
    """
    stamps = [t[:19] for t in timestamps]
    rows = []
    for start, end in windows:
        inside = [i for i, t in enumerate(stamps) if start[:19] <= t <= end[:19]]
        if inside:
            rows.append((inside[0], inside[-1]))
    return label_file(name, len(stamps), rows)


def file_score(labels: LabelledFile, scores: Sequence[float], profile: Profile, threshold: float) -> float:
    """S_f(θ): the raw score of one file at one threshold."""
    if len(scores) != labels.n_rows:
        raise ValueError(f"{labels.name}: {len(scores)} scores for {labels.n_rows} rows")
    best: dict[int, float] = {}
    total = 0.0
    for i in range(labels.probation, labels.n_rows):
        if scores[i] < threshold:
            continue
        k = labels.window[i]
        if k < 0:
            total += profile.fp * labels.worth[i]
        elif k not in best:  # the earliest detection in a window is its best
            best[k] = profile.tp * labels.worth[i]
    missed = len(set(labels.scored_windows) - best.keys())
    return total + sum(best.values()) - profile.fn * missed


Corpus = Sequence[tuple[LabelledFile, Sequence[float]]]


def corpus_score(corpus: Corpus, profile: Profile, threshold: float) -> float:
    """S(θ) = Σ_f S_f(θ)."""
    return sum(file_score(labels, scores, profile, threshold) for labels, scores in corpus)


def n_windows(corpus: Corpus) -> int:
    return sum(len(labels.scored_windows) for labels, _ in corpus)


def optimise(corpus: Corpus, profile: Profile) -> tuple[float, float]:
    """(θ*, S(θ*)): the corpus threshold with the best raw score, swept over every distinct score.

    θ = +inf stands for "never detect". Ties keep the highest threshold.
    """
    # Every scored row as (score, file, row); sweeping the threshold down adds rows in that order.
    rows = sorted(
        ((scores[i], f, i) for f, (labels, scores) in enumerate(corpus)
         for i in range(labels.probation, labels.n_rows)),
        key=lambda r: -r[0],
    )
    total = -profile.fn * n_windows(corpus)
    best_threshold, best_total = math.inf, total
    window_value: dict[tuple[int, int], float] = {}
    for n, (score, f, i) in enumerate(rows):
        labels = corpus[f][0]
        k = labels.window[i]
        if k < 0:
            total += profile.fp * labels.worth[i]
        else:
            value = profile.tp * labels.worth[i]
            old = window_value.get((f, k))
            if old is None:
                total += value + profile.fn
                window_value[(f, k)] = value
            elif value > old:
                total += value - old
                window_value[(f, k)] = value
        last_of_tie = n + 1 == len(rows) or rows[n + 1][0] != score
        if last_of_tie and total > best_total:
            best_threshold, best_total = score, total
    return best_threshold, best_total


def normalise(raw: float, windows: int, profile: Profile) -> float:
    """100 · (S − S_null) / (S_perfect − S_null), with S_null = −A_FN·windows and S_perfect = A_TP·windows."""
    null, perfect = -profile.fn * windows, profile.tp * windows
    return 100.0 * (raw - null) / (perfect - null)


# --- reading the NAB files ----------------------------------------------------------------------


def read_series(path: Path, column: str) -> tuple[list[str], list[float]]:
    """(timestamps, values of `column`) of one NAB csv (data: `value`; results: `anomaly_score`)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["timestamp"] for r in rows], [float(r[column]) for r in rows]


def load_labels(root: Path) -> dict[str, LabelledFile]:
    """Every data file named in `labels/combined_windows.json` that exists under `root`, labelled."""
    windows: dict[str, list[list[str]]] = json.loads((root / "labels" / "combined_windows.json").read_text())
    out: dict[str, LabelledFile] = {}
    for name, spans in sorted(windows.items()):
        path = root / name
        if path.exists():
            timestamps, _ = read_series(path, "value")
            out[name] = label_timestamps(name, timestamps, spans)
    return out


def load_results(root: Path, detector: str, labels: dict[str, LabelledFile]) -> list[tuple[LabelledFile, list[float]]]:
    """A published detector's per-row scores from `results/<detector>/<category>/<file>.csv`."""
    corpus = []
    for name, labelled in labels.items():
        _, scores = read_series(root / "results" / detector / name, "anomaly_score")
        corpus.append((labelled, scores))
    return corpus


def published_thresholds(root: Path) -> dict[str, dict[str, float]]:
    """detector -> profile name -> the corpus threshold published in `results/thresholds.json`."""
    raw: dict[str, dict[str, dict[str, float]]] = json.loads((root / "results" / "thresholds.json").read_text())
    return {det: {prof: float(v["threshold"]) for prof, v in profiles.items()} for det, profiles in raw.items()}
