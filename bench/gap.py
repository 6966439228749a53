"""The oracle rows, the gap table and the JSON report of the synthetic benchmark.

`bench.bench_synthetic` scores every detector on the synthetic streams; this module adds
the reference: the oracle of `bench/oracle.py` (NB CUSUMs that know every key's true
no-surge mean) thresholded at each detector's false-alarm rate (`oracle_rows`), and the
**gap** of Forewarn to it at Forewarn's rate, figure by figure, beside the issue's goals
(`gap`, `gap_table`): recall within `RECALL_SLACK` of the oracle's overall, by scope and in
each density class of local surges; median delay on the surges both found at most
`DELAY_RATIO` times the oracle's; at most `FA_GOAL` false alarms per 1,000 key-days.
`report` gathers the figures for `--json`.

Imports go one way: this module uses `bench.bench_synthetic`'s metrics, and its `main`
imports this module only when it runs.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.bench_synthetic import BANDS, Scores, _band, _fmt, evaluate
from bench.oracle import Oracle
from bench.synthetic import SIZES, Surge, SyntheticData
from forewarn.records import NATIONAL

RECALL_SLACK = 0.05
"""The goal: Forewarn's recall at most this far below the oracle's (overall, by scope and density class)."""
DELAY_RATIO = 1.25
"""The goal: Forewarn's median delay on the surges both found at most this multiple of the oracle's."""
FA_GOAL = 1.0
"""The goal: Forewarn's false-alarm episodes per 1,000 key-days at most this."""


# --- the oracle reference ------------------------------------------------------------------------------


@dataclass
class OracleRow:
    """The oracle (`bench/oracle.py`) thresholded at one detector's false-alarm rate."""

    name: str
    matched_to: str
    target_episodes: int
    """The detector's false-alarm episodes: the oracle's are at or below these."""
    threshold: float
    scores: Scores
    seconds: float
    """Finding the threshold (the CUSUM recursion at each h tried) and evaluating its alarms."""


def oracle_rows(data: SyntheticData, oracle: Oracle, rows: Sequence[tuple[str, Scores, float]], window: int
                ) -> list[OracleRow]:
    """One oracle row per detector row, its threshold matched to that detector's false alarms on `data`.

    Both are counted over the same key-days, so matching episodes is matching the rate per
    1,000 key-days; a detector without false alarms gets the smallest h without any.
    """
    out = []
    for name, sc, _ in rows:
        started = time.perf_counter()
        target = len(sc.false_alarms)
        h = oracle.match(target)
        scores = evaluate(data, oracle.alarms(h), window)
        if len(scores.false_alarms) != oracle.false_alarms(h):
            raise RuntimeError(f"the oracle's fast false-alarm count at h = {h} ({oracle.false_alarms(h)}) "
                               f"differs from evaluate()'s ({len(scores.false_alarms)})")
        out.append(OracleRow(f"oracle @ {name}'s FA rate", name, target, h, scores, time.perf_counter() - started))
    return out


@dataclass
class OracleRun:
    """The oracle built on one `SyntheticData` and its rows for the detectors', timed for the notes."""

    oracle: Oracle
    rows: list[OracleRow]
    build_s: float
    """Computing the LLRs and the excused panes (`Oracle.build`)."""
    seconds: float
    """Building and matching every row."""

    @classmethod
    def of(cls, data: SyntheticData, rows: Sequence[tuple[str, Scores, float]], window: int) -> OracleRun:
        started = time.perf_counter()
        oracle = Oracle.build(data, window)
        build_s = time.perf_counter() - started
        matched = oracle_rows(data, oracle, rows, window)
        return cls(oracle, matched, build_s, time.perf_counter() - started)

    def note(self) -> str:
        """What the oracle rows are and what they cost, for under the table."""
        o = self.oracle
        return (f"oracle = Page CUSUMs on the NB log-likelihood ratio of each pane's count, mean k x mu against the "
                f"true no-surge mean mu (k = {', '.join(f'{k:g}' for k in o.alternatives)}; one threshold h; all "
                f"restart after an alarm), on every key from the first test pane; threshold h: the smallest with "
                f"false-alarm episodes at or below the detector's (0: the smallest with none). {o.key_panes:,} "
                f"key-panes: LLRs in {self.build_s:.1f}s, {o.tried} thresholds tried, {self.seconds:.1f}s in all "
                f"(its run s: matching one threshold and evaluating its alarms)\n  "
                + "; ".join(f"@ {r.matched_to}: h = {r.threshold:.2f}, {len(r.scores.false_alarms)} FA episodes "
                            f"(<= {r.target_episodes})" for r in self.rows))


def surge_class(data: SyntheticData, s: Surge) -> str:
    """ "national", or the density band (`BANDS`) of a local surge's key."""
    return "national" if s.region == NATIONAL else _band(data.rates[s.key])


@dataclass
class GapRow:
    """One line of the gap table: Forewarn and the oracle on one figure, and the issue's goal for it."""

    metric: str
    kind: str
    """"recall", "delay" or "fa": how the figures read."""
    n: int
    """The surges behind the figure (for "fa": Forewarn's false-alarm episodes)."""
    ours: float
    oracle: float
    gap: float
    """ours - oracle; for "delay" the ratio ours / oracle."""
    goal: str
    shortfall: float
    """How far Forewarn is from the goal, in the figure's units: <= 0 meets it; NaN: nothing to judge."""

    @property
    def met(self) -> bool | None:
        return None if math.isnan(self.shortfall) else self.shortfall <= 1e-9

    @property
    def status(self) -> str:
        if self.met is None:
            return "-"
        return "met" if self.met else f"missed by {self.shortfall:.3f}"


