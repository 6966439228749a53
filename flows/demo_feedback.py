"""The demo's customers react to their warnings: a warned customer skips some of the calls they would have made.

This is the behaviour that makes the holdout's effect estimate measurable in `forewarn demo`: the scenario
was generated with every affected customer calling as they would unwarned; while the flow replays it, a case
from a customer already warned about an open incident on that topic is dropped with probability
`CALLS_AVOIDED` (by a hash of the customer and the topic, so a run is deterministic). Held-out customers are
never warned, so they keep calling: comparing the two groups recovers `CALLS_AVOIDED`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import orjson

from forewarn.connectors.jsonl import JsonlSource
from forewarn.flows.wiring import MemoryParts

CALLS_AVOIDED = 0.6
"""The scenario's true effect: the share of their calls about the incident that warned customers skip."""
FEEDBACK_BATCH = 50
"""Lines a batch: small, so a warning decided now reaches the calls read next (the source reads ahead)."""


def skips_call(customer_id: str, topic: str, share: float = CALLS_AVOIDED) -> bool:
    digest = hashlib.blake2b(f"{customer_id}|{topic}|calls".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


class WarnedCustomers:
    """Who the run has warned so far, and about what: read from the in-process outbox and decision store."""

    def __init__(self, parts: MemoryParts) -> None:
        self.parts = parts
        self.dropped = 0

    def keeps(self, raw: bytes) -> bool:
        try:
            record = orjson.loads(raw)
            customer, topic, ts = record["customer_id"], record["topic"], datetime.fromisoformat(record["ts"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return True  # not a case this simulation understands: the flow judges it as usual
        if record.get("type") != "case" or not skips_call(customer, topic):
            return True
        for decision in self.parts.decisions.open_decisions():
            if decision.topic == topic and decision.decided_at <= ts \
                    and customer in self.parts.outbox.decided(decision.incident_id, "warning"):
                self.dropped += 1
                return False
        return True


def feedback_source(paths: list[Path], warned: WarnedCustomers, max_bytes: int) -> JsonlSource:
    """The demo's input, read in small batches, its lines passing `WarnedCustomers.keeps` first."""
    return JsonlSource(paths, batch_size=FEEDBACK_BATCH, max_bytes=max_bytes, keep=warned.keeps)
