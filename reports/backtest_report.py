"""`forewarn detect --report`: the top keys' series with the expected band and the alarms."""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from forewarn.reports.plotting import finish_png, time_axes

ZOOM = timedelta(days=7)


@dataclass
class Alarm:
    """Consecutive firing windows of one key, folded into one row: from the first window's start to the
    last one's end; `raised` is when the alarm was raised (the first window's end)."""

    topic: str
    region: str
    start: datetime
    raised: datetime
    end: datetime
    peak_observed: int
    peak_expected: float
    peak_score: float
    windows: int = 1
    examples: list[str] = field(default_factory=list)


def _read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def fold_alarms(spikes: list[dict[str, Any]], slide_seconds: float) -> list[Alarm]:
    """Spikes of a key whose windows follow each other within one slide become one alarm."""
    alarms: list[Alarm] = []
    open_by_key: dict[tuple[str, str], Alarm] = {}
    for spike in sorted(spikes, key=lambda s: s["window_end"]):
        key = (spike["key"]["topic"], spike["key"]["region"])
        start, end = datetime.fromisoformat(spike["window_start"]), datetime.fromisoformat(spike["window_end"])
        alarm = open_by_key.get(key)
        if alarm is not None and (end - alarm.end).total_seconds() <= slide_seconds:
            alarm.end, alarm.windows = end, alarm.windows + 1
            if spike["score"] > alarm.peak_score:
                alarm.peak_observed, alarm.peak_expected = spike["observed"], spike["expected"]
                alarm.peak_score = spike["score"]
            continue
        alarm = Alarm(*key, start=start, raised=end, end=end, peak_observed=spike["observed"],
                      peak_expected=spike["expected"], peak_score=spike["score"],
                      examples=list(spike.get("example_case_ids", []))[:3])
        open_by_key[key] = alarm
        alarms.append(alarm)
    return alarms


def _plot(key: tuple[str, str], windows: list[dict[str, Any]], alarms: list[Alarm]) -> str:
    from matplotlib.dates import date2num

    rows = sorted(windows, key=lambda w: w["window_end"])
    zoom = ""
    first, last = datetime.fromisoformat(rows[0]["window_end"]), datetime.fromisoformat(rows[-1]["window_end"])
    if last - first > ZOOM:
        # A long backtest at pane resolution is unreadable: show the days around the strongest alarm.
        peak = max(alarms, key=lambda a: a.peak_score)
        low, high = peak.start - ZOOM / 2, peak.end + ZOOM / 2
        rows = [w for w in rows if low <= datetime.fromisoformat(w["window_end"]) <= high]
        alarms = [a for a in alarms if a.end >= low and a.start <= high]
        zoom = f", {ZOOM.days} days around its strongest alarm"
    x = date2num([datetime.fromisoformat(w["window_end"]) for w in rows])
    expected = [w["expected"] for w in rows]
    upper = [w["threshold"] if w.get("threshold") is not None else w["expected"] for w in rows]
    where = "all regions" if key[1] == "*" else key[1]
    fig, ax = time_axes(f"{key[0]} @ {where}  (window counts{zoom}; red: alarms)")
    ax.fill_between(x, expected, upper, step="post", color="#86bbd8", alpha=0.45, label="expected → alarm level")
    ax.step(x, expected, where="post", color="#33658a", linewidth=0.8, label="expected")
    ax.step(x, [w["observed"] for w in rows], where="post", color="#2f4858", linewidth=1.0, label="observed")
    for alarm in alarms:
        ax.axvspan(date2num(alarm.start), date2num(alarm.end), color="#d1495b", alpha=0.25)
    return finish_png(fig, ax)


def write_backtest_report(path: Path, spikes_path: Path, windows_path: Path, slide_seconds: float,
                          top: int = 8) -> int:
    """Write the report; returns the number of alarms. Keys ranked by their strongest alarm."""
    alarms = fold_alarms(_read(spikes_path), slide_seconds)
    by_key: dict[tuple[str, str], list[Alarm]] = defaultdict(list)
    for alarm in alarms:
        by_key[(alarm.topic, alarm.region)].append(alarm)
    ranked = sorted(by_key, key=lambda k: -max(a.peak_score for a in by_key[k]))[:top]
    series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    wanted = set(ranked)
    for window in _read(windows_path):
        key = (window["topic"], window["region"])
        if key in wanted:
            series[key].append(window)
    figures = "".join(f'<img alt="{html.escape(" @ ".join(k))}" src="data:image/png;base64,'
                      f'{_plot(k, series[k], by_key[k])}">' for k in ranked if series[k])
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            f"{a.topic} @ {a.region}", f"{a.start:%Y-%m-%d %H:%M}", f"{a.raised:%Y-%m-%d %H:%M}",
            f"{a.end:%Y-%m-%d %H:%M}", a.windows,
            f"{a.peak_observed} / {a.peak_expected:.1f}", f"{a.peak_score:.1f}", ", ".join(a.examples))) + "</tr>"
        for a in sorted(alarms, key=lambda a: a.raised))
    path.write_text(f"""<!doctype html><meta charset="utf-8"><title>Forewarn backtest</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:3px 6px}}
table{{border-collapse:collapse;font-size:90%}}img{{display:block;margin:1em 0}}</style>
<h1>Forewarn backtest</h1><p>{len(alarms)} alarms on {len(by_key)} keys; the {len(ranked)} keys with the
strongest alarms are plotted: observed window counts, the expected count and the band up to the count that
would fire, alarms in red.</p>{figures}
<h2>Alarms</h2><table><tr><th>key</th><th>first window start (UTC)</th><th>raised</th><th>last window end</th>
<th>windows</th><th>peak observed / expected</th><th>peak score (-log10 p)</th><th>example cases</th></tr>
{rows}</table>""",
                    encoding="utf-8")
    return len(alarms)
