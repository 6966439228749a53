"""A local stand-in for Twilio's Messages resource, for the official `twilio` client.

Twilio is a paid API, so tests point the real client at this server instead:

    client = twilio.rest.Client(standin.account_sid, standin.auth_token)
    client.api.base_url = standin.base_url

It speaks Twilio's wire format (form fields in, JSON out, HTTP Basic auth, Twilio's error
bodies and codes: 20003, 20404, 20429, 20500, 20503, 21211, 21602-21604, 21609, 21610, 21617):

- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: create (send) a message, with an
  optional `StatusCallback`;
- `GET  /2010-04-01/Accounts/{AccountSid}/Messages.json`: the list, newest first, filtered by
  `To`, `From`, `DateSent`, `DateSent<` (on or before), `DateSent>` (on or after) (a
  YYYY-MM-DD date or a date-time), paged with `PageSize`, `Page` and `PageToken`, answered
  with Twilio's paging keys (`first_page_uri`, `next_page_uri`, `previous_page_uri`, `uri`,
  `page`, `page_size`, `start`, `end`) and the records under `messages`, so the official
  client's `messages.list()` / `.stream()` page through it;
- `GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}.json`: fetch one message;
- `GET  /2010-04-01/Accounts/{AccountSid}.json`: the account fetch a start-up check makes.

An accepted message moves on by itself, as at Twilio: `queued` (`accepted` for a Messaging
Service), then `sent` after `status_delay` seconds, then its final status (`delivered`,
or `undelivered` / `failed` for a number registered as undeliverable) after another
`status_delay`. When the create carried a `StatusCallback`, each step is POSTed there from
a background thread, form-encoded and signed with `X-Twilio-Signature` the way Twilio signs
(HMAC-SHA1 with the auth token over the URL and the sorted parameters, base64), so the
official `RequestValidator` accepts it. `send_inbound` posts an inbound message (a customer
replying STOP, START or HELP) the same way.

Faults for delivery tests: `fail_next` (5xx for any request), `register_rate_limited` and
`rate_limit_next` (429 with `Retry-After`), `fail_after_accept` (the message is accepted,
then the answer is a 500, a dropped connection or a stall), `answer_next` (a script of such
answers), `down` / `set_down` (503 for everything), `latency`, and `hold_next` (the n-th
accepted text's answer waits until released: the sender dies not knowing it went out).

The server is a threading HTTP/1.1 server with keep-alive, so a client's connection pool is
reused: it is the reference of the delivery benchmark.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import math
import re
import secrets
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qs, urlencode
from urllib.request import ProxyHandler, Request, build_opener

import pytest

API_VERSION = "2010-04-01"
_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)\.json$")
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")
_CREATED = "Thu, 30 Jul 2015 20:00:00 +0000"
_MAX_BODY = 1600
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
SERVICE_NUMBER = "+15005550006"
"""The number a Messaging Service picks to send from (shown as `from` once the message is sent)."""
FINAL_STATUSES = ("delivered", "undelivered", "failed")
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
_ERROR_MESSAGES = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
_NO_PROXY = build_opener(ProxyHandler({}))  # callbacks go to loopback, never through an environment proxy

Step = Literal["429", "500", "503", "drop", "stall", "accept", "accept+500", "accept+drop", "accept+stall"]
"""One scripted answer to a create: a fault before accepting (nothing recorded), or after it."""
_STEPS = frozenset(Step.__args__)  # type: ignore[attr-defined]
FaultMode = Literal["error", "drop", "stall"]


class Answer(tuple[int, Any]):
    """What `handle` answers: (HTTP status, JSON body), plus extra headers and what to do with the connection.

    A plain 2-tuple to whoever wraps `handle` (tests/integration/test_crash_recovery.py's HoldOneText)."""

    headers: tuple[tuple[str, str], ...]
    action: Literal["answer", "drop"]

    def __new__(cls, status: int, body: Any, headers: Iterable[tuple[str, str]] = (),
                action: Literal["answer", "drop"] = "answer") -> Answer:
        self = super().__new__(cls, (status, body))
        self.headers = tuple(headers)
        self.action = action
        return self


@dataclass(frozen=True)
class AcceptedMessage:
    """What the stand-in accepted, as Twilio would have queued it.

    Equality compares what was asked for (sid, to, from, body, service); the rest is bookkeeping."""

    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)
    """When it was accepted, to the microsecond (Twilio's JSON shows whole seconds)."""
    status_callback: str | None = field(default=None, compare=False)
    segments: int = field(default=1, compare=False)
    final_status: str = field(default="delivered", compare=False)
    error_code: int | None = field(default=None, compare=False)
    status_delay: float | None = field(default=None, compare=False)
    """Seconds between status steps; None: it stays queued."""
    accepted_at: float = field(default_factory=time.monotonic, compare=False)
    seq: int = field(default=0, compare=False)

    @property
    def initial_status(self) -> str:
        # Twilio answers "accepted" when a Messaging Service still has to pick the sender.
        return "queued" if self.messaging_service_sid is None else "accepted"

    @property
    def order(self) -> tuple[datetime, int]:
        """The list's sort key: newest first is descending."""
        return self.date_created, self.seq

    @property
    def status(self) -> str:
        """Its status now: queued/accepted, then sent, then its final status."""
        return self.status_at(time.monotonic())

    def status_at(self, now: float) -> str:
        if self.status_delay is None:
            return self.initial_status
        steps = (now - self.accepted_at) / self.status_delay if self.status_delay > 0 else math.inf
        if steps >= 2:
            return self.final_status
        if steps >= 1 and self.final_status != "failed":  # a failed message never went out
            return "sent"
        return self.initial_status

    def sent_time(self) -> datetime:
        return self.date_created + timedelta(seconds=self.status_delay or 0.0)


