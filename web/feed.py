"""The public status feed of `forewarn web`: `/status.json` (Statuspage-style) and `/status.atom`.

Read from the decision store at each request (open incidents and the newest decided ones), in the company's
words only (`outreach.status_feed`); public, cacheable for 30 s, readable from any origin. A store that is not
configured or fails answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from forewarn.decisions import Decision
from forewarn.interfaces import DecisionStore
from forewarn.outreach.status_feed import atom_feed, status_document
from forewarn.settings import OutreachSettings

log = logging.getLogger(__name__)

STATUS_JSON_PATH = "/status.json"
STATUS_ATOM_PATH = "/status.atom"
FEED_HEADERS = {"Cache-Control": "public, max-age=30", "Access-Control-Allow-Origin": "*",
                "X-Content-Type-Options": "nosniff"}
"""The status feed is public: caches and other origins (the website's banner) may keep and read it."""
FEED_RECENT = 200
"""How many of the newest decisions the feed reads besides the open ones (for the recently resolved)."""


class StatusFeed:
    """The two feed routes over a decision store (None: not configured, 503)."""

    def __init__(self, decisions: DecisionStore | None, topic_labels: Mapping[str, str] | None, public_url: str,
                 clock: Callable[[], datetime]) -> None:
        self.decisions = decisions
        self.topic_labels = dict(OutreachSettings().topic_labels if topic_labels is None else topic_labels)
        self.public_url = public_url.rstrip("/")
        self.clock = clock

    def _read_decisions(self) -> list[Decision]:
        assert self.decisions is not None
        return self.decisions.open_decisions() + self.decisions.recent(FEED_RECENT)

    async def _status_document(self) -> dict[str, object] | Response:
        if self.decisions is None:
            return PlainTextResponse("the status feed is not configured", status_code=503)
        try:
            decisions = await run_in_threadpool(self._read_decisions)
        except Exception as exc:
            log.error("status feed not served: the decision store failed (%s)", type(exc).__name__)
            return PlainTextResponse("status not available, try again", status_code=503,
                                     headers={"Retry-After": "30"})
        return status_document(decisions, self.topic_labels, self.clock())

    async def status_json(self, _: Request) -> Response:
        document = await self._status_document()
        if isinstance(document, Response):
            return document
        return Response(orjson.dumps(document), media_type="application/json", headers=FEED_HEADERS)

    async def status_atom(self, _: Request) -> Response:
        document = await self._status_document()
        if isinstance(document, Response):
            return document
        feed = atom_feed(document, self.public_url + STATUS_ATOM_PATH, self.public_url + STATUS_JSON_PATH)
        return Response(feed, media_type="application/atom+xml; charset=utf-8", headers=FEED_HEADERS)
