"""Contact policy: nobody gets a text in the middle of their night.

During a customer's quiet hours (their own time zone) an SMS becomes an email when they
have one and have not opted out of email; otherwise the message is held and counted.
Emails are never held: they wait in the inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from forewarn.records import Channel, Reachable


@dataclass(frozen=True)
class QuietHours:
    """Local hours [start, end) in which SMS is not sent; the span may cross midnight.

    >>> from datetime import UTC
    >>> quiet = QuietHours(time(21), time(8))
    >>> night = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)      # 02:30 in Chicago
    >>> from forewarn.records import Customer
    >>> ana = Customer(id="A", region="R", phone="+15125550100", email="a@example.com",
    ...                timezone="America/Chicago")
    >>> quiet.channel_for(ana, night), quiet.channel_for(ana, night.replace(hour=18))
    ('email', 'sms')
    """

    start: time
    end: time

    def is_quiet(self, customer: Reachable, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(customer.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def channel_for(self, customer: Reachable, at: datetime) -> Channel | None:
        """The channel to use at `at`: the preferred one, email instead of SMS at night, or None (hold)."""
        channel = customer.preferred_channel
        if channel != "sms" or not self.is_quiet(customer, at):
            return channel
        return "email" if customer.contact("email") else None
