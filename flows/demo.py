"""`forewarn demo`: the seeded scenario through the full flow, with no external service.

The scenario's hazard alerts are a second input file beside the cases: the flow tells them
apart by their shape (NWS GeoJSON), and `forewarn detect` over events.jsonl never sees them.
At the end the public status feed is written beside the report (`status.json`, `status.atom`), as
`forewarn web` would serve it at the scenario's end, and each published incident's knowledge-base article
and call-centre script into `documents/` (`INC.article.md`, `INC.script.txt`, as `forewarn incident texts`
makes them).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import orjson
from bytewax.testing import run_main

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.templates import JinjaRenderer
from forewarn.decisions import AuditEntry, Decision
from forewarn.demo.scenario import generate
from forewarn.flows.demo_feedback import CALLS_AVOIDED, WarnedCustomers, feedback_source
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import MemoryParts, file_io
from forewarn.outreach.documents import document_files, documents_for
from forewarn.outreach.effect import Effect, describe, fewer_calls, measured, pooled
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
    warned = WarnedCustomers(parts)  # customers who were warned skip some of their calls: the effect to measure
    io.source = feedback_source([out / "events.jsonl", out / "alerts.jsonl"], warned, settings.max_record_bytes)
    io.customer_index = lambda: index
    io.drain = parts.drain
    io.region_weights = {region: float(n) for region, n in index.attribute_counts("region").items()}
    run_main(build_flow(settings, io))
    assert io.drain is not None
    if not io.drain():
        raise RuntimeError("the demo's outbox did not drain in time")
    summary = RunSummary.from_dir(out)
    summary.notes = judge_run(scenario, summary, out, hazards_enabled=settings.hazards is not None)
    effects = measured(parts.decisions.recent(1_000), parts.outbox, parts.store)
    summary.notes += effect_notes(effects, parts, warned)
    add_stages_and_effects(summary, effects, parts)
    write_report(out / "report.html", scenario, summary, settings)
    write_status_feed(out, parts, scenario.end)
    write_documents(out, parts, scenario.end)
    return summary


def effect_notes(effects: Sequence[Effect], parts: MemoryParts, warned: WarnedCustomers) -> list[str]:
    """The holdout's estimate of each incident's effect, and all of them pooled, beside the scenario's truth."""
    topics = {d.incident_id: d.topic for d in parts.decisions.recent(1_000)}
    notes = [f"effect {topics[e.incident_id or '']} ({e.incident_id}): {describe(e)}" for e in effects]
    if effects:
        notes.append(f"effect of all incidents pooled: {describe(pooled(effects))}; truth: warned customers skip "
                     f"{CALLS_AVOIDED:.0%} of their calls ({warned.dropped} calls skipped in this run)")
    return notes


def add_stages_and_effects(summary: RunSummary, effects: Sequence[Effect], parts: MemoryParts) -> None:
    """Each incident's life (the stages its decision went through, from the audit trail) and its measured effect,
    on the summary's rows."""
    decisions = {d.incident_id: d for d in parts.decisions.recent(1_000)}
    by_incident = {e.incident_id: e for e in effects}
    for row in summary.rows:
        if (decision := decisions.get(row.id)) is not None:
            row.stages = stages_text(decision, parts.decisions.audit(row.id))
        if (effect := by_incident.get(row.id)) is not None:
            row.effect = fewer_calls(effect)


def stages_text(decision: Decision, audit: Sequence[AuditEntry]) -> str:
    """`investigating → approve → ack → update → resolved (quiet)`: what happened to the incident, in order."""
    steps = ["investigating", *(a.action for a in audit)]
    if not decision.open and "resolve" not in steps:
        steps.append("resolved (quiet windows)")
    elif not decision.open:
        steps[steps.index("resolve")] = "resolved"
    return " → ".join(steps)


def write_status_feed(out: Path, parts: MemoryParts, now: datetime) -> None:
    """`status.json` and `status.atom` from the run's decisions as of `now` (the scenario's end: the same every
    run), with the URLs `forewarn web` would serve them at."""
    settings = parts.settings
    site = (settings.web.public_url or f"http://{settings.web.host}:{settings.web.port}").rstrip("/")
    decisions = parts.decisions.open_decisions() + parts.decisions.recent(1_000)
    document = status_document(decisions, settings.outreach.topic_labels, now)
    (out / "status.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    (out / "status.atom").write_bytes(atom_feed(document, f"{site}/status.atom", f"{site}/status.json"))


def write_documents(out: Path, parts: MemoryParts, now: datetime) -> list[Path]:
    """`documents/INC.article.md` and `INC.script.txt` for each incident of the run whose decision has documents
    (`publish`, `broadcast`, a labelled topic), as of `now` (the scenario's end: the same every run); the files
    written, in incident order."""
    settings = parts.settings
    renderer = JinjaRenderer(settings.outreach.templates)
    decisions = {d.incident_id: d for d in parts.decisions.open_decisions() + parts.decisions.recent(1_000)}
    folder = out / "documents"
    written: list[Path] = []
    for incident_id, decision in sorted(decisions.items()):
        incident = parts.store.load(incident_id)
        documents = documents_for(decision, incident, renderer, settings.outreach.topic_labels, now) \
            if incident is not None else None
        if documents is None:
            continue
        folder.mkdir(exist_ok=True)
        names = document_files(incident_id)
        for name, text in documents.items():
            (folder / names[name]).write_text(text, encoding="utf-8")
            written.append(folder / names[name])
    return written