@dataclass(frozen=True)
class Webhook:
    """One POST the stand-in made to the project's web app: a status callback or an inbound message."""

    kind: Literal["status", "inbound"]
    url: str
    params: dict[str, str]
    signature: str
    answer: int | None
    """The HTTP status the app answered; None when the POST failed (see `error`)."""
    answer_body: str = ""
    error: str | None = None

    @property
    def status(self) -> str | None:
        return self.params.get("MessageStatus")


@dataclass
class Hold:
    """The `remaining`-th accepted text from now is held: accepted (recorded), its answer withheld until
    `release()` (or `timeout` seconds, or the stand-in's reset)."""

    remaining: int
    timeout: float = 60.0
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    message: AcceptedMessage | None = None

    def release(self) -> None:
        self.released.set()

    def wait_held(self, timeout: float = 10.0) -> AcceptedMessage:
        """Wait until the text is accepted and held; its record."""
        if not self.held.wait(timeout):
            raise TimeoutError(f"no text was held within {timeout:.0f}s")
        assert self.message is not None
        return self.message


def _error(status: int, code: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Answer:
    return Answer(status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }, headers)


def _segments(body: str) -> int:
    """SMS segments: GSM-7 (approximated as ASCII) 160/153 characters, else UCS-2 70/67."""
    single, multi = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


def _rfc2822(when: datetime | None) -> str | None:
    return None if when is None else format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=False)


