"""Contact policy: nobody gets a text in the middle of their night; it waits for their morning.

During a customer's quiet hours (their own time zone) an SMS is deferred to the end of the quiet
span, unless the message is urgent. Emails are never deferred: they wait in the inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from forewarn.records import Reachable


@dataclass(frozen=True)
class QuietHours:
    """Local hours [start, end) in which SMS is not sent; the span may cross midnight.

    >>> from datetime import UTC
    >>> from forewarn.records import Customer
    >>> quiet = QuietHours(time(21), time(8))
    >>> ana = Customer(id="A", region="R", phone="+15125550100", timezone="America/Chicago")
    >>> night = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)      # 02:30 in Chicago
    >>> quiet.ends_after(ana, night).isoformat()                 # 08:00 in Chicago
    '2026-11-20T14:00:00+00:00'
    >>> quiet.ends_after(ana, night.replace(hour=18)) is None    # 12:00 in Chicago
    True
    """

    start: time
    end: time

    def is_quiet(self, customer: Reachable, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(customer.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, customer: Reachable, at: datetime) -> datetime | None:
        """When the quiet span holding `at` ends in the customer's zone (aware, in UTC); None when `at` is not quiet."""
        if not self.is_quiet(customer, at):
            return None
        zone = ZoneInfo(customer.timezone)
        local = at.astimezone(zone)
        end = datetime.combine(local.date(), self.end, zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, zone)
        # Across a DST change `combine` may name a wall time that does not exist: round-trip through UTC.
        return end.astimezone(ZoneInfo("UTC"))
