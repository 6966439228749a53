"""`forewarn demo`: the seeded scenario through the full flow, with no external service.

The scenario's hazard alerts are a second input file beside the cases: the flow tells them
apart by their shape (NWS GeoJSON), and `forewarn detect` over events.jsonl never sees them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
from bytewax.testing import run_main

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.demo.scenario import GroundTruth, HazardTruth, Scenario, generate
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import memory_io
from forewarn.records import NATIONAL
from forewarn.reports.report import write_report
from forewarn.reports.summary import IncidentRow, RunSummary
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
    io = memory_io(settings, [out / "events.jsonl", out / "alerts.jsonl"], out, index)
    io.region_weights = {region: float(n) for region, n in index.attribute_counts("region").items()}
    run_main(build_flow(settings, io))
    summary = RunSummary.from_dir(out)
    warned = warned_customers(out)
    summary.notes = [judge(truth, summary.rows, warned) for truth in scenario.truths]
    all_clear = messaged_customers(out, "resolved")
    summary.notes += [judge_hazard(h, scenario, summary.hazards, warned, all_clear, settings.hazards is not None)
                      for h in scenario.hazards]
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
    """Customer ids warned per incident (or hazard), read back from the outbox files."""
    return messaged_customers(out, "warning")


def messaged_customers(out: Path, kind: str) -> dict[str, set[str]]:
    """Customer ids sent a message of `kind` ("warning", "resolved") per incident, from the outbox files."""
    sent: dict[str, set[str]] = {}
    for path in out.glob("outbox_*.jsonl"):
        for line in path.read_bytes().splitlines():
            message = orjson.loads(line)
            if message["kind"] == kind:
                sent.setdefault(message["incident_id"], set()).add(message["customer_id"])
    return sent


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


def judge_hazard(truth: HazardTruth, scenario: Scenario, hazards: list[dict[str, Any]],
                 warned: dict[str, set[str]], all_clear: dict[str, set[str]], enabled: bool = True) -> str:
    """One line on a hazard episode: did its alerts become a forecast incident, were the customers
    inside its polygons warned (and nobody outside), and did the cancel reach those warned."""
    head = f"truth {truth.name} ({truth.event}, {truth.region}, {truth.start:%m-%d %H:%M}–{truth.end:%H:%M})"
    if not enabled:
        return f"{head}: MISSED: no hazards section in the config, alerts were ignored"
    found = [h for h in hazards if h["hazard"]["identifier"] in truth.alert_ids]
    if not found:
        return f"{head}: MISSED: no forecast incident"
    hazard = found[0]["hazard"]
    got = warned.get(hazard["id"], set())
    inside = truth.affected_customer_ids
    people = {c.id: c for c in scenario.customers}
    unreachable = sum(people[i].contact(people[i].preferred_channel) is None for i in inside)
    told = len(all_clear.get(hazard["id"], set()) & got)
    return (f"{head}: found as {hazard['id']} ({' → '.join(found[0]['statuses'])}); of the {len(inside)} "
            f"customers inside its polygons, {len(got & inside)} were warned ({unreachable} opted out of their "
            f"channel); {len(got - inside)} outside them warned; the all-clear reached {told} of the "
            f"{len(got)} warned")
