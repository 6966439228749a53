"""A local stand-in for Twilio's Messages resource, for the official `twilio` client.

Twilio is a paid API, so tests point the real client at this server instead:

    client = twilio.rest.Client(standin.account_sid, standin.auth_token)
    client.api.base_url = standin.base_url

It speaks `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with form fields, HTTP
Basic auth, and Twilio's JSON bodies and error codes (20003, 21211, 21602-21604, 21610,
21617, 20429, 20500), and `GET /2010-04-01/Accounts/{AccountSid}.json` (the account fetch
a start-up credentials check makes).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

API_VERSION = "2010-04-01"
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)\.json$")
_CREATED = "Thu, 30 Jul 2015 20:00:00 +0000"
_MAX_BODY = 1600


@dataclass(frozen=True)
class AcceptedMessage:
    """What the stand-in accepted, as Twilio would have queued it."""

    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _segments(body: str) -> int:
    """SMS segments: GSM-7 (approximated as ASCII) 160/153 characters, else UCS-2 70/67."""
    single, multi = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


@dataclass
class TwilioStandin:
    """State of the stand-in; registrations and messages are reset before each test."""

    base_url: str
    account_sid: str
    auth_token: str
    messages: list[AcceptedMessage] = field(default_factory=list)
    requests: int = 0
    _invalid: set[str] = field(default_factory=set)
    _unsubscribed: set[str] = field(default_factory=set)
    _rate_limited: dict[str, int] = field(default_factory=dict)
    _server_errors: int = 0
    account_status: str = "active"
    """What the account fetch reports: active, suspended or closed."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register_invalid(self, *numbers: str) -> None:
        """Answer sends to these numbers with 400 / 21211 (not a valid phone number)."""
        with self._lock:
            self._invalid.update(numbers)

    def register_unsubscribed(self, *numbers: str) -> None:
        """Answer sends to these numbers with 400 / 21610 (recipient replied STOP)."""
        with self._lock:
            self._unsubscribed.update(numbers)

    def register_rate_limited(self, number: str, times: int = 1) -> None:
        """Answer the next `times` sends to `number` with 429 / 20429, then accept."""
        with self._lock:
            self._rate_limited[number] = times

    def fail_next(self, times: int = 1) -> None:
        """Answer the next `times` requests, whatever they are, with 500 / 20500."""
        with self._lock:
            self._server_errors = times

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.requests = 0
            self._invalid.clear()
            self._unsubscribed.clear()
            self._rate_limited.clear()
            self._server_errors = 0
            self.account_status = "active"

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
        """Answer one request: (HTTP status, JSON body)."""
        with self._lock:
            self.requests += 1
            if self._server_errors > 0:
                self._server_errors -= 1
                return _error(500, 20500, "Internal Server Error")
        account = _ACCOUNT_PATH.match(path.split("?", 1)[0])
        if account is not None:
            return self._account(method, account["account"], auth)
        match = _MESSAGES_PATH.match(path.split("?", 1)[0])
        if match is None:
            return _error(404, 20404, f"The requested resource {path} was not found")
        if not self._authorized(auth) or match["account"] != self.account_sid:
            return _error(401, 20003, "Authenticate")
        if method != "POST":
            return _error(405, 20004, "Method not allowed")
        return self._create(form)

    def _account(self, method: str, sid: str, auth: str | None) -> tuple[int, Any]:
        """Fetch an account: Twilio answers 401/20003 for bad credentials, 404/20404 for another SID."""
        if not self._authorized(auth):
            return _error(401, 20003, "Authenticate")
        if sid != self.account_sid:
            return _error(404, 20404, f"The requested resource /2010-04-01/Accounts/{sid}.json was not found")
        if method != "GET":
            return _error(405, 20004, "Method not allowed")
        uri = f"/{API_VERSION}/Accounts/{sid}"
        return 200, {
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
        }

    def _create(self, form: dict[str, str]) -> tuple[int, Any]:
        to = form.get("To", "")
        from_ = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if from_ is None and service is None:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > _MAX_BODY:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        with self._lock:
            if to in self._invalid:
                return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
            if to in self._unsubscribed:
                return _error(400, 21610, "Attempt to send to unsubscribed recipient")
            if self._rate_limited.get(to, 0) > 0:
                self._rate_limited[to] -= 1
                return _error(429, 20429, "Too Many Requests")
            sid = "SM" + secrets.token_hex(16)
            self.messages.append(AcceptedMessage(sid, to, from_, body, service))
        now = format_datetime(datetime.now(UTC).replace(microsecond=0))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return 201, {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # Twilio answers "accepted" when a Messaging Service still has to pick the sender.
            "status": "queued" if service is None else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }


def _handler_for(state: TwilioStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            status, payload = state.handle(self.command, self.path, self.headers.get("Authorization"), form)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry nothing we want on the test output

    return Handler


@pytest.fixture(scope="session")
def _twilio_session() -> Iterator[TwilioStandin]:
    state = TwilioStandin(
        base_url="", account_sid="AC" + secrets.token_hex(16), auth_token=secrets.token_hex(16)
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="twilio-standin", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def twilio_standin(_twilio_session: TwilioStandin) -> Iterator[TwilioStandin]:
    """The session's Twilio stand-in with no messages and no registrations."""
    _twilio_session.reset()
    yield _twilio_session
    _twilio_session.reset()
