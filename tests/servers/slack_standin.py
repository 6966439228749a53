"""A local stand-in for a Slack incoming webhook (`POST /services/T.../B.../secret`).

Slack is a paid API, so tests give `SlackSender(standin.webhook_url)`. It speaks the webhook's wire format
(https://api.slack.com/messaging/webhooks): a JSON message in, a text answer out, as Slack answers:

- 200 `ok`: posted (kept in `posted`);
- 400 `invalid_payload` (not a JSON object, or a top-level field of the wrong shape), `no_text` (neither
  `text` nor `blocks` nor `attachments`), `invalid_blocks` (the blocks fail `Block Kit` checks);
- 404 `no_service` (a URL that is no webhook), 403 `invalid_token` (`revoke()`), 410
  `channel_is_archived` (`archive()`);
- 429 with `Retry-After`, 500 `rollup_error`, 503 when told to (`fail_next`); `latency(seconds)` delays
  every answer.

`SlackMessage` checks Block Kit structurally (https://api.slack.com/reference/block-kit/blocks), for the
block types a webhook message of ours uses: at most 50 blocks; `header` with a `plain_text` of at most
150 characters; `section` with a `text` (≤ 3,000) and/or up to 10 `fields` (each ≤ 2,000); `divider`;
`context` with 1 to 10 text or image elements; text objects `plain_text` (`emoji`) or `mrkdwn`
(`verbatim`), never empty; `block_id` at most 255 characters and unique. Another block type (Slack has
more: actions, image, rich_text, ...) is refused as `invalid_blocks`: stricter than Slack, never looser.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from tests.servers.http_standin import StandinServer, handler_for, serve, stop


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlainText(_Strict):
    type: Literal["plain_text"]
    text: str = Field(min_length=1, max_length=3000)
    emoji: bool | None = None


class Mrkdwn(_Strict):
    type: Literal["mrkdwn"]
    text: str = Field(min_length=1, max_length=3000)
    verbatim: bool | None = None


TextObject = Annotated[PlainText | Mrkdwn, Field(discriminator="type")]
BlockId = Annotated[str, Field(min_length=1, max_length=255)]


class HeaderText(PlainText):
    text: str = Field(min_length=1, max_length=150)


class ImageElement(_Strict):
    type: Literal["image"]
    image_url: str = Field(min_length=1, max_length=3000)
    alt_text: str = Field(min_length=1, max_length=2000)


class HeaderBlock(_Strict):
    type: Literal["header"]
    text: HeaderText
    block_id: BlockId | None = None


class SectionBlock(_Strict):
    type: Literal["section"]
    text: TextObject | None = None
    fields: list[TextObject] | None = Field(default=None, min_length=1, max_length=10)
    block_id: BlockId | None = None
    accessory: dict[str, Any] | None = None
    expand: bool | None = None

    @model_validator(mode="after")
    def _text_or_fields(self) -> SectionBlock:
        if self.text is None and not self.fields:
            raise ValueError("a section needs text or fields")
        too_long = [i for i, f in enumerate(self.fields or ()) if len(f.text) > 2000]
        if too_long:
            raise ValueError(f"section fields {too_long} are over 2000 characters")
        return self


class DividerBlock(_Strict):
    type: Literal["divider"]
    block_id: BlockId | None = None


class ContextBlock(_Strict):
    type: Literal["context"]
    elements: list[Annotated[PlainText | Mrkdwn | ImageElement, Field(discriminator="type")]] = Field(
        min_length=1, max_length=10)
    block_id: BlockId | None = None


Block = Annotated[HeaderBlock | SectionBlock | DividerBlock | ContextBlock, Field(discriminator="type")]
Blocks = Annotated[list[Block], Field(min_length=1, max_length=50)]
BLOCKS: TypeAdapter[list[Block]] = TypeAdapter(Blocks)


class SlackMessage(_Strict):
    """An incoming-webhook message: top-level `text` and/or `blocks` (legacy `attachments` kept as objects)."""

    text: str | None = None
    blocks: Blocks | None = None
    attachments: list[dict[str, Any]] | None = None
    mrkdwn: bool | None = None
    thread_ts: str | None = None
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None
    channel: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something_to_show(self) -> SlackMessage:
        if not self.text and not self.blocks and not self.attachments:
            raise ValueError("no_text")
        ids = [b.block_id for b in self.blocks or () if b.block_id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("block_id values must be unique")
        return self


def slack_error(doc: Any) -> str | None:
    """Slack's error code for a webhook message, None when it would be posted."""
    if not isinstance(doc, dict):
        return "invalid_payload"
    if not doc.get("text") and not doc.get("blocks") and not doc.get("attachments"):
        return "no_text"
    if "blocks" in doc:
        try:
            BLOCKS.validate_python(doc["blocks"])
        except ValidationError:
            return "invalid_blocks"
    try:
        SlackMessage.model_validate(doc)
    except ValidationError:
        return "invalid_payload"
    return None