def _date_filter(value: str) -> date | datetime:
    """A DateSent value: YYYY-MM-DD (a day) or an ISO 8601 date-time (the official client sends
    %Y-%m-%dT%H:%M:%SZ for a datetime); a ValueError otherwise."""
    if len(value) == 10:
        return date.fromisoformat(value)
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _date_matches(sent: datetime, op: str, bound: date | datetime) -> bool:
    """Twilio's DateSent semantics: `=` on that day (or second), `<` on or before, `>` on or after."""
    if isinstance(bound, datetime):
        left: date | datetime = sent.replace(microsecond=0)
    else:
        left = sent.astimezone(UTC).date()
    if op == "=":
        return left == bound
    return left <= bound if op == "<" else left >= bound


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: HMAC-SHA1 keyed with the auth token over the full URL followed by each
    POST parameter name and value, sorted by name; base64 (the example of Twilio's security docs).

    >>> twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
    ...                  {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
    ...                   "From": "+12349013030", "To": "+18005551212"})
    '0/KCTR6DLpKmkAf8muzZqo1nDgQ='
    """
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class TwilioStandin:
    """State of the stand-in; everything is reset before and after each test."""

    base_url: str
    account_sid: str
    auth_token: str
    messages: list[AcceptedMessage] = field(default_factory=list)
    """Every accepted message, oldest first."""
    requests: int = 0
    """Every request answered (any path, any outcome)."""
    creates: int = 0
    """Create (send) requests that reached the Messages resource, accepted or not."""
    connections: int = 0
    """TCP connections accepted (a keep-alive client reuses a few for many requests)."""
    account_status: str = "active"
    """What the account fetch reports: active, suspended or closed."""
    status_delay: float | None = 0.05
    """Seconds between status steps of a message accepted from now on (None: messages stay queued)."""
    callback_timeout: float = 5.0
    stall_seconds: float = 30.0
    """How long a stalled answer waits (unless released) before the connection is dropped."""
    service_number: str = SERVICE_NUMBER
    clock_offset: float = 0.0
    """Seconds added to the clock for `date_created` of messages accepted from now on (e.g. -600: as
    if they were accepted ten minutes ago)."""
    callbacks: list[Webhook] = field(default_factory=list)
    """Status callbacks posted, in the order they were answered."""
    inbound: list[Webhook] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    """Create requests per recipient, accepted or not."""
    _by_sid: dict[str, AcceptedMessage] = field(default_factory=dict)
    _by_to: dict[str, list[AcceptedMessage]] = field(default_factory=dict)
    _invalid: set[str] = field(default_factory=set)
    _unsubscribed: set[str] = field(default_factory=set)
    _undeliverable: dict[str, tuple[str, int]] = field(default_factory=dict)
    _rate_limited: dict[str, tuple[int, float | str | None]] = field(default_factory=dict)
    _server_errors: int = 0
    _server_error_status: int = 500
    _server_error_retry_after: float | str | None = None
    _script: deque[tuple[Step, float | str | None]] = field(default_factory=deque)
    _down_until: float = 0.0
    _down: bool = False
    _latency: float = 0.0
    _holds: list[Hold] = field(default_factory=list)
    _stalls: list[threading.Event] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _last_created: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # status callbacks: a heap of (due, seq, generation, message, status) posted by one courier thread
    _due: list[tuple[float, int, int, AcceptedMessage, str]] = field(default_factory=list)
    _wake: threading.Condition = field(default_factory=threading.Condition)
    _callback_seq: itertools.count[int] = field(default_factory=itertools.count)
    _generation: int = 0
    _courier: threading.Thread | None = None
    _posters: ThreadPoolExecutor | None = None
    _closed: bool = False
    _posted: threading.Condition = field(default_factory=threading.Condition)

    # --- registrations and faults ---------------------------------------------------------------

    def register_invalid(self, *numbers: str) -> None:
        """Answer sends to these numbers with 400 / 21211 (not a valid phone number)."""
        with self._lock:
            self._invalid.update(numbers)

    def register_unsubscribed(self, *numbers: str) -> None:
        """Answer sends to these numbers with 400 / 21610 (recipient replied STOP)."""
        with self._lock:
            self._unsubscribed.update(numbers)

    def register_undeliverable(self, *numbers: str, status: Literal["undelivered", "failed"] = "undelivered",
                               error_code: int | None = None) -> None:
        """Accept sends to these numbers, then report them `undelivered` (30003, unreachable handset) or
        `failed` (30008, unknown error) instead of delivered."""
        code = error_code if error_code is not None else (30003 if status == "undelivered" else 30008)
        with self._lock:
            for number in numbers:
                self._undeliverable[number] = (status, code)

    def register_rate_limited(self, number: str, times: int = 1, retry_after: float | str | None = 1) -> None:
        """Answer the next `times` sends to `number` with 429 / 20429 (and `Retry-After: retry_after`, a
        number of seconds or an HTTP date, unless None), then accept."""
        with self._lock:
            self._rate_limited[number] = (times, retry_after)

    def rate_limit_next(self, times: int = 1, retry_after: float | str | None = 1) -> None:
        """Answer the next `times` sends, whoever they are for, with 429 / 20429 and `Retry-After`."""
        with self._lock:
            self._script.extend([("429", retry_after)] * times)

    def fail_next(self, times: int = 1, status: int = 500, retry_after: float | str | None = None) -> None:
        """Answer the next `times` requests, whatever they are (a send, a list, a fetch, the account), with
        `status`: 500 / 20500, 503 / 20503, or 429 / 20429 (with `Retry-After` when given); nothing accepted."""
        with self._lock:
            self._server_errors = times
            self._server_error_status = status
            self._server_error_retry_after = retry_after

    def fail_after_accept(self, times: int = 1, mode: FaultMode = "error") -> None:
        """Accept the next `times` sends (they are recorded and will reach the customer), then answer with a
        500 (`error`), close the connection without an answer (`drop`), or withhold the answer for
        `stall_seconds` (or until `release_stalled()`) and then drop the connection (`stall`)."""
        step: Step = {"error": "accept+500", "drop": "accept+drop", "stall": "accept+stall"}[mode]  # type: ignore[assignment]
        with self._lock:
            self._script.extend([(step, None)] * times)

    def answer_next(self, *steps: Step) -> None:
        """Script the answers to the next sends, in order, then back to normal. Steps: "429" (Retry-After 1),
        "500", "503", "drop" and "stall" (nothing accepted), "accept" (normal), "accept+500",
        "accept+drop", "accept+stall" (accepted, then the fault). E.g. answer_next("429", "500")."""
        unknown = [s for s in steps if s not in _STEPS]
        if unknown:
            raise ValueError(f"unknown steps {unknown}: use {sorted(_STEPS)}")
        with self._lock:
            self._script.extend((step, 1 if step == "429" else None) for step in steps)

    def down(self, seconds: float) -> None:
        """Answer every request with 503 / 20503 for the next `seconds`."""
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def set_down(self, down: bool) -> None:
        """Answer every request with 503 / 20503 until `set_down(False)`."""
        with self._lock:
            self._down = down
            if not down:
                self._down_until = 0.0

    @property
    def is_down(self) -> bool:
        return self._down or time.monotonic() < self._down_until

    def latency(self, seconds: float) -> None:
        """Wait `seconds` before answering each request (0: none)."""
        with self._lock:
            self._latency = max(0.0, seconds)

    def hold_next(self, n: int = 1, timeout: float = 60.0) -> Hold:
        """Hold the answer of the `n`-th text accepted from now on (see `Hold`)."""
        if n < 1:
            raise ValueError("n counts from 1")
        hold = Hold(remaining=n, timeout=timeout)
        with self._lock:
            self._holds.append(hold)
        return hold

    def release_stalled(self) -> None:
        """Let every stalled answer end now (its connection is dropped)."""
        with self._lock:
            stalls, self._stalls = self._stalls, []
        for stall in stalls:
            stall.set()

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self._by_sid.clear()
            self._by_to.clear()
            self.requests = 0
            self.creates = 0
            self.connections = 0
            self.attempts.clear()
            self._invalid.clear()
            self._unsubscribed.clear()
            self._undeliverable.clear()
            self._rate_limited.clear()
            self._server_errors = 0
            self._server_error_status = 500
            self._server_error_retry_after = None
            self._script.clear()
            self._down, self._down_until, self._latency = False, 0.0, 0.0
            holds, self._holds = self._holds, []
            stalls, self._stalls = self._stalls, []
            self.account_status = "active"
            self.status_delay = 0.05
            self.callback_timeout = 5.0
            self.stall_seconds = 30.0
            self.clock_offset = 0.0
            self._last_created = None
        with self._wake:
            self._generation += 1
            self._due.clear()
        with self._posted:
            self.callbacks.clear()
            self.inbound.clear()
        for hold in holds:
            hold.release()
        for stall in stalls:
            stall.set()

    # --- what tests read ------------------------------------------------------------------------

    def accepted_for(self, to: str) -> int:
        """How many messages to `to` were accepted."""
        with self._lock:
            return len(self._by_to.get(to, ()))

    def accepted_counts(self) -> Counter[str]:
        """Accepted messages per recipient."""
        with self._lock:
            return Counter({to: len(found) for to, found in self._by_to.items()})

    def duplicates(self) -> dict[str, int]:
        """Recipients with more than one accepted message, and how many each."""
        return {to: n for to, n in self.accepted_counts().items() if n > 1}

    def message(self, sid: str) -> AcceptedMessage | None:
        with self._lock:
            return self._by_sid.get(sid)

    def status_of(self, sid: str) -> str | None:
        found = self.message(sid)
        return None if found is None else found.status

    def callbacks_for(self, sid: str) -> list[Webhook]:
        with self._posted:
            return [c for c in self.callbacks if c.params.get("MessageSid") == sid]

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> list[Webhook]:
        """Wait until at least `count` status callbacks were posted (and answered or failed)."""
        deadline = time.monotonic() + timeout
        with self._posted:
            while len(self.callbacks) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.callbacks)} of {count} status callbacks within {timeout:.0f}s")
                self._posted.wait(left)
            return list(self.callbacks)

    def signature(self, url: str, params: Mapping[str, str]) -> str:
        """The X-Twilio-Signature this account's auth token gives a POST of `params` to `url`."""
        return twilio_signature(self.auth_token, url, params)

    def send_inbound(self, url: str, from_: str, body: str, to: str = "+15125550199", *,
                     messaging_service_sid: str | None = None, signature: str | None = None,
                     honour_keywords: bool = True) -> Webhook:
        """POST an inbound SMS (a customer's reply) to the app's webhook `url`, signed like Twilio
        (or with `signature`, to forge one). As Twilio's default opt-out handling does, a STOP-type
        reply (`honour_keywords`) makes later sends to `from_` fail with 21610 and START lifts it."""
        sid = "SM" + secrets.token_hex(16)
        params = {
            "ToCountry": "US", "ToState": "", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
            "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "",
            "Body": body, "FromCountry": "US", "To": to, "MessagingServiceSid": messaging_service_sid or "",
            "ToZip": "", "NumSegments": str(_segments(body)), "MessageSid": sid, "AccountSid": self.account_sid,
            "From": from_, "ApiVersion": API_VERSION,
        }
        if messaging_service_sid is None:
            del params["MessagingServiceSid"]
        keyword = body.strip().upper()
        if honour_keywords:
            with self._lock:
                if keyword in OPT_OUT_KEYWORDS:
                    self._unsubscribed.add(from_)
                elif keyword in OPT_IN_KEYWORDS:
                    self._unsubscribed.discard(from_)
        if messaging_service_sid is not None:
            kind = ("STOP" if keyword in OPT_OUT_KEYWORDS else "START" if keyword in OPT_IN_KEYWORDS
                    else "HELP" if keyword in HELP_KEYWORDS else None)
            if kind:
                params["OptOutType"] = kind
        hook = self._post("inbound", url, params, signature)
        with self._posted:
            self.inbound.append(hook)
        return hook

    # --- the API ----------------------------------------------------------------------------------

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )

    def handle(self, method: str, path: str, auth: str | None, form: dict[str, str]) -> tuple[int, Any]:
        """Answer one request: (HTTP status, JSON body), an `Answer` with headers and a connection action."""
        with self._lock:
            self.requests += 1
            latency = self._latency
            down = self.is_down
            failure, retry_after = 0, self._server_error_retry_after
            if not down and self._server_errors > 0:
                self._server_errors -= 1
                failure = self._server_error_status
        if latency:
            time.sleep(latency)
        if down:
            return _error(503, 20503, "Service Unavailable")
        if failure == 429:
            return self._rate_limited_answer(retry_after)
        if failure:
            headers = [] if retry_after is None else [("Retry-After", str(retry_after))]
            return _error(failure, 20503 if failure == 503 else 20500,
                          "Service Unavailable" if failure == 503 else "Internal Server Error", headers)
        route, _, query = path.partition("?")
        account = _ACCOUNT_PATH.match(route)
        if account is not None:
            return self._account(method, account["account"], auth)
        match = _MESSAGES_PATH.match(route) or _MESSAGE_PATH.match(route)
        if match is None:
            return _error(404, 20404, f"The requested resource {route} was not found")
        if not self._authorized(auth) or match["account"] != self.account_sid:
            return _error(401, 20003, "Authenticate", [("WWW-Authenticate", 'Basic realm="Twilio API"')])
        sid = match.groupdict().get("sid")
        if sid is not None:
            return self._fetch(sid) if method == "GET" else _error(405, 20004, "Method not allowed")
        if method == "POST":
            return self._create(form)
        if method == "GET":
            return self._list(route, query)
        return _error(405, 20004, "Method not allowed")

    def _account(self, method: str, sid: str, auth: str | None) -> Answer:
        """Fetch an account: Twilio answers 401/20003 for bad credentials, 404/20404 for another SID."""
        if not self._authorized(auth):
            return _error(401, 20003, "Authenticate", [("WWW-Authenticate", 'Basic realm="Twilio API"')])
        if sid != self.account_sid:
            return _error(404, 20404, f"The requested resource /2010-04-01/Accounts/{sid}.json was not found")
        if method != "GET":
            return _error(405, 20004, "Method not allowed")
        uri = f"/{API_VERSION}/Accounts/{sid}"
        return Answer(200, {
            "date_created": _CREATED,
            "date_updated": _CREATED,
            "friendly_name": "Forewarn test account",
            "owner_account_sid": sid,
            "sid": sid,
            "status": self.account_status,
            "subresource_uris": {name: f"{uri}/{name.title().replace('_', '')}.json"
                                 for name in ("messages", "calls", "incoming_phone_numbers", "balance")},
            "type": "Full",
            "uri": f"{uri}.json",
        })

    def _create(self, form: dict[str, str]) -> Answer:
        to = form.get("To", "")
        from_ = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        callback = form.get("StatusCallback") or None
        with self._lock:
            self.creates += 1
            self.attempts[to] += 1
            step, retry_after = self._script.popleft() if self._script else ("accept", None)
        if step == "429":
            return self._rate_limited_answer(retry_after)
        if step in ("500", "503"):
            return _error(int(step), 20500 if step == "500" else 20503,
                          "Internal Server Error" if step == "500" else "Service Unavailable")
        if step in ("drop", "stall"):
            if step == "stall":
                self._stall()
            return Answer(0, None, action="drop")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if from_ is None and service is None:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > _MAX_BODY:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if callback is not None and not callback.startswith(("http://", "https://")):
            return _error(400, 21609, "The StatusCallback URL is not a valid URL.")
        hold: Hold | None = None
        with self._lock:
            if to in self._invalid:
                return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
            if to in self._unsubscribed:
                return _error(400, 21610, "Attempt to send to unsubscribed recipient")
            times, limited_after = self._rate_limited.get(to, (0, None))
            if times > 0:
                self._rate_limited[to] = (times - 1, limited_after)
                return self._rate_limited_answer(limited_after)
            final, code = self._undeliverable.get(to, ("delivered", None))
            created = datetime.now(UTC) + timedelta(seconds=self.clock_offset)
            if self._last_created is not None and created <= self._last_created and not self.clock_offset:
                created = self._last_created + timedelta(microseconds=1)  # keep the sub-second order strict
            self._last_created = created
            message = AcceptedMessage(
                "SM" + secrets.token_hex(16), to, from_, body, service, date_created=created,
                status_callback=callback, segments=_segments(body), final_status=final, error_code=code,
                status_delay=self.status_delay, seq=next(self._seq),
            )
            self.messages.append(message)
            self._by_sid[message.sid] = message
            self._by_to.setdefault(to, []).append(message)
            for pending in self._holds:
                pending.remaining -= 1
                if pending.remaining == 0:
                    hold = pending
            self._holds = [h for h in self._holds if h.remaining > 0]
            generation = self._generation
        if callback is not None and message.status_delay is not None:
            first = "failed" if final == "failed" else "sent"
            steps = 2 if first == "failed" else 1
            self._schedule(message.accepted_at + steps * message.status_delay, message, first, generation)
        if step == "accept+500":
            return _error(500, 20500, "Internal Server Error")
        if step in ("accept+drop", "accept+stall"):
            if step == "accept+stall":
                self._stall()
            return Answer(0, None, action="drop")
        if hold is not None:
            hold.message = message
            hold.held.set()
            hold.released.wait(hold.timeout)
        return Answer(201, self._json(message, time.monotonic()))

    def _rate_limited_answer(self, retry_after: float | str | None) -> Answer:
        headers = [] if retry_after is None else [("Retry-After", str(retry_after))]
        return _error(429, 20429, "Too Many Requests", headers)

    def _stall(self) -> None:
        stall = threading.Event()
        with self._lock:
            self._stalls.append(stall)
            seconds = self.stall_seconds
        stall.wait(seconds)

    def _fetch(self, sid: str) -> Answer:
        found = self.message(sid)
        if found is None:
            return _error(404, 20404,
                          f"The requested resource /2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json "
                          "was not found")
        return Answer(200, self._json(found, time.monotonic()))

    def _list(self, route: str, query: str) -> Answer:
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            size = min(MAX_PAGE_SIZE, max(1, int(params.get("PageSize", DEFAULT_PAGE_SIZE))))
            page = max(0, int(params.get("Page", 0)))
            bounds = [(op, _date_filter(params[name])) for name, op in
                      (("DateSent", "="), ("DateSent<", "<"), ("DateSent>", ">")) if params.get(name)]
        except ValueError:
            return _error(400, 20001, "Invalid parameter")
        to, from_ = params.get("To") or None, params.get("From") or None
        now = time.monotonic()
        with self._lock:
            pool = list(self._by_to.get(to, ()) if to is not None else self.messages)
        rows = []
        for message in pool:
            if from_ is not None and self._from(message, now) != from_:
                continue
            if bounds:
                if message.status_at(now) not in ("sent", "delivered", "undelivered"):
                    continue  # not sent yet: no date_sent
                if not all(_date_matches(message.sent_time(), op, bound) for op, bound in bounds):
                    continue
            rows.append(message)
        rows.sort(key=lambda m: m.order, reverse=True)  # newest first
        token = params.get("PageToken")
        if token:
            cursor = self.message(token[2:])
            if not token.startswith(("PA", "PB")) or cursor is None:
                return _error(400, 20001, "Invalid PageToken")
            if token.startswith("PA"):
                after = [m for m in rows if m.order < cursor.order]
                items, more = after[:size], len(after) > size
            else:
                before = [m for m in rows if m.order > cursor.order]
                items, more = before[-size:], True
            start = page * size
        else:
            start = page * size
            items, more = rows[start:start + size], len(rows) > start + size
        filters = [(name, params[name]) for name in ("To", "From", "DateSent", "DateSent<", "DateSent>")
                   if params.get(name)]

        def uri(number: int, page_token: str | None = None) -> str:
            pairs = [*filters, ("PageSize", str(size)), ("Page", str(number))]
            if page_token:
                pairs.append(("PageToken", page_token))
            return f"{route}?{urlencode(pairs)}"

        return Answer(200, {
            "end": start + max(0, len(items) - 1),
            "first_page_uri": uri(0),
            "messages": [self._json(m, now) for m in items],
            "next_page_uri": uri(page + 1, "PA" + items[-1].sid) if more and items else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1, "PB" + items[0].sid) if page > 0 and items else None,
            "start": start,
            "uri": f"{route}?{query}" if query else route,
        })

    def _from(self, message: AcceptedMessage, now: float) -> str | None:
        if message.from_ is not None:
            return message.from_
        return None if message.status_at(now) == message.initial_status else self.service_number

    def _json(self, message: AcceptedMessage, now: float) -> dict[str, Any]:
        status = message.status_at(now)
        sent = status in ("sent", "delivered", "undelivered")
        updated = message.date_created
        if status != message.initial_status and message.status_delay is not None:
            steps = 2 if status in FINAL_STATUSES else 1
            updated = message.date_created + timedelta(seconds=steps * message.status_delay)
        final_error = status in ("undelivered", "failed")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": _rfc2822(message.date_created),
            "date_sent": _rfc2822(message.sent_time()) if sent else None,
            "date_updated": _rfc2822(updated),
            "direction": "outbound-api",
            "error_code": message.error_code if final_error else None,
            "error_message": _ERROR_MESSAGES.get(message.error_code or 0) if final_error else None,
            "from": self._from(message, now),
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(message.segments),
            "price": "-0.00790" if sent else None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }

    # --- status callbacks ---------------------------------------------------------------------------

    def _schedule(self, due: float, message: AcceptedMessage, status: str, generation: int) -> None:
        with self._wake:
            if self._closed or generation != self._generation:
                return
            if self._courier is None:
                self._posters = ThreadPoolExecutor(max_workers=8, thread_name_prefix="twilio-callback")
                self._courier = threading.Thread(target=self._run_courier, name="twilio-courier", daemon=True)
                self._courier.start()
            heapq.heappush(self._due, (due, next(self._callback_seq), generation, message, status))
            self._wake.notify()

    def _run_courier(self) -> None:
        while True:
            with self._wake:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._closed:
                    return
                _, _, generation, message, status = heapq.heappop(self._due)
                posters = self._posters
            if posters is not None and generation == self._generation:
                try:
                    posters.submit(self._callback, message, status, generation)
                except RuntimeError:  # shut down
                    return

    def _callback(self, message: AcceptedMessage, status: str, generation: int) -> None:
        assert message.status_callback is not None
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_ or self.service_number,
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.messaging_service_sid is not None:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if status in ("undelivered", "failed") and message.error_code is not None:
            params["ErrorCode"] = str(message.error_code)
        hook = self._post("status", message.status_callback, params)
        with self._posted:
            if generation != self._generation:
                return
            self.callbacks.append(hook)
            self._posted.notify_all()
        if status == "sent":
            assert message.status_delay is not None
            due = max(message.accepted_at + 2 * message.status_delay, time.monotonic())
            self._schedule(due, message, message.final_status, generation)

    def _post(self, kind: Literal["status", "inbound"], url: str, params: dict[str, str],
              signature: str | None = None) -> Webhook:
        signed = signature if signature is not None else self.signature(url, params)
        request = Request(url, data=urlencode(params).encode(), method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Twilio-Signature": signed,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
            "Accept": "*/*",
        })
        try:
            with _NO_PROXY.open(request, timeout=self.callback_timeout) as response:
                status, text = response.status, response.read(65536)
        except HTTPError as exc:
            status, text = exc.code, exc.read(65536)
        except (URLError, OSError, ValueError) as exc:
            return Webhook(kind, url, params, signed, None, error=type(exc).__name__)
        return Webhook(kind, url, params, signed, status, text.decode("utf-8", "replace"))

    def close(self) -> None:
        """Stop the callback courier (end of the session)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            posters = self._posters
        self.release_stalled()
        if posters is not None:
            posters.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class ReceivedWebhook:
    url: str
    """The full URL requested, as the app would rebuild it (scheme, host:port, path, query)."""
    params: dict[str, str]
    signature: str | None
    valid: bool
    """Whether the official `RequestValidator` accepted the signature with the receiver's auth token."""


