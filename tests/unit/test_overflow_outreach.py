"""Outreach never targets the overflow bucket of capped regions (issue 9, item 5).

The region name is written out (not imported) so this test runs unchanged against code
from before the cap, where such an incident warned whoever carried the name as a region.
"""

from __future__ import annotations

from datetime import UTC, datetime

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.templates import JinjaRenderer
from forewarn.outreach.enqueue import Enqueuer
from forewarn.outreach.planner import Outreach
from forewarn.records import Channel, Customer, Incident
from tests.recording import Clock, Courier
from tests.unit.test_outreach import TEMPLATES, ScriptedSender

OVERFLOW = "~overflow"
T = datetime(2026, 11, 17, 14, 15, tzinfo=UTC)


def test_outreach_never_targets_the_overflow_bucket() -> None:
    """Even when customers carry the bucket's name as their region, an incident on it is held."""
    index = InMemoryCustomerIndex()
    index.upsert([Customer(id=f"CU-{i:03d}", phone=f"+1512555{i:04d}", region=OVERFLOW,
                           timezone="America/Chicago") for i in range(20)])
    senders: dict[Channel, ScriptedSender] = {"sms": ScriptedSender("sms"), "email": ScriptedSender("email")}
    outbox, clock = InMemoryOutbox(), Clock(T)
    outreach = Outreach(index, Enqueuer(outbox, clock=clock), JinjaRenderer(TEMPLATES), max_audience=100)
    incident = Incident("INC-20261117T1315Z-no_internet-overflow-0001", "no_internet", OVERFLOW, "opened",
                        opened_at=T, first_window_start=T, last_spike_end=T, observed=40, expected=1.0, spikes=1,
                        linked_cases=40, reporters=frozenset(f"CU-{i:03d}" for i in range(6)))

    report = outreach.handle(incident)

    assert report.held is not None and OVERFLOW in report.held
    assert "detection.max_regions_per_topic" in report.held
    assert not report.outcomes and outbox.decided(incident.id, "warning") == set()  # nothing decided
    assert Courier(outbox, senders, clock).run() == {}  # so a worker has nothing to send
    assert not senders["sms"].sent and not senders["email"].sent