def gap(data: SyntheticData, ours: Scores, oracle: Scores) -> list[GapRow]:
    """Forewarn against the oracle at its own false-alarm rate, figure by figure, with the goals.

    Recall: overall, by scope and per density class of local surges (within `RECALL_SLACK`).
    Delay: medians over the surges both detected, so neither side is flattered by the
    surges only it finds (ratio at most `DELAY_RATIO`). False alarms: Forewarn's rate
    (at most `FA_GOAL`); the oracle's is at or below it by construction.
    """
    pairs = []
    for (s, a), (t, b) in zip(ours.per_surge, oracle.per_surge, strict=True):
        if s != t:
            raise ValueError("scores of different surges")
        pairs.append((surge_class(data, s), a, b))
    bands = [name for _, _, name in BANDS]
    classes = [("all surges", {"national", *bands}), ("local", set(bands)),
               *((f"local {band}", {band}) for band in bands), ("national", {"national"})]
    rows = []
    for label, picked in classes:
        sel = [(a, b) for c, a, b in pairs if c in picked]
        ro = sum(a is not None for a, _ in sel) / len(sel) if sel else math.nan
        rr = sum(b is not None for _, b in sel) / len(sel) if sel else math.nan
        rows.append(GapRow(f"recall, {label}", "recall", len(sel), ro, rr, ro - rr,
                           f">= oracle - {RECALL_SLACK:g}", rr - RECALL_SLACK - ro))
    shared = [(a, b) for _, a, b in pairs if a is not None and b is not None]
    mo = float(statistics.median(a for a, _ in shared)) if shared else math.nan
    mr = float(statistics.median(b for _, b in shared)) if shared else math.nan
    ratio = mo / mr if shared else math.nan
    rows.append(GapRow("median delay, surges both found (slides)", "delay", len(shared), mo, mr, ratio,
                       f"<= {DELAY_RATIO:g} x oracle", ratio - DELAY_RATIO))
    rows.append(GapRow("FA / 1k key-days", "fa", len(ours.false_alarms), ours.fa_per_1k, oracle.fa_per_1k,
                       ours.fa_per_1k - oracle.fa_per_1k, f"<= {FA_GOAL:g}", ours.fa_per_1k - FA_GOAL))
    return rows


def _gap_cell(r: GapRow) -> str:
    if math.isnan(r.gap):
        return "-"
    return f"x{r.gap:.2f}" if r.kind == "delay" else f"{r.gap:+.3f}"


def gap_table(rows: Sequence[GapRow], ours: str, oracle: str) -> str:
    """The gap rows as a text table (recall and FA to 2 decimals, delays to 1, the delay gap as a ratio).

    Gaps and shortfalls get 3 decimals: a goal can be missed by less than the figures' rounding.
    """
    header = ("figure", "n", ours, oracle, "gap", "goal", "status")
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        digits = 1 if r.kind == "delay" else 2
        lines.append((r.metric, str(r.n), _fmt(r.ours, digits), _fmt(r.oracle, digits), _gap_cell(r), r.goal,
                      r.status))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i in (0, 5, 6) else c.rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _json_number(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def report(data: SyntheticData, rows: Sequence[tuple[str, Scores, float]], oracles: Sequence[OracleRow],
           gaps: Sequence[GapRow], ours: str | None) -> dict[str, Any]:
    """The figures for `--json`: every row's recall and false alarms, the oracle thresholds and the gap.

    NaN (no surge of a kind, nothing found) is written as null, so the file is strict JSON.
    """

    def figures(sc: Scores) -> dict[str, Any]:
        return {"recall": {f"{size:g}x": _json_number(sc.recall[size]) for size in SIZES},
                "recall_all": _json_number(sc.recall_all), "surges": len(sc.per_surge),
                "delay_median": _json_number(sc.delay(50)), "delay_p90": _json_number(sc.delay(90)),
                "fa_per_1k_key_days": _json_number(sc.fa_per_1k), "fa_episodes": len(sc.false_alarms)}

    detectors = {name: figures(sc) for name, sc, _ in rows}
    for o in oracles:
        detectors[o.name] = {**figures(o.scores), "threshold": round(o.threshold, 6), "matched_to": o.matched_to,
                             "target_fa_episodes": o.target_episodes}
    return {
        "data": {"seed": data.seed, "topics": len(data.topics), "regions": len(data.regions),
                 "weeks": data.n_panes // (7 * data.panes_per_day), "surges": len(data.surges),
                 "key_days": (len(data.keys) + len(data.topics)) * (data.end_pane - data.eval_start)
                 / data.panes_per_day},
        "goals": {"recall_slack": RECALL_SLACK, "delay_ratio": DELAY_RATIO, "fa_per_1k_key_days": FA_GOAL},
        "detectors": detectors,
        "gap": {"ours": ours, "oracle": next((o.name for o in oracles if o.matched_to == ours), None),
                "rows": [{"figure": g.metric, "kind": g.kind, "n": g.n, "ours": _json_number(g.ours),
                          "oracle": _json_number(g.oracle), "gap": _json_number(g.gap), "goal": g.goal,
                          "met": g.met, "shortfall": _json_number(g.shortfall)} for g in gaps]},
    }
