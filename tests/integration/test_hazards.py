"""Forecast incidents from real CAP/NWS alerts: the audience in the path, updates, cancellations."""

from __future__ import annotations

import dataclasses
from datetime import time, timedelta
from pathlib import Path

import pytest
import shapely

from forewarn.connectors.cap import Circle, HazardAlert, Reference, parse_alerts
from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.templates import JinjaRenderer
from forewarn.outreach.enqueue import Enqueuer
from forewarn.outreach.hazards import HazardOutreach, HazardRule, HazardTracker
from forewarn.outreach.policy import QuietHours
from forewarn.records import Customer
from tests.recording import Clock, Courier, Outbox

CAP = Path(__file__).resolve().parents[3] / "shared" / "data" / "cap"
pytestmark = pytest.mark.skipif(not CAP.is_dir(), reason="shared CAP samples are not beside the checkout")



def _alert(relative: str) -> HazardAlert:
    [alert] = parse_alerts((CAP / relative).read_bytes())
    return alert


def _customer(i: int, lat: float, lon: float, region: str = "MD-031", **extra: object) -> Customer:
    return Customer.model_validate({"id": f"CU-{i:03d}", "phone": f"+1512555{i:04d}", "region": region,
                                    "lat": lat, "lon": lon, "timezone": "America/New_York", **extra})


World = tuple[HazardAlert, InMemoryCustomerIndex, list[Customer], list[Customer]]


@pytest.fixture
def world() -> World:
    return make_world()


