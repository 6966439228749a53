"""A local stand-in for PagerDuty's Events API v2 (`POST /v2/enqueue`).

PagerDuty is a paid API, so tests point `PagerDutySender(url=standin.enqueue_url)` here. It speaks the
wire format of https://developer.pagerduty.com/docs/events-api-v2/overview/: a JSON event in, checked
against `PagerDutyEvent` (a pydantic model of the event schema: `routing_key` of 32 characters,
`event_action` trigger / acknowledge / resolve, `dedup_key` of at most 255 characters and required to
acknowledge or resolve, a `payload` required to trigger with `summary` (≤ 1,024 characters), `source`,
`severity` (critical, error, warning, info), an optional RFC 3339 `timestamp`, `component`, `group`,
`class` and a `custom_details` object, and the `links` / `images` shapes), and PagerDuty's answers:

- 202 `{"status": "success", "message": "Event processed", "dedup_key": ...}` (a trigger without a
  dedup key gets a generated one);
- 400 `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`, also for a
  well-formed routing key the stand-in does not know (`Invalid routing key`);
- 429 and 5xx when told to (`fail_next`).

Alerts are kept by dedup key, as PagerDuty keeps them for the service: a trigger opens one (`triggered`)
or, while it is open (triggered or acknowledged), is folded into it (added to its log, the state kept);
acknowledge and resolve move an open alert on, and change nothing on an unknown or resolved one; a trigger
after a resolve opens the alert again (`opened` counts how often).

Faults: `fail_next(times, status, retry_after)` answers the next requests with 429 / 500 / 502 / 503
(nothing processed), `latency(seconds)` delays every answer.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tests.servers.http_standin import StandinServer, handler_for, serve, stop

ENQUEUE_PATH = "/v2/enqueue"
MAX_EVENT_BYTES = 512 * 1024
"""PagerDuty's limit on the size of one event."""
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})")
AlertState = Literal["triggered", "acknowledged", "resolved"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Link(_Strict):
    href: str = Field(min_length=1)
    text: str | None = None


class Image(_Strict):
    src: str = Field(min_length=1)
    href: str | None = None
    alt: str | None = None


class Payload(_Strict):
    """An alert's payload (trigger events)."""

    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | None = None

    @field_validator("timestamp")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _RFC3339.fullmatch(value):
            raise ValueError("must be an RFC 3339 date-time with a zone")
        datetime.fromisoformat(value.replace("z", "Z"))  # a real date and time
        return value


class PagerDutyEvent(_Strict):
    """One Events API v2 event."""

    routing_key: str = Field(min_length=32, max_length=32)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, min_length=1, max_length=255)
    payload: Payload | None = None
    client: str | None = None
    client_url: str | None = None
    links: list[Link] | None = None
    images: list[Image] | None = None

    @model_validator(mode="after")
    def _needs(self) -> PagerDutyEvent:
        if self.event_action == "trigger" and self.payload is None:
            raise ValueError("'payload' is missing or blank")
        if self.event_action != "trigger" and self.dedup_key is None:
            raise ValueError("'dedup_key' is missing or blank")
        return self


def _name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def event_errors(exc: ValidationError) -> list[str]:
    """PagerDuty-like error lines for a rejected event."""
    errors = []
    for error in exc.errors():
        loc, kind = tuple(error["loc"]), error["type"]
        name = _name(loc)
        if loc == ("routing_key",) and kind in ("string_too_short", "string_too_long"):
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        elif kind == "missing":
            errors.append(f"'{name}' is missing or blank")
        elif kind == "literal_error":
            allowed = error.get("ctx", {}).get("expected", "")
            errors.append(f"'{name}' is invalid (must be one of: {allowed})")
        elif kind == "extra_forbidden":
            errors.append(f"'{name}' is not a known field")
        elif not loc:
            errors.append(str(error["msg"]).removeprefix("Value error, "))
        else:
            errors.append(f"'{name}' {str(error['msg']).removeprefix('Value error, ')}")
    return errors


@dataclass
class Alert:
    """An alert as PagerDuty keeps it for the service, by dedup key."""

    dedup_key: str
    state: AlertState
    summary: str
    severity: str
    custom_details: dict[str, Any] | None
    log: list[dict[str, Any]] = field(default_factory=list)
    """Every event accepted for it, oldest first (deduplicated triggers included)."""
    opened: int = 1
    """How many times a trigger opened it (again after a resolve)."""

    @property
    def latest_details(self) -> dict[str, Any] | None:
        """The custom_details of its latest trigger (an update re-triggers with fresh details)."""
        for event in reversed(self.log):
            if event["event_action"] == "trigger":
                details: dict[str, Any] | None = event["payload"].get("custom_details")
                return details
        return self.custom_details


