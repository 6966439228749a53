"""Quiet hours: no texts in a customer's night; email instead, or held and counted."""

from __future__ import annotations

from datetime import UTC, datetime, time

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.outreach.audience import build_audience
from forewarn.outreach.policy import QuietHours
from forewarn.records import Customer

QUIET = QuietHours(time(21), time(8))
AT = datetime(2026, 11, 20, 5, 30, tzinfo=UTC)  # 23:30 in Chicago, 14:30 in Tokyo


def _c(i: int, timezone: str, email: bool = True, channel: str = "sms", **extra: object) -> Customer:
    return Customer.model_validate({"id": f"CU-{i}", "region": "R1", "phone": f"+1512555010{i}",
                                    "email": f"c{i}@example.com" if email else None, "timezone": timezone,
                                    "preferred_channel": channel, **extra})


def test_night_sms_becomes_email_or_is_held_and_day_sms_goes_out() -> None:
    index = InMemoryCustomerIndex()
    index.upsert([
        _c(1, "America/Chicago"),                        # 23:30: quiet, has email -> email
        _c(2, "America/Chicago", email=False),           # 23:30: quiet, no email -> held
        _c(3, "Asia/Tokyo"),                             # 14:30: daytime -> sms
        _c(4, "America/Chicago", channel="email"),       # email anyway
        _c(5, "America/Chicago", opt_out={"email": True}),  # quiet, opted out of email -> held
    ])
    audience = build_audience({"region": "R1"}, index, frozenset(), 100, QUIET, AT)
    channels = {r.customer.id: r.channel for r in audience.recipients}
    assert channels == {"CU-1": "email", "CU-3": "sms", "CU-4": "email"}
    assert audience.excluded == {"quiet hours": 2}
    without = build_audience({"region": "R1"}, index, frozenset(), 100)
    assert {r.customer.id: r.channel for r in without.recipients}["CU-1"] == "sms"


def test_quiet_hours_that_do_not_cross_midnight() -> None:
    siesta = QuietHours(time(13), time(15))
    customer = _c(1, "Europe/Madrid")
    assert siesta.is_quiet(customer, datetime(2026, 11, 20, 13, tzinfo=UTC))   # 14:00 in Madrid
    assert not siesta.is_quiet(customer, datetime(2026, 11, 20, 15, tzinfo=UTC))  # 16:00