def make_world() -> World:
    """A real alert with one polygon, customers inside it and customers outside."""
    alert = _alert("cap12_xml/ipaws-5e7e0fc5023f1930efcf3deb.xml")  # Local Area Emergency, one polygon
    ring = alert.areas[0].polygons[0]
    polygon = shapely.Polygon([(lon, lat) for lat, lon in ring])
    point = polygon.representative_point()
    inside = [_customer(i, point.y + 0.001 * (i % 3), point.x + 0.001 * (i // 3)) for i in range(6)]
    inside = [c for c in inside if polygon.contains(shapely.Point(c.lon, c.lat))]
    _, _, maxx, maxy = polygon.bounds
    outside = [_customer(100 + i, maxy + 0.05 + 0.01 * i, maxx + 0.05) for i in range(4)]
    index = InMemoryCustomerIndex()
    index.upsert([*inside, *outside])
    return alert, index, inside, outside


class Delivering:
    """Hazard outreach deciding into an in-process outbox, and a worker (`tests.recording.Courier`) that
    sends what was decided to recording senders whenever `deliver` is called."""

    def __init__(self, index: InMemoryCustomerIndex, rules: list[HazardRule], alert: HazardAlert,
                 quiet: QuietHours | None = None, channels: tuple[str, ...] = ("sms",)) -> None:
        self.outbox, self.clock = InMemoryOutbox(), Clock(alert.sent)
        self.senders = {channel: Outbox(channel) for channel in channels}  # type: ignore[arg-type]
        self.outreach = HazardOutreach(index, Enqueuer(self.outbox, quiet=quiet, clock=self.clock),
                                       JinjaRenderer(Path("config/templates")), rules)
        self.courier = Courier(self.outbox, self.senders, self.clock)  # type: ignore[arg-type]

    @property
    def sms(self) -> Outbox:
        return self.senders["sms"]

    def deliver(self) -> dict[str, int]:
        return dict(self.courier.run())


def _outreach(index: InMemoryCustomerIndex, rules: list[HazardRule], alert: HazardAlert) -> Delivering:
    return Delivering(index, rules, alert)


def test_alert_update_cancel_reach_the_path_once_and_then_stand_down(world) -> None:
    alert, index, inside, outside = world
    assert len(inside) >= 3
    parts = _outreach(index, [HazardRule(events=(alert.event or "",), min_rank=3)], alert)
    outreach, sms = parts.outreach, parts.sms
    tracker = HazardTracker()

    [opened] = tracker.observe(alert)
    report = outreach.handle(opened)
    assert report.outcomes == {"enqueued": len(inside)} and sms.sent == []  # decided; a worker sends
    assert parts.deliver() == {"sent": len(inside)}
    warned = {m.key.customer_id for m in sms.sent}
    assert opened.status == "opened" and warned == {c.id for c in inside}
    assert all(alert.event in m.body and "{{" not in m.body for m in sms.sent)

    # An update that adds a circle around one outside customer: only that customer is new.
    extra = outside[0]
    wider = dataclasses.replace(alert.areas[0], circles=(Circle(extra.lat, extra.lon, 1.0),))
    update = dataclasses.replace(alert, identifier=alert.identifier + "-u", msg_type="Update", areas=(wider,),
                                 references=(Reference(alert.sender, alert.identifier, alert.sent),))
    [updated] = tracker.observe(update)
    report = outreach.handle(updated)
    assert report.outcomes == {"duplicate": len(inside), "enqueued": 1}
    parts.deliver()
    assert updated.id == opened.id and updated.status == "updated"
    assert [m.key.customer_id for m in sms.sent[len(warned):]] == [extra.id]

    cancel = dataclasses.replace(alert, identifier=alert.identifier + "-c", msg_type="Cancel", areas=(),
                                 references=(Reference(alert.sender, update.identifier, update.sent),))
    [cancelled] = tracker.observe(cancel)
    report = outreach.handle(cancelled)
    assert report.enqueued_by_channel == {"sms": len(warned) + 1}
    assert parts.deliver() == {"sent": len(warned) + 1}
    stood_down = {m.key.customer_id for m in sms.sent if m.key.kind == "resolved"}
    assert cancelled.id == opened.id and stood_down == warned | {extra.id}
    assert parts.outbox.accepted(opened.id, "resolved") == stood_down
    assert all("withdrawn" in m.body for m in sms.sent if m.key.kind == "resolved")
    # The same alerts again (a replay): nothing new is decided or sent.
    assert outreach.handle(cancelled).outcomes == {"duplicate": len(warned) + 1}
    assert parts.deliver() == {}


def test_tests_and_administrative_messages_reach_nobody() -> None:
    tracker = HazardTracker()
    for sample in ("cap12_xml/ipaws-5e6ddbad023f1930ef6c1a5a.xml", "cap12_xml/ipaws-5e6dd964023f1930ef638846.xml"):
        assert tracker.observe(_alert(sample)) == []
    assert sum(tracker.ignored.values()) == 2
    # The bare Cancel of the archive references an alert this tracker never saw: nothing to withdraw.
    assert tracker.observe(_alert("cap12_xml/ipaws-5e6dd9de023f1930ef6548d9.xml")) == []


def test_an_alert_without_geometry_targets_its_counties_and_the_rule_decides_who(world) -> None:
    alert = _alert("nws_cap11_xml/nws-5c2cf27b1f56885d61654dc47fa411d5.xml")  # Blizzard: FIPS6, no polygon
    index = InMemoryCustomerIndex()
    exposed = [_customer(1, 47.7, -90.3, region="MN-031", battery_backup=False),
               _customer(2, 47.5, -91.0, region="MN-075", battery_backup=False)]
    covered = _customer(3, 47.6, -90.5, region="MN-031", battery_backup=True)
    elsewhere = _customer(4, 44.9, -93.2, region="MN-053", battery_backup=False)
    index.upsert([*exposed, covered, elsewhere])
    rule = HazardRule(events=("Blizzard Warning",), min_rank=2, require=(("battery_backup", "false"),))
    parts = _outreach(index, [rule], alert)
    [incident] = HazardTracker().observe(alert)
    report = parts.outreach.handle(incident)
    parts.deliver()
    assert {m.key.customer_id for m in parts.sms.sent} == {c.id for c in exposed}
    assert report.audience_size == 2 and report.to_dict()["hazard"]["event"] == "Blizzard Warning"


def test_an_event_without_a_rule_is_held_for_responders(world) -> None:
    alert, index, _, _ = world
    parts = _outreach(index, [HazardRule(events=("High Wind Warning",))], alert)
    [incident] = HazardTracker().observe(alert)
    report = parts.outreach.handle(incident)
    assert parts.deliver() == {}
    assert report.held is not None and "hazards.rules" in report.held and parts.sms.sent == []
    assert parts.outbox.decided(incident.id, "warning") == set()


def test_expired_alerts_close_without_a_message(world) -> None:
    alert, _, _, _ = world
    tracker = HazardTracker()
    tracker.observe(dataclasses.replace(alert, expires=alert.sent + timedelta(hours=1)))
    assert tracker.expire(alert.sent) == []
    [expired] = tracker.expire(alert.sent + timedelta(hours=2))
    assert expired.status == "expired"


def test_a_statewide_alert_reaches_every_county_of_the_state_even_in_quiet_hours() -> None:
    alert = _alert("cap12_xml/ipaws-5ea321f39fc226a7b44b6874.xml")  # Civil Emergency, SAME 026000: Michigan
    index = InMemoryCustomerIndex()
    michigan = [_customer(1, 42.3, -83.0, region="MI-163"), _customer(2, 46.5, -87.4, region="MI-103")]
    ohio = _customer(3, 41.5, -81.7, region="OH-035")
    index.upsert([*michigan, ohio])
    # Quiet all day: a rank-4 emergency is urgent and goes out by SMS at once anyway.
    assert alert.severity_rank() >= 3
    parts = Delivering(index, [HazardRule(events=(alert.event or "",))], alert, quiet=QuietHours(time(0), time(23, 59)))
    [incident] = HazardTracker().observe(alert)
    report = parts.outreach.handle(incident)
    assert report.outcomes == {"enqueued": 2}
    assert parts.deliver() == {"sent": 2}
    assert {m.key.customer_id for m in parts.sms.sent} == {c.id for c in michigan}


def test_a_non_urgent_alert_at_night_waits_for_the_morning_by_sms(world) -> None:
    """Quiet hours defer a watch's SMS to the end of the customer's quiet span; it is not switched to
    email, not dropped, and goes by SMS then."""
    alert, index, inside, _ = world
    watch = dataclasses.replace(alert, severity="Moderate", urgency="Future", certainty="Possible")
    assert watch.severity_rank() < 3
    index.upsert([c.model_copy(update={"email": f"{c.id.lower()}@example.com"}) for c in inside])
    quiet = QuietHours(time(0), time(23, 59))
    parts = Delivering(index, [HazardRule(events=(alert.event or "",), min_rank=1)], watch, quiet=quiet,
                       channels=("sms", "email"))
    [incident] = HazardTracker().observe(watch)
    report = parts.outreach.handle(incident)
    assert report.outcomes == {"deferred": len(inside)} and report.enqueued_by_channel == {"sms": len(inside)}
    assert parts.deliver() == {} and parts.outbox.scheduled() == len(inside)
    morning = quiet.ends_after(inside[0], watch.sent)  # 23:59 in New York, where they all live
    assert morning is not None
    parts.clock.now = morning - timedelta(seconds=1)
    assert parts.deliver() == {}
    parts.clock.now = morning
    assert parts.deliver() == {"sent": len(inside)}
    assert parts.senders["email"].sent == [] and {m.key.customer_id for m in parts.sms.sent} == {c.id for c in inside}
