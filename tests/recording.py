"""A `Sender` of our own interface that keeps what would be sent, for tests of what outreach decides."""

from __future__ import annotations

from forewarn.records import Channel, Message, SendResult


class Outbox:
    """Keeps what would be sent on one channel; every send succeeds."""

    def __init__(self, channel: Channel) -> None:
        self.channel: Channel = channel
        self.sent: list[Message] = []

    def send(self, message: Message) -> SendResult:
        self.sent.append(message)
        return SendResult(ok=True, provider_id=f"x-{len(self.sent)}")