class WebhookReceiver:
    """A minimal stand-in for the project's webhook endpoint: records every POST, checks its
    X-Twilio-Signature with the official `twilio.request_validator.RequestValidator`, and answers 204
    (403 for a bad signature, or `answer_status` when set)."""

    def __init__(self, auth_token: str) -> None:
        from twilio.request_validator import RequestValidator

        self.validator = RequestValidator(auth_token)
        self.received: list[ReceivedWebhook] = []
        self.answer_status: int | None = None
        self.answer_body = ""
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                params = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                url = f"http://{self.headers.get('Host')}{self.path}"
                signature = self.headers.get("X-Twilio-Signature")
                valid = signature is not None and receiver.validator.validate(url, params, signature)
                with receiver._lock:
                    receiver.received.append(ReceivedWebhook(url, params, signature, valid))
                status = receiver.answer_status or (204 if valid else 403)
                data = receiver.answer_body.encode() if status != 204 else b""
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client went away (killed, timed out): nothing to report
        super().handle_error(request, client_address)


def _handler_for(state: TwilioStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a client's pooled connections are reused
        disable_nagle_algorithm = True
        wbufsize = 1 << 16  # headers and body leave in one write, flushed after each request

        def setup(self) -> None:
            super().setup()
            state._connected()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            answer = state.handle(self.command, self.path, self.headers.get("Authorization"), form)
            status, payload = answer[0], answer[1]
            if getattr(answer, "action", "answer") == "drop":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in getattr(answer, "headers", ()):
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry nothing we want on the test output

    return Handler


def start_standin() -> tuple[TwilioStandin, _Server, threading.Thread]:
    """A stand-in serving on a free loopback port (the fixtures' and the benchmarks' way to start one)."""
    state = TwilioStandin(
        base_url="", account_sid="AC" + secrets.token_hex(16), auth_token=secrets.token_hex(16)
    )
    server = _Server(("127.0.0.1", 0), _handler_for(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="twilio-standin", daemon=True)
    thread.start()
    return state, server, thread


def stop_standin(state: TwilioStandin, server: _Server, thread: threading.Thread) -> None:
    state.reset()
    state.close()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def _twilio_session() -> Iterator[TwilioStandin]:
    state, server, thread = start_standin()
    try:
        yield state
    finally:
        stop_standin(state, server, thread)


@pytest.fixture
def webhook_receiver(twilio_standin: TwilioStandin) -> Iterator[WebhookReceiver]:
    """A webhook endpoint that checks the stand-in's signatures with the official validator."""
    receiver = WebhookReceiver(twilio_standin.auth_token)
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def twilio_standin(_twilio_session: TwilioStandin) -> Iterator[TwilioStandin]:
    """The session's Twilio stand-in with no messages and no registrations."""
    _twilio_session.reset()
    yield _twilio_session
    _twilio_session.reset()