def _token(prefix: str, size: int) -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(size))


@dataclass
class SlackStandin:
    """State of the stand-in; reset before and after each test."""

    base_url: str
    path: str
    """The webhook's path: /services/T.../B.../secret."""
    posted: list[dict[str, Any]] = field(default_factory=list)
    """Every message posted (200 ok), oldest first."""
    refused: list[tuple[Any, str]] = field(default_factory=list)
    """Every message refused with 400, with Slack's error code."""
    requests: int = 0
    _failures: list[tuple[int, float | None]] = field(default_factory=list)
    _archived: bool = False
    _revoked: bool = False
    _latency: float = 0.0
    _generation: int = 0
    """Bumped by `reset`: a request still waiting out its latency then is answered 503, its event dropped."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def webhook_url(self) -> str:
        return self.base_url + self.path

    @property
    def secret(self) -> str:
        """The last part of the path: what makes the URL a credential."""
        return self.path.rsplit("/", 1)[-1]

    def fail_next(self, times: int = 1, status: int = 500, retry_after: float | None = None) -> None:
        """Answer the next `times` requests with `status` (429: `rate_limited` with `Retry-After`, 1 second
        unless given; 500: `rollup_error`; 503: `service_unavailable`); nothing is posted."""
        if status not in (429, 500, 503):
            raise ValueError("fail with 429, 500 or 503")
        with self._lock:
            self._failures.extend([(status, 1.0 if status == 429 and retry_after is None else retry_after)] * times)

    def archive(self) -> None:
        """The webhook's channel is archived: 410 channel_is_archived."""
        with self._lock:
            self._archived = True

    def revoke(self) -> None:
        """The webhook was removed from the workspace: 403 invalid_token."""
        with self._lock:
            self._revoked = True

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency = max(0.0, seconds)

    def reset(self) -> None:
        with self._lock:
            self.posted.clear()
            self.refused.clear()
            self.requests = 0
            self._failures.clear()
            self._archived = self._revoked = False
            self._latency = 0.0
            self._generation += 1

    def handle(self, method: str, path: str, content_type: str, raw: bytes
               ) -> tuple[int, str, list[tuple[str, str]]]:
        """Answer one request: (HTTP status, text body, extra headers)."""
        with self._lock:
            self.requests += 1
            latency = self._latency
            failure = self._failures.pop(0) if self._failures else None
            generation = self._generation
            archived, revoked = self._archived, self._revoked
        if latency:
            time.sleep(latency)
            if generation != self._generation:  # the test that asked for the delay is over
                return 503, "service_unavailable", []
        if failure is not None:
            status, retry_after = failure
            headers = [] if retry_after is None else [("Retry-After", f"{retry_after:g}")]
            body = {429: "rate_limited", 500: "rollup_error", 503: "service_unavailable"}[status]
            return status, body, headers
        if method != "POST" or not secrets.compare_digest(path.partition("?")[0].encode(), self.path.encode()):
            return 404, "no_service", []
        if revoked:
            return 403, "invalid_token", []
        if archived:
            return 410, "channel_is_archived", []
        if content_type.split(";")[0].strip().lower() != "application/json":
            return 400, "invalid_payload", []
        try:
            doc = json.loads(raw)
        except ValueError:
            return 400, "invalid_payload", []
        error = slack_error(doc)
        with self._lock:
            if generation != self._generation:
                pass  # reset while it was in flight: not this test's message
            elif error is not None:
                self.refused.append((doc, error))
            else:
                self.posted.append(doc)
        return (400, error, []) if error is not None else (200, "ok", [])


def start_standin() -> tuple[SlackStandin, StandinServer, threading.Thread]:
    """A stand-in on a free loopback port, with its own webhook path."""
    path = f"/services/{_token('T', 10)}/{_token('B', 10)}/{_token('', 24)}"
    state = SlackStandin(base_url="", path=path)
    # text/html, as Slack labels its one-word answers
    server, thread, state.base_url = serve(handler_for(state.handle, "text/html", lambda body: body.encode()),
                                           "slack-standin")
    return state, server, thread


@pytest.fixture(scope="session")
def _slack_session() -> Iterator[SlackStandin]:
    state, server, thread = start_standin()
    try:
        yield state
    finally:
        state.reset()
        stop(server, thread)


@pytest.fixture
def slack_standin(_slack_session: SlackStandin) -> Iterator[SlackStandin]:
    """The session's Slack stand-in with no messages and no faults."""
    _slack_session.reset()
    yield _slack_session
    _slack_session.reset()
