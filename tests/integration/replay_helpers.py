"""The small scenario replayed through the whole flow over files, with the wall clock injected.

Shared by the tests that compare a hostile run with a clean one (time bounds, duplicates).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from bytewax.testing import run_main

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.demo.scenario import Scenario, generate
from forewarn.flows.early_warning import build_flow
from forewarn.flows.wiring import memory_io
from forewarn.settings import Settings

WALL_CLOCK = datetime(2026, 11, 30, 12, tzinfo=UTC)
"""A live run's wall clock is never read by a replay; fixed so nothing here depends on today."""

Run = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]
"""Spikes, incident reports and dead letters of one run."""


@cache
def small_scenario() -> Scenario:
    """2,000 customers in 10 regions: the regional outage is detectable, and it runs in seconds."""
    return generate(seed=1, customers=2_000, regions=10)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def sorted_docs(docs: list[dict[str, Any]]) -> list[bytes]:
    """Documents in a canonical order: runs compare as sets of records, whatever order the workers chose."""
    return sorted(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in docs)


def replay(lines: list[bytes], out: Path, settings: Settings | None = None) -> Run:
    """The full flow (detection, incidents, outreach to outbox files) over `lines`, with the default settings
    unless others are given."""
    out.mkdir(parents=True, exist_ok=True)
    events = out / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in lines))
    index = InMemoryCustomerIndex()
    index.upsert(small_scenario().customers)
    settings = settings or Settings()
    io = memory_io(settings, [events], out / "results", index)
    io.region_weights = {region: float(n) for region, n in index.attribute_counts("region").items()}
    io.now = lambda: WALL_CLOCK
    run_main(build_flow(settings, io))
    results = out / "results"
    return (read_jsonl(results / "spikes.jsonl"), read_jsonl(results / "incidents.jsonl"),
            read_jsonl(results / "dead_letters.jsonl"))