@dataclass
class PagerDutyStandin:
    """State of the stand-in; reset before and after each test."""

    base_url: str
    routing_key: str
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every event accepted (202), oldest first."""
    rejected: list[tuple[Any, list[str]]] = field(default_factory=list)
    """Every event answered 400, with the errors."""
    alerts: dict[str, Alert] = field(default_factory=dict)
    requests: int = 0
    _failures: list[tuple[int, float | None]] = field(default_factory=list)
    _latency: float = 0.0
    _generation: int = 0
    """Bumped by `reset`: a request still waiting out its latency then is answered 503, its event dropped."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enqueue_url(self) -> str:
        return self.base_url + ENQUEUE_PATH

    # --- faults -------------------------------------------------------------------------------------

    def fail_next(self, times: int = 1, status: int = 500, retry_after: float | None = None) -> None:
        """Answer the next `times` requests with `status` (429, 500, 502, 503), with `Retry-After` when given;
        nothing is processed."""
        if status not in (429, 500, 502, 503):
            raise ValueError("fail with 429, 500, 502 or 503")
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def latency(self, seconds: float) -> None:
        """Wait `seconds` before answering each request (0: none)."""
        with self._lock:
            self._latency = max(0.0, seconds)

    def reset(self) -> None:
        with self._lock:
            self.events.clear()
            self.rejected.clear()
            self.alerts.clear()
            self.requests = 0
            self._failures.clear()
            self._latency = 0.0
            self._generation += 1

    # --- what tests read ----------------------------------------------------------------------------

    def state_of(self, dedup_key: str) -> AlertState | None:
        with self._lock:
            alert = self.alerts.get(dedup_key)
            return alert.state if alert is not None else None

    def alert(self, dedup_key: str) -> Alert | None:
        with self._lock:
            return self.alerts.get(dedup_key)

    # --- the API ------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, content_type: str, raw: bytes
               ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Answer one request: (HTTP status, JSON body, extra headers)."""
        with self._lock:
            self.requests += 1
            latency = self._latency
            failure = self._failures.pop(0) if self._failures else None
            generation = self._generation
        if latency:
            time.sleep(latency)
            if generation != self._generation:  # the test that asked for the delay is over
                return 503, {"status": "error", "message": "Service unavailable"}, []
        if failure is not None:
            status, retry_after = failure
            headers = [] if retry_after is None else [("Retry-After", f"{retry_after:g}")]
            if status == 429:
                return status, {"status": "throttle event", "message": "Requests for this service are arriving too "
                                "quickly.  Please retry later."}, headers
            return status, {"status": "error", "message": "Internal server error"}, headers
        if path.partition("?")[0] != ENQUEUE_PATH:
            return 404, {"status": "not found", "message": "Not found"}, []
        if method != "POST":
            return 405, {"status": "method not allowed", "message": "Method not allowed"}, []
        if len(raw) > MAX_EVENT_BYTES:
            return self._invalid(None, ["Event object is too large (over 512 KB)"])
        if content_type.split(";")[0].strip().lower() != "application/json":
            return self._invalid(None, ["Content-Type must be application/json"])
        try:
            doc = json.loads(raw)
        except ValueError:
            return self._invalid(None, ["Could not parse the event as JSON"])
        try:
            event = PagerDutyEvent.model_validate(doc)
        except ValidationError as exc:
            return self._invalid(doc, event_errors(exc), generation)
        if not secrets.compare_digest(event.routing_key.encode(), self.routing_key.encode()):
            return self._invalid(doc, ["Invalid routing key"], generation)
        key = self._apply(event, doc, generation)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}, []

    def _invalid(self, doc: Any, errors: list[str], generation: int | None = None
                 ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        with self._lock:
            if generation in (None, self._generation):
                self.rejected.append((doc, errors))
        return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}, []

    def _apply(self, event: PagerDutyEvent, doc: dict[str, Any], generation: int) -> str:
        key = event.dedup_key or uuid.uuid4().hex
        with self._lock:
            if generation != self._generation:
                return key  # reset while it was in flight: not this test's event
            self.events.append(doc)
            alert = self.alerts.get(key)
            if event.event_action == "trigger":
                assert event.payload is not None
                if alert is None:
                    self.alerts[key] = Alert(key, "triggered", event.payload.summary, event.payload.severity,
                                             event.payload.custom_details, [doc])
                elif alert.state == "resolved":
                    alert.state, alert.opened = "triggered", alert.opened + 1
                    alert.summary, alert.severity = event.payload.summary, event.payload.severity
                    alert.custom_details = event.payload.custom_details
                    alert.log.append(doc)
                else:
                    alert.log.append(doc)  # deduplicated into the open alert
            elif alert is not None and alert.state != "resolved":
                alert.log.append(doc)
                alert.state = "acknowledged" if event.event_action == "acknowledge" else "resolved"
        return key


def start_standin() -> tuple[PagerDutyStandin, StandinServer, threading.Thread]:
    """A stand-in on a free loopback port, with its own 32-character routing key."""
    state = PagerDutyStandin(base_url="", routing_key=secrets.token_hex(16))
    handler = handler_for(state.handle, "application/json", lambda body: json.dumps(body).encode())
    server, thread, state.base_url = serve(handler, "pagerduty-standin")
    return state, server, thread


@pytest.fixture(scope="session")
def _pagerduty_session() -> Iterator[PagerDutyStandin]:
    state, server, thread = start_standin()
    try:
        yield state
    finally:
        state.reset()
        stop(server, thread)


@pytest.fixture
def pagerduty_standin(_pagerduty_session: PagerDutyStandin) -> Iterator[PagerDutyStandin]:
    """The session's PagerDuty stand-in with no events, alerts or faults."""
    _pagerduty_session.reset()
    yield _pagerduty_session
    _pagerduty_session.reset()
