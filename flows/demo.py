"""`forewarn demo`: the seeded scenario through the full flow, with no external service."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
from bytewax.testing import run_main

from connectors.memory import InMemoryCustomerIndex
from flows.early_warning import build_flow
from flows.report import write_report
from flows.summary import IncidentRow, RunSummary
from flows.wiring import memory_io
from forewarn.records import NATIONAL
from forewarn.scenario import GroundTruth, generate
from forewarn.settings import Settings


def run_demo(settings: Settings, out: Path, seed: int = 7, customers: int = 20_000) -> RunSummary:
    """Generate the scenario into `out`, replay it, and compare what fired with the ground truth."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scenario = generate(seed=seed, customers=customers)
    scenario.write(out)
    index = InMemoryCustomerIndex()
    index.upsert(scenario.customers)
    io = memory_io(settings, [out / "events.jsonl"], out, index)
    io.region_weights = {region: float(n) for region, n in index.attribute_counts("region").items()}
    run_main(build_flow(settings, io))
    summary = RunSummary.from_dir(out)
    warned = warned_customers(out)
    summary.notes = [judge(truth, summary.rows, warned) for truth in scenario.truths]
    write_report(out / "report.html", scenario, summary, settings)
    return summary


def _matches(truth: GroundTruth, row: IncidentRow) -> bool:
    if row.topic != truth.topic or not (truth.start <= row.opened_at <= truth.end):
        return False
    segment = {t["attribute"]: t["value"] for t in row.segment}
    if row.region != NATIONAL:
        segment["region"] = row.region
    return all(segment.get(k) == v for k, v in truth.segment.items())


def warned_customers(out: Path) -> dict[str, set[str]]:
    """Customer ids warned per incident, read back from the outbox files."""
    warned: dict[str, set[str]] = {}
    for path in out.glob("outbox_*.jsonl"):
        for line in path.read_bytes().splitlines():
            message = orjson.loads(line)
            if message["kind"] == "warning":
                warned.setdefault(message["incident_id"], set()).add(message["customer_id"])
    return warned


def judge(truth: GroundTruth, rows: list[IncidentRow], warned: dict[str, set[str]]) -> str:
    """One line saying whether the run found an injected incident, or stayed quiet in the control."""
    if truth.topic is None:
        fired = [r for r in rows if truth.start <= r.opened_at < truth.end]
        verdict = "quiet, as expected" if not fired else f"{len(fired)} incident(s) fired: FALSE ALARM"
        return f"truth {truth.name} ({truth.start:%m-%d %H:%M}–{truth.end:%H:%M}): {verdict}"
    found = [r for r in rows if _matches(truth, r)]
    if not found:
        return f"truth {truth.name} {truth.segment}: MISSED"
    first = found[0]
    delay = (first.opened_at - truth.start).total_seconds() / 60
    ahead = len(truth.affected_customer_ids & warned.get(first.id, set()))
    return (f"truth {truth.name} {truth.segment}: found as {first.id}, alarm {delay:.0f} min after onset; "
            f"of the {len(truth.affected_customer_ids)} customers who called about it, {ahead} had been "
            f"warned before they called; {sum(first.warned.values())} warned in all")

