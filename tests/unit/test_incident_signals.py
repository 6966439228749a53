"""Telemetry and case spikes of one topic and region become one incident with both signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from forewarn.outreach.incidents import IncidentTracker
from forewarn.records import Spike, WindowVerdict

T = datetime(2026, 11, 17, 14, tzinfo=UTC)
STEP = timedelta(minutes=15)


def _spike(topic: str, region: str, end: datetime, observed: int, segment=()) -> Spike:
    return Spike(topic, region, end - 4 * STEP, end, observed, 2.0, 1e-9, 9.0, "test", segment=segment)


def test_telemetry_then_cases_on_one_region_are_one_incident() -> None:
    tracker = IncidentTracker(resolve_after=2)
    opened = tracker.observe(WindowVerdict("no_internet", T, T + STEP,
                                           (_spike("telemetry.wan_down", "TX-453", T + STEP, 40),)))
    assert [i.status for i in opened] == ["opened"] and opened[0].signals == {"telemetry.wan_down"}
    cases = _spike("no_internet", "TX-453", T + STEP, 12)
    updated = tracker.observe(WindowVerdict("no_internet", T, T + STEP, (cases,)))
    assert [i.id for i in updated] == [opened[0].id]
    assert updated[0].signals == {"telemetry.wan_down", "no_internet"}
    assert updated[0].observed == 40, "peaks compare faulty devices with faulty devices, not with cases"


def test_signals_of_one_pane_advance_quiet_time_once() -> None:
    tracker = IncidentTracker(resolve_after=2)
    tracker.observe(WindowVerdict("no_internet", T, T + STEP, (_spike("no_internet", "TX-453", T + STEP, 12),)))
    for pane in (1, 1, 1):  # the same pane from three signals: one quiet pane, not three
        assert tracker.observe(WindowVerdict("no_internet", T + pane * STEP, T + (pane + 1) * STEP)) == []
    resolved = tracker.observe(WindowVerdict("no_internet", T + 2 * STEP, T + 3 * STEP))
    assert [i.status for i in resolved] == ["resolved"]


def test_a_device_group_spike_names_its_segment() -> None:
    tracker = IncidentTracker()
    group = (("model", "R7000"), ("firmware", "2.1.7"))
    [incident] = tracker.observe(WindowVerdict("wifi_drops", T, T + STEP,
                                               (_spike("telemetry.wifi_drop", "*", T + STEP, 60, group),)))
    assert incident.region == "*" and incident.known_segment == group
    assert incident.to_dict()["known_segment"] == {"model": "R7000", "firmware": "2.1.7"}


def test_an_unmapped_telemetry_incident_is_held_for_responders() -> None:
    from forewarn.connectors.memory import InMemoryCustomerIndex
    from forewarn.connectors.memory_outbox import InMemoryOutbox
    from forewarn.connectors.templates import JinjaRenderer
    from forewarn.outreach.enqueue import Enqueuer
    from forewarn.outreach.planner import Outreach
    from forewarn.records import Customer

    index = InMemoryCustomerIndex()
    index.upsert([Customer(id="CU-1", region="R1", phone="+15125550100",
                           products=({"model": "R7000", "firmware": "2.1.7"},))])
    outbox = InMemoryOutbox()
    outreach = Outreach(index, Enqueuer(outbox), JinjaRenderer(Path("config/templates")))
    group = (("model", "R7000"), ("firmware", "2.1.7"))
    [incident] = IncidentTracker().observe(WindowVerdict("telemetry.cpu_temp", T, T + STEP,
                                                         (_spike("telemetry.cpu_temp", "*", T + STEP, 78, group),)))
    report = outreach.handle(incident)
    assert report.held is not None and "telemetry_topics" in report.held
    assert report.audience_size == 0 and not report.outcomes
    assert outbox.decided(incident.id, "warning") == set() and outbox.backlog("sms") == 0


def test_an_emerging_topic_incident_is_held_while_a_named_one_is_sent(tmp_path: Path) -> None:
    from forewarn.connectors.memory import InMemoryCustomerIndex
    from forewarn.connectors.memory_outbox import InMemoryOutbox
    from forewarn.connectors.outbox import OutboxSender
    from forewarn.connectors.templates import JinjaRenderer
    from forewarn.outreach.enqueue import Enqueuer
    from forewarn.outreach.planner import Outreach
    from forewarn.records import Customer
    from tests.recording import Clock, Courier

    def run(topic: str, tmp: Path) -> tuple[str | None, int]:
        index = InMemoryCustomerIndex()
        index.upsert([Customer(id=f"CU-{i}", region="R1", phone=f"+1512555{i:04d}") for i in range(5)])
        outbox, clock = InMemoryOutbox(), Clock(T + STEP)
        outreach = Outreach(index, Enqueuer(outbox, clock=clock), JinjaRenderer(Path("config/templates")))
        [incident] = IncidentTracker().observe(WindowVerdict(topic, T, T + STEP, (_spike(topic, "R1", T + STEP, 30),)))
        report = outreach.handle(incident)
        with OutboxSender(tmp / f"{topic}.jsonl", "sms") as sms:
            Courier(outbox, {"sms": sms}, clock).run()  # a worker sends what was decided
        return report.held, len(outbox.accepted(incident.id, "warning"))

    held, sent = run("new:loop+reboot+router", tmp_path)
    assert held is not None and "emerging topic" in held and "forewarn audience INC-" in held and sent == 0
    assert (tmp_path / "new:loop+reboot+router.jsonl").read_text() == ""
    assert run("no_internet", tmp_path) == (None, 5)  # the same incident on a named topic reaches all five
    assert len((tmp_path / "no_internet.jsonl").read_text().splitlines()) == 5
