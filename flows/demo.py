"""`forewarn demo`: the seeded scenario through the full flow, with no external service.

The scenario's hazard alerts are a second input file beside the cases: the flow tells them
apart by their shape (NWS GeoJSON), and `forewarn detect` over events.jsonl never sees them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bytewax.testing import run_main

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.demo.scenario import generate
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import memory_io
from forewarn.reports.judgement import judge_run
from forewarn.reports.report import write_report
from forewarn.reports.summary import RunSummary
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
    assert io.drain is not None
    if not io.drain():
        raise RuntimeError("the demo's outbox did not drain in time")
    summary = RunSummary.from_dir(out)
    summary.notes = judge_run(scenario, summary, out, hazards_enabled=settings.hazards is not None)
    write_report(out / "report.html", scenario, summary, settings)
    return summary
