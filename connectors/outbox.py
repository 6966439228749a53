"""A sender that writes messages to a JSONL file instead of delivering them.

The demo and dry runs use it: every message becomes one JSON line (the message's fields
plus "sent_at"), appended to `path`. Provider ids number the lines of the file, so they
stay unique when a later run appends to the same file.

>>> import tempfile, orjson
>>> from pathlib import Path
>>> from forewarn.records import Message, MessageKey
>>> path = Path(tempfile.mkdtemp()) / "sms.jsonl"
>>> with OutboxSender(path, "sms") as outbox:
...     outbox.send(Message(MessageKey("INC-1", "CU-42", "warning"), "sms", "+15125550100", "Hi")).provider_id
'outbox-1'
>>> orjson.loads(path.read_bytes())["customer_id"]
'CU-42'
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import orjson

from forewarn.records import Channel, Message, SendResult, rfc3339


class OutboxSender:
    """Appends each message to a JSONL file; implements `Sender`."""

    def __init__(self, path: Path, channel: Channel) -> None:
        self.path = Path(path)
        self.channel: Channel = channel
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._count = self._existing_lines()
        self._file = self.path.open("ab")
        self._lock = threading.Lock()

    def _existing_lines(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as existing:
            return sum(1 for _ in existing)

    def send(self, message: Message, *, status_callback: str | None = None, html: str | None = None) -> SendResult:
        """Append `message` as one JSON line; a closed outbox raises ValueError."""
        if message.channel != self.channel:
            reason = f"message for {message.channel} given to the {self.channel} outbox"
            return SendResult(ok=False, reason=reason)
        record = message.to_dict()
        record["sent_at"] = rfc3339(datetime.now(UTC))
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            self._count += 1
            return SendResult(ok=True, provider_id=f"outbox-{self._count}")

    @property
    def sent(self) -> int:
        """How many lines the outbox file holds, including those of earlier runs."""
        return self._count

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> OutboxSender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
