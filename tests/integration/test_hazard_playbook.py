"""Hazards through the playbook: a tier from the alert's CAP severity, urgency and certainty and its reach; never
waiting for approval and never holding anyone out (safety); silences and holds apply; responders told at the
trigger and at the cancel."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from forewarn.connectors.memory import InMemoryContactLog
from forewarn.connectors.memory_decisions import InMemoryDecisionStore
from forewarn.connectors.memory_responder_outbox import InMemoryResponderOutbox
from forewarn.connectors.memory_silences import InMemorySilenceStore
from forewarn.decisions import Silence
from forewarn.hazards import Reference
from forewarn.outreach.enqueue import ContactCap
from forewarn.outreach.gate import DecisionGate
from forewarn.outreach.hazards import HazardRule, HazardTracker
from forewarn.outreach.notifier import ResponderNotifier
from forewarn.outreach.playbook import HAZARD_TOPIC
from forewarn.outreach.withhold import Withholding
from forewarn.settings import PlaybookRule, PlaybookSettings
from tests.integration.test_hazards import CAP, Delivering, World, make_world
from tests.recording import Courier

pytestmark = pytest.mark.skipif(not CAP.is_dir(), reason="shared CAP samples are not beside the checkout")


@pytest.fixture
def scene() -> World:
    return make_world()


class Gated(Delivering):
    """Hazard outreach with the playbook's gate, silences, a responder outbox and withholding at send time."""

    def __init__(self, world: World, playbook: PlaybookSettings) -> None:
        alert, index, _, _ = world
        super().__init__(index, [HazardRule(events=(alert.event or "",), min_rank=2)], alert)
        self.decisions, self.silences = InMemoryDecisionStore(), InMemorySilenceStore()
        self.responders = InMemoryResponderOutbox()
        self.outreach.gate = DecisionGate(playbook, self.decisions, index, self.silences, clock=self.clock)
        self.outreach.notifier = ResponderNotifier(self.responders, ("pagerduty", "slack"), clock=self.clock)
        withholding = Withholding(self.decisions, self.silences, self.outbox, clock=self.clock, ttl=0)
        self.courier = Courier(self.outbox, self.senders, self.clock, withholding=withholding)  # type: ignore[arg-type]

    def responder_stages(self) -> list[tuple[str, str]]:
        """Every responder event queued, in the order a worker sends them (each incident's in line)."""
        stages: list[tuple[str, str]] = []
        later = self.clock() + timedelta(minutes=1)
        while events := self.responders.take(100, later, 60.0):
            for event in events:
                stages.append((event.stage, event.target))
                self.responders.settle(event.id, "sent", later)
        return stages


def test_an_extreme_observed_hazard_is_critical_and_warns_at_once_even_where_broadcasts_wait(scene: World) -> None:
    alert, _, inside, _ = scene
    parts = Gated(scene, PlaybookSettings(approval_from="notify", holdout_share=0.5))
    tracker = HazardTracker()
    [opened] = tracker.observe(alert)
    report = parts.outreach.handle(opened)
    decision = report.decision
    assert decision is not None and (decision.severity, decision.tier, decision.approval) == \
        ("critical", "broadcast", "not_needed")
    assert "severity Extreme, urgency Immediate, certainty Observed (rank 4 of 4)" in decision.severity_reasons[0]
    assert dict(decision.labels)["topic"] == HAZARD_TOPIC
    assert report.held is None and parts.deliver() == {"sent": len(inside)}  # nobody held out
    assert report.to_dict()["decision"]["tier"] == "broadcast"

    cancel = dataclasses.replace(alert, identifier=alert.identifier + "-c", msg_type="Cancel", areas=(),
                                 references=(Reference(alert.sender, alert.identifier, alert.sent),))
    [cancelled] = tracker.observe(cancel)
    parts.outreach.handle(cancelled)
    assert sorted(parts.responder_stages()) == [("resolve", "pagerduty"), ("resolve", "slack"),
                                                ("trigger", "pagerduty"), ("trigger", "slack")]
    closed = parts.decisions.load(opened.id)
    assert closed is not None and not closed.open


