"""Quiet hours: no texts in a customer's night; the SMS waits in the outbox for their morning, then goes.

Nothing is dropped or switched: the audience is the same by day and by night, an email goes at once
(it waits in the inbox), an urgent message goes at once, and a deferred SMS is sent when the
recipient's quiet span ends in their own time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given
from hypothesis import strategies as st

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.interfaces import Rendered
from forewarn.outreach.audience import build_audience
from forewarn.outreach.enqueue import DeliveryTally, Enqueuer
from forewarn.outreach.policy import QuietHours
from forewarn.records import Channel, Customer, Message, SendResult
from tests.recording import Clock, Courier

QUIET = QuietHours(time(21), time(8))
AT = datetime(2026, 11, 20, 5, 30, tzinfo=UTC)  # 23:30 in Chicago, 06:30 in Berlin, 14:30 in Tokyo
CHICAGO_MORNING = datetime(2026, 11, 20, 14, tzinfo=UTC)  # 08:00 CST
BERLIN_MORNING = datetime(2026, 11, 20, 7, tzinfo=UTC)  # 08:00 CET


def _c(i: int, timezone: str, email: bool = True, channel: str = "sms", **extra: object) -> Customer:
    return Customer.model_validate({"id": f"CU-{i}", "region": "R1", "phone": f"+1512555010{i}",
                                    "email": f"c{i}@example.com" if email else None, "timezone": timezone,
                                    "preferred_channel": channel, **extra})


class Recorder:
    def __init__(self, channel: Channel, clock: Clock) -> None:
        self.channel = channel
        self.clock = clock
        self.sent: list[tuple[str, datetime]] = []

    def send(self, message: Message, *, status_callback: str | None = None, html: str | None = None) -> SendResult:
        self.sent.append((message.key.customer_id, self.clock()))
        return SendResult(ok=True)


def _render(customer: Customer, channel: Channel) -> tuple[Rendered, str | None]:
    return Rendered("Outage" if channel == "email" else None, "Outage near you."), None


CUSTOMERS = [
    _c(1, "America/Chicago"),                           # 23:30: quiet -> SMS at 08:00 Chicago
    _c(2, "America/Chicago", email=False),              # 23:30: quiet, no email -> SMS at 08:00 all the same
    _c(3, "Asia/Tokyo"),                                # 14:30: daytime -> SMS now
    _c(4, "America/Chicago", channel="email"),          # email goes now, night or not
    _c(5, "America/Chicago", opt_out={"email": True}),  # quiet, opted out of email -> SMS at 08:00
    _c(6, "Europe/Berlin"),                             # 06:30: quiet -> SMS at 08:00 Berlin
]


def _world(quiet: QuietHours | None = QUIET) -> tuple[Enqueuer, InMemoryOutbox, Clock, dict[Channel, Recorder]]:
    clock = Clock(AT)
    outbox = InMemoryOutbox()
    senders: dict[Channel, Recorder] = {"sms": Recorder("sms", clock), "email": Recorder("email", clock)}
    return Enqueuer(outbox, quiet=quiet, clock=clock), outbox, clock, senders


def _decide(enqueuer: Enqueuer, urgent: bool = False) -> DeliveryTally:
    index = InMemoryCustomerIndex()
    index.upsert(CUSTOMERS)
    audience = build_audience({"region": "R1"}, index, frozenset(), 100)
    tally = DeliveryTally(audience_size=len(audience.recipients))
    enqueuer.enqueue(tally, "INC-1", "warning", audience.recipients, _render, AT, urgent=urgent)
    return tally


def test_night_sms_waits_for_the_local_morning_across_three_zones_and_is_sent_then() -> None:
    enqueuer, outbox, clock, senders = _world()
    tally = _decide(enqueuer)
    # Nobody is left out of the audience at night, and nobody is switched to another channel.
    assert tally.audience_size == 6 and not tally.excluded
    assert dict(tally.outcomes) == {"deferred": 4, "enqueued": 2}
    assert dict(tally.enqueued_by_channel) == {"sms": 5, "email": 1}
    assert outbox.funnel("INC-1") == {"decided": 6, "deferred": 4, "enqueued": 2}

    courier = Courier(outbox, senders, clock)
    assert courier.run() == {"sent": 2}
    assert senders["sms"].sent == [("CU-3", AT)] and senders["email"].sent == [("CU-4", AT)]
    assert outbox.scheduled() == 4  # the others wait in the outbox, none dropped
    clock.now = BERLIN_MORNING - timedelta(seconds=1)
    assert courier.run() == {}
    clock.now = BERLIN_MORNING
    assert courier.run() == {"sent": 1} and senders["sms"].sent[-1] == ("CU-6", BERLIN_MORNING)
    clock.now = CHICAGO_MORNING - timedelta(seconds=1)
    assert courier.run() == {}
    clock.now = CHICAGO_MORNING
    assert courier.run() == {"sent": 3}
    assert sorted(c for c, at in senders["sms"].sent if at == CHICAGO_MORNING) == ["CU-1", "CU-2", "CU-5"]
    assert outbox.accepted("INC-1", "warning") == {c.id for c in CUSTOMERS} and outbox.scheduled() == 0
    assert senders["email"].sent == [("CU-4", AT)]  # no SMS became an email


def test_without_quiet_hours_or_when_urgent_every_sms_goes_at_once() -> None:
    for quiet, urgent in ((None, False), (QUIET, True)):
        enqueuer, outbox, clock, senders = _world(quiet)
        assert dict(_decide(enqueuer, urgent=urgent).outcomes) == {"enqueued": 6}
        assert Courier(outbox, senders, clock).run() == {"sent": 6}
        assert {c for c, _ in senders["sms"].sent} == {"CU-1", "CU-2", "CU-3", "CU-5", "CU-6"}


def test_a_deferred_sms_still_has_its_whole_deadline_after_the_morning() -> None:
    clock = Clock(AT)
    outbox = InMemoryOutbox()
    enqueuer = Enqueuer(outbox, deadline=timedelta(hours=1), quiet=QUIET, clock=clock)
    index = InMemoryCustomerIndex()
    index.upsert([CUSTOMERS[0]])
    audience = build_audience({"region": "R1"}, index, frozenset(), 100)
    enqueuer.enqueue(DeliveryTally(), "INC-1", "warning", audience.recipients, _render, AT)
    sms = Recorder("sms", clock)
    clock.now = CHICAGO_MORNING + timedelta(minutes=59)  # a worker that was down until just before the deadline
    assert Courier(outbox, {"sms": sms}, clock).run() == {"sent": 1}


def test_an_incident_resolved_before_the_morning_sends_neither_the_warning_nor_the_all_clear() -> None:
    enqueuer, outbox, clock, senders = _world()
    index = InMemoryCustomerIndex()
    index.upsert([CUSTOMERS[0]])
    recipients = build_audience({"region": "R1"}, index, frozenset(), 100).recipients
    enqueuer.enqueue(DeliveryTally(), "INC-1", "warning", recipients, _render, AT)
    resolved_at = AT + timedelta(hours=2)  # 01:30 in Chicago: fixed while the customer sleeps
    clock.now = resolved_at
    enqueuer.enqueue(DeliveryTally(), "INC-1", "resolved", recipients, _render, resolved_at)
    courier = Courier(outbox, senders, clock)
    courier.run()
    clock.now = CHICAGO_MORNING
    courier.run_until_settled(timedelta(seconds=1))
    assert senders["sms"].sent == [] and senders["email"].sent == []
    assert outbox.state("INC-1|CU-1|warning|sms")["state"] == "superseded"
    assert outbox.state("INC-1|CU-1|resolved|sms")["state"] == "superseded"
    # decided: the warning (deferred), then the all-clear, which found it still waiting: both superseded
    assert outbox.funnel("INC-1") == {"decided": 2, "deferred": 1, "superseded": 2} and outbox.scheduled() == 0


def test_quiet_hours_that_do_not_cross_midnight() -> None:
    siesta = QuietHours(time(13), time(15))
    customer = _c(1, "Europe/Madrid")
    assert siesta.is_quiet(customer, datetime(2026, 11, 20, 13, tzinfo=UTC))   # 14:00 in Madrid
    assert not siesta.is_quiet(customer, datetime(2026, 11, 20, 15, tzinfo=UTC))  # 16:00
    assert siesta.ends_after(customer, datetime(2026, 11, 20, 13, tzinfo=UTC)) == datetime(2026, 11, 20, 14, tzinfo=UTC)
    assert siesta.ends_after(customer, datetime(2026, 11, 20, 15, tzinfo=UTC)) is None


def test_the_morning_is_the_customers_own_across_a_daylight_saving_change() -> None:
    # The night of 2026-03-07/08 in Chicago springs forward at 02:00: 08:00 is then 13:00 UTC, not 14:00.
    ana = _c(1, "America/Chicago")
    assert QUIET.ends_after(ana, datetime(2026, 3, 8, 5, tzinfo=UTC)) == datetime(2026, 3, 8, 13, tzinfo=UTC)
    # A quiet span ending in the hour that does not exist ends no earlier than the clocks say.
    gap = QuietHours(time(1), time(2, 30))
    end = gap.ends_after(ana, datetime(2026, 3, 8, 7, 30, tzinfo=UTC))  # 01:30 CST
    assert end is not None and end > datetime(2026, 3, 8, 7, 30, tzinfo=UTC) and not gap.is_quiet(ana, end)


ZONES = ["America/Chicago", "Europe/Berlin", "Asia/Tokyo", "Australia/Lord_Howe", "America/St_Johns", "UTC"]


@given(zone=st.sampled_from(ZONES), start=st.integers(0, 23), end=st.integers(0, 23),
       at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)))
@example(zone="Australia/Lord_Howe", start=1, end=2, at=datetime(2026, 10, 3, 14, 45, tzinfo=UTC))  # 30-min gap
@example(zone="America/Chicago", start=1, end=2, at=datetime(2026, 3, 8, 7, 30, tzinfo=UTC))  # 02:00 never comes
@example(zone="America/Chicago", start=0, end=1, at=datetime(2026, 11, 1, 5, 30, tzinfo=UTC))  # 01:00 twice
def test_a_quiet_moment_ends_at_the_first_moment_that_is_not_quiet(zone: str, start: int, end: int,
                                                                   at: datetime) -> None:
    quiet = QuietHours(time(start), time(end))
    customer = _c(1, zone)
    ends = quiet.ends_after(customer, at)
    if not quiet.is_quiet(customer, at):
        assert ends is None
        return
    assert ends is not None and ends.tzinfo is not None and ends > at
    assert not quiet.is_quiet(customer, ends)
    assert ends - at <= timedelta(hours=25)  # at most a day (and a daylight-saving hour)
    local = ends.astimezone(ZoneInfo(zone))
    late = (local.hour * 60 + local.minute - end * 60) % (24 * 60)
    assert late <= 60 and local.second == 0  # the span's end on the local clock, or just after a gap there
