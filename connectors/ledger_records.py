"""What a ledger stores, shared by the Redis ledger and its in-process twin (no Redis here).

A claimed key holds `PENDING` while its send is in flight, then the final outcome as the
JSON of `outcome_doc`: status, channel, reason, provider id and time; never the message body
or the address.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from forewarn.records import Channel, SendResult, rfc3339

PENDING = "pending"
"""The value of a claimed key until its outcome is recorded."""


def outcome_doc(channel: Channel, outcome: SendResult, at: datetime) -> bytes:
    """The final ledger value for a send outcome (no message body, no address).

    >>> outcome_doc("sms", SendResult(ok=True, provider_id="SM1"), datetime(2026, 1, 1, tzinfo=UTC))
    b'{"status":"sent","channel":"sms","reason":"","provider_id":"SM1","at":"2026-01-01T00:00:00Z"}'
    """
    return orjson.dumps(
        {
            "status": "sent" if outcome.ok else "failed",
            "channel": channel,
            "reason": outcome.reason,
            "provider_id": outcome.provider_id,
            "at": rfc3339(at),
        }
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
