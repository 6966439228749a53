"""The demo's verdicts: did a run find what the scenario injected, and reach the right customers.

Read from the run's summary and its outbox files against the scenario's ground truth; one line per
injected episode, printed under the incidents table by `forewarn demo`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from forewarn.demo.scenario import GroundTruth, HazardTruth, Scenario
from forewarn.records import NATIONAL
from forewarn.reports.summary import IncidentRow, RunSummary


def matches(truth: GroundTruth, row: IncidentRow) -> bool:
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
    found = [r for r in rows if matches(truth, r)]
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


def judge_run(scenario: Scenario, summary: RunSummary, out: Path, hazards_enabled: bool = True) -> list[str]:
    """The verdict lines of a run: one per injected incident or control period, then one per hazard episode."""
    warned = warned_customers(out)
    all_clear = messaged_customers(out, "resolved")
    return ([judge(truth, summary.rows, warned) for truth in scenario.truths]
            + [judge_hazard(h, scenario, summary.hazards, warned, all_clear, hazards_enabled)
               for h in scenario.hazards])
