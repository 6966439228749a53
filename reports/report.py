"""An HTML report of a demo run: case counts per topic with the incidents and the ground truth."""

from __future__ import annotations

import html
from collections import Counter
from datetime import datetime, timedelta

from forewarn.demo.scenario import Scenario
from forewarn.records import NATIONAL
from forewarn.reports.plotting import finish_png, time_axes
from forewarn.reports.summary import RunSummary
from forewarn.settings import Settings


def _series(scenario: Scenario, topic: str, region: str, step: timedelta) -> tuple[list[datetime], list[int]]:
    counts: Counter[datetime] = Counter()
    for event in scenario.events:
        if event.get("topic") == topic and (region == NATIONAL or event.get("region") == region):
            ts = datetime.fromisoformat(event["ts"])
            counts[scenario.start + ((ts - scenario.start) // step) * step] += 1
    times, t = [], scenario.start
    while t < scenario.end:
        times.append(t)
        t += step
    return times, [counts.get(t, 0) for t in times]


def _plot(scenario: Scenario, summary: RunSummary, topic: str, region: str, step: timedelta) -> str:
    from matplotlib.dates import date2num

    times, counts = _series(scenario, topic, region, step)
    x = date2num(times)
    fig, ax = time_axes(f"{topic} @ {'all regions' if region == NATIONAL else region}")
    ax.step(x, counts, where="post", linewidth=0.9, color="#33658a", label=f"cases per {step}")
    for truth in scenario.truths:
        if truth.topic in (topic, None):
            colour = "#f6ae2d" if truth.topic else "#86bbd8"
            ax.axvspan(date2num(truth.start), date2num(truth.end), color=colour, alpha=0.3,
                       label=f"truth: {truth.name}")
    for row in summary.rows:
        if row.topic == topic and row.region in (region, NATIONAL):
            ax.axvspan(date2num(row.first_window_start), date2num(row.last_spike_end), fill=False, hatch="//",
                       edgecolor="#d1495b", label=f"incident {row.id}")
            ax.axvline(date2num(row.opened_at), color="#d1495b", linewidth=1.2)
    return finish_png(fig, ax)


def write_report(path: object, scenario: Scenario, summary: RunSummary, settings: Settings) -> None:
    """Write a self-contained HTML page: the incidents table, the truth check and one plot per key."""
    keys = {(r.topic, r.region) for r in summary.rows}
    keys |= {(t.topic, t.region) for t in scenario.truths if t.topic}
    figures = "".join(
        f'<img alt="{html.escape(topic)} at {html.escape(region)}" '
        f'src="data:image/png;base64,{_plot(scenario, summary, topic, region, settings.detection.slide)}">'
        for topic, region in sorted(keys)
    )
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r.id, f"{r.topic} @ {r.region}", f"{r.first_window_start:%m-%d %H:%M} → {r.last_spike_end:%H:%M}",
            f"{r.observed} / {r.expected:.1f}", r.segment_text(), r.tier_text(), r.held or r.audience,
            r.warned.get("sms", 0), r.warned.get("email", 0), sum(r.all_clear.values()), r.status)) + "</tr>"
        for r in summary.rows
    )
    hazards = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            h["hazard"]["id"], h["hazard"]["event"], " → ".join(h["statuses"]), h["max_severity_rank"],
            sum(h["warned_total"].values()), sum(h["all_clear_total"].values()), h["held"] or "")) + "</tr>"
        for h in summary.hazards
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in summary.notes)
    page = f"""<!doctype html><meta charset="utf-8"><title>Forewarn demo report</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px 8px}}
table{{border-collapse:collapse}}img{{display:block;margin:1em 0}}</style>
<h1>Forewarn demo report</h1>
<p>{len(scenario.customers)} customers, {len(scenario.events)} case records, {len(scenario.alerts)} hazard alerts,
{scenario.start:%Y-%m-%d} to {scenario.end:%Y-%m-%d}; window {settings.detection.window},
slide {settings.detection.slide}; dead letters: {summary.dead_letters}.</p>
<h2>Incidents</h2><table><tr><th>id</th><th>key</th><th>window (UTC)</th>
<th>observed / expected</th><th>segment</th><th>tier</th><th>audience</th><th>warned sms</th><th>warned email</th>
<th>all-clear</th><th>status</th></tr>
{rows}</table><h2>Forecast incidents (hazard alerts)</h2><table><tr><th>id</th><th>event</th><th>alerts</th>
<th>severity rank</th><th>warned</th><th>all-clear</th><th>held</th></tr>
{hazards}</table><h2>Against the ground truth</h2><ul>{notes}</ul><h2>Case counts</h2>{figures}"""
    with open(path, "w", encoding="utf-8") as handle:  # type: ignore[call-overload]
        handle.write(page)
