"""What a finished replay or demo run found: incidents, audiences and messages, as a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table


@dataclass
class IncidentRow:
    """One incident as it ended the run, with what outreach did for it."""

    id: str
    topic: str
    region: str
    status: str
    first_window_start: datetime
    opened_at: datetime
    last_spike_end: datetime
    observed: int
    expected: float
    segment: list[dict[str, Any]]
    audience: int = 0
    held: str | None = None
    warned: dict[str, int] = field(default_factory=dict)
    all_clear: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    stages: str = ""
    """The incident's life as the decision store ended it (`forewarn demo` fills it in)."""
    effect: str = ""
    """The holdout's estimate of the calls its warning saved (`forewarn demo` fills it in)."""

    def tier_text(self) -> str:
        return _tier(self.decision) if self.decision is not None else "-"

    def segment_text(self) -> str:
        return " AND ".join(f"{t['attribute']}={t['value']} (lift {t['lift']:.1f})" for t in self.segment) or "-"


def _tier(d: dict[str, Any]) -> str:
    """Tier, with the severity × reach behind it, the approval state and what muted it."""
    approval = {"not_needed": "", "pending": ", awaiting approval", "approved": ", approved",
                "held": ", held by an operator"}[d["approval"]]
    muted = f", silenced ({d['silenced_by']})" if d.get("silenced_by") else \
        f", inhibited by {d['inhibited_by']}" if d.get("inhibited_by") else ""
    return f"{d['tier']} ({d['severity']} × {d['reach']}){approval}{muted}"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def read_incidents(path: Path) -> list[IncidentRow]:
    """Fold the incident reports of a run into one row per incident."""
    rows: dict[str, IncidentRow] = {}
    if not path.exists():
        return []
    for line in path.read_bytes().splitlines():
        report = orjson.loads(line)
        if "incident" not in report:
            continue  # a hazard report: see read_hazards
        inc = report["incident"]
        row = rows.get(inc["id"])
        if row is None:
            row = rows[inc["id"]] = IncidentRow(
                inc["id"], inc["key"]["topic"], inc["key"]["region"], inc["status"],
                _ts(inc["first_window_start"]), _ts(inc["opened_at"]), _ts(inc["last_spike_end"]),
                inc["observed"], inc["expected"], inc["segment"])
        row.status = inc["status"]
        row.last_spike_end = _ts(inc["last_spike_end"])
        row.observed, row.expected = inc["observed"], inc["expected"]
        if inc["status"] == "opened":
            row.segment, row.audience, row.held = inc["segment"], report["audience_size"], report["held"]
            row.warned, row.excluded = report["enqueued_by_channel"], report["excluded"]
            row.decision = report.get("decision")
        elif inc["status"] == "resolved":
            row.all_clear = report["enqueued_by_channel"]
    return sorted(rows.values(), key=lambda r: r.opened_at)


def _fmt(ts: datetime) -> str:
    return ts.strftime("%m-%d %H:%M")


def incidents_table(rows: list[IncidentRow]) -> Table:
    table = Table(title="Incidents found", show_lines=False)
    lived = any(r.stages or r.effect for r in rows)
    for name in ("incident key", "window (UTC)", "observed / expected", "segment", "tier", "audience",
                 "warned sms", "warned email", "all-clear", "status", *(("stages", "effect") if lived else ())):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(
            f"{r.topic} @ {r.region}", f"{_fmt(r.first_window_start)} → {_fmt(r.last_spike_end)}",
            f"{r.observed} / {r.expected:.1f}", r.segment_text(), r.tier_text(),
            str(r.audience) if not r.held else f"held: {r.held}",
            str(r.warned.get("sms", 0)), str(r.warned.get("email", 0)),
            str(sum(r.all_clear.values())), r.status, *((r.stages or "-", r.effect or "-") if lived else ()),
        )
    return table


def read_hazards(path: Path) -> list[dict[str, Any]]:
    """The last report of each forecast incident (hazard alert) of a run, with what came before it.

    Added keys: `statuses` (in order), `sent_total` (every message by channel), `warned_total`
    (warnings: opened and updated reports), `all_clear_total` (the cancel's messages) and
    `max_severity_rank` (a cancel's own rank is 0: the threat is past) and `tier` (the playbook's, when decided).
    """
    last: dict[str, dict[str, Any]] = {}
    history: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_bytes().splitlines():
            report = orjson.loads(line)
            if "hazard" not in report:
                continue
            key, status = report["hazard"]["id"], report["hazard"]["status"]
            last[key] = report
            h = history.setdefault(key, {"statuses": [], "sent_total": {}, "warned_total": {},
                                         "all_clear_total": {}, "max_severity_rank": 0})
            h["statuses"].append(status)
            h["max_severity_rank"] = max(h["max_severity_rank"], report["hazard"]["severity_rank"])
            if report.get("decision"):
                h["tier"] = _tier(report["decision"])
            kind = "all_clear_total" if status == "cancelled" else "warned_total"
            for channel, n in report["enqueued_by_channel"].items():
                for total in (h["sent_total"], h[kind]):
                    total[channel] = total.get(channel, 0) + n
    return [{**report, **history[key]} for key, report in last.items()]


def _by_channel(counts: dict[str, int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in sorted(counts.items())) or "0"


def hazards_table(hazards: list[dict[str, Any]]) -> Table:
    table = Table(title="Forecast incidents (hazard alerts)")
    for name in ("hazard", "event", "alerts", "severity rank", "tier", "warned", "all-clear", "held"):
        table.add_column(name, overflow="fold")
    for h in hazards:
        table.add_row(h["hazard"]["id"], str(h["hazard"]["event"]), " → ".join(h["statuses"]),
                      str(h["max_severity_rank"]), h.get("tier", "-"), _by_channel(h["warned_total"]),
                      _by_channel(h["all_clear_total"]), h["held"] or "")
    return table


@dataclass
class RunSummary:
    """The incidents of a run and its dead-letter count, printable as a table."""

    rows: list[IncidentRow]
    dead_letters: int
    notes: list[str] = field(default_factory=list)
    hazards: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dir(cls, out: Path) -> RunSummary:
        letters = out / "dead_letters.jsonl"
        count = len(letters.read_bytes().splitlines()) if letters.exists() else 0
        return cls(read_incidents(out / "incidents.jsonl"), count, hazards=read_hazards(out / "incidents.jsonl"))

    def print(self, console: Console) -> None:
        console.print(incidents_table(self.rows))
        if self.hazards:
            console.print(hazards_table(self.hazards))
        console.print(f"dead letters: {self.dead_letters}")
        for note in self.notes:
            console.print(note)
