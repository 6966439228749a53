"""`forewarn demo`: the seeded scenario through the full flow, with no external service.

The scenario's hazard alerts are a second input file beside the cases: the flow tells them
apart by their shape (NWS GeoJSON), and `forewarn detect` over events.jsonl never sees them.
At the end the public status feed is written beside the report (`status.json`, `status.atom`), as
`forewarn web` would serve it at the scenario's end.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import orjson
from bytewax.testing import run_main

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.demo.scenario import generate
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import MemoryParts, file_io
from forewarn.outreach.status_feed import atom_feed, status_document
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
    # memory_io's parts, built here so the decision store stays in reach for the status feed
    parts = MemoryParts(settings, index, out)
    io = file_io(settings, [out / "events.jsonl", out / "alerts.jsonl"], out, parts.outreach,
                 hazards=parts.hazards if settings.hazards else None)
    io.customer_index = lambda: index
    io.drain = parts.drain
    io.region_weights = {region: float(n) for region, n in index.attribute_counts("region").items()}
    run_main(build_flow(settings, io))
    assert io.drain is not None
    if not io.drain():
        raise RuntimeError("the demo's outbox did not drain in time")
    summary = RunSummary.from_dir(out)
    summary.notes = judge_run(scenario, summary, out, hazards_enabled=settings.hazards is not None)
    write_report(out / "report.html", scenario, summary, settings)
    write_status_feed(out, parts, scenario.end)
    return summary


def write_status_feed(out: Path, parts: MemoryParts, now: datetime) -> None:
    """`status.json` and `status.atom` from the run's decisions as of `now` (the scenario's end: the same every
    run), with the URLs `forewarn web` would serve them at."""
    settings = parts.settings
    site = (settings.web.public_url or f"http://{settings.web.host}:{settings.web.port}").rstrip("/")
    decisions = parts.decisions.open_decisions() + parts.decisions.recent(1_000)
    document = status_document(decisions, settings.outreach.topic_labels, now)
    (out / "status.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    (out / "status.atom").write_bytes(atom_feed(document, f"{site}/status.atom", f"{site}/status.json"))