def test_a_hazard_the_rules_warn_about_is_notified_whatever_the_playbook_says(scene: World) -> None:
    """The playbook's tier for a low hazard is observe; a hazard rule chose to warn: notify, and responders."""
    alert, _, inside, _ = scene
    watch = dataclasses.replace(alert, severity="Moderate", urgency="Future", certainty="Possible")  # rank 1
    parts = Gated(scene, PlaybookSettings(rules=(PlaybookRule(severity=("critical", "high"), tier="broadcast"),
                                                 PlaybookRule(tier="observe"))))
    parts.outreach.rules = (HazardRule(events=(alert.event or "",), min_rank=1),)
    [opened] = HazardTracker().observe(watch)
    report = parts.outreach.handle(opened)
    assert report.decision is not None and (report.decision.severity, report.decision.tier) == ("low", "notify")
    assert report.held is None and parts.deliver() == {"sent": len(inside)}
    assert sorted(parts.responder_stages()) == [("trigger", "pagerduty"), ("trigger", "slack")]


def test_an_update_never_lowers_the_tier(scene: World) -> None:
    """The base grew between the alert and its update, so the same path is no longer widespread; what was queued
    under the louder tier still goes, and the tier stays."""
    alert, index, inside, outside = scene
    parts = Gated(scene, PlaybookSettings(rules=(PlaybookRule(severity=("critical",), reach=("widespread",),
                                                              tier="broadcast"),
                                                 PlaybookRule(tier="notify"))))
    tracker = HazardTracker()
    [opened] = tracker.observe(alert)
    first = parts.outreach.handle(opened)
    assert first.decision is not None and (first.decision.reach, first.decision.tier) == ("widespread", "broadcast")
    index.upsert([outside[0].model_copy(update={"id": f"CU-{900 + i}"}) for i in range(100)])  # far away
    update = dataclasses.replace(alert, identifier=alert.identifier + "-u", msg_type="Update",
                                 references=(Reference(alert.sender, alert.identifier, alert.sent),))
    [updated] = tracker.observe(update)
    again = parts.outreach.handle(updated)
    assert again.decision is not None and again.decision.reach != "widespread"
    assert again.decision.tier == "broadcast"
    assert parts.deliver() == {"sent": len(inside)}


def test_a_critical_hazard_passes_the_budget(scene: World) -> None:
    alert, _, inside, _ = scene
    parts = Gated(scene, PlaybookSettings())
    log = InMemoryContactLog()
    for c in inside:
        log.add(c.id, alert.sent, f"INC-X|{c.id}|warning")  # each already had today's one warning
    parts.outreach.enqueuer.cap = ContactCap(log, max_messages=1, bypass_from="critical")
    [opened] = HazardTracker().observe(alert)
    report = parts.outreach.handle(opened)
    assert report.decision is not None and report.decision.severity == "critical"
    assert report.outcomes == {"enqueued": len(inside)}


def test_a_silenced_hazard_messages_nobody_and_a_held_one_is_withheld_at_send_time(scene: World) -> None:
    alert, _, inside, _ = scene
    parts = Gated(scene, PlaybookSettings(approval_from=None))
    parts.silences.add(Silence("SIL-1", (("topic", HAZARD_TOPIC), ("event", alert.event or "")),
                               alert.sent - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=4),  # kept
                               "drill", "ana"))
    [opened] = HazardTracker().observe(alert)
    report = parts.outreach.handle(opened)
    assert report.held == "silenced by SIL-1: see `forewarn silence list`"
    assert parts.deliver() == {} and parts.responder_stages() == []

    parts = Gated(scene, PlaybookSettings(approval_from=None))
    report = parts.outreach.handle(opened)
    assert report.outcomes == {"enqueued": len(inside)}
    assert parts.outreach.gate is not None
    parts.outreach.gate.act(opened.id, "hold", "ana", "wrong county")  # before a worker took them
    assert parts.deliver() == {"withheld": len(inside)} and parts.sms.sent == []

