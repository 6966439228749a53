"""How the Twilio sender classifies what went wrong, without a network: HTTP answers, Retry-After,
and the transport errors `requests` raises (which of them may hide a message Twilio took)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.client import RemoteDisconnected
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioException
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import (
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from forewarn.connectors.responder_http import parse_retry_after
from forewarn.connectors.sms import AnswerMemo, TwilioSender
from forewarn.connectors.twilio_errors import classify_transport_error, classify_twilio_error

PHONE = "+15125550100"


@pytest.mark.parametrize(("status", "code", "retryable", "uncertain", "reason"), [
    (400, 21211, False, False, "twilio 21211: invalid To number"),
    (400, 21614, False, False, "twilio 21614: To number is not a mobile number"),
    (400, 21610, False, False, "twilio 21610: recipient unsubscribed"),
    (400, 99999, False, False, "twilio 99999: rejected (HTTP 400)"),
    (429, 20429, True, False, "twilio 20429: rate limited"),
    (500, 20500, True, True, "twilio 20500: server error (HTTP 500)"),
    (502, None, True, True, "twilio 502: server error (HTTP 502)"),
    (503, 20503, True, True, "twilio 20503: server error (HTTP 503)"),
])
def test_http_answers(status: int, code: int | None, retryable: bool, uncertain: bool, reason: str) -> None:
    result = classify_twilio_error(status, code, retry_after=4.0)
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (False, retryable, uncertain, reason)
    assert result.retry_after == (4.0 if retryable else None)  # only a retry waits


def test_refused_credentials_halt_and_are_certain() -> None:
    result = classify_twilio_error(401, 20003, retry_after=9.0)
    assert (result.halts_channel, result.retryable, result.uncertain) == (True, True, False)


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), ("0", 0.0), ("2.5", 2.5), ("-1", None), ("inf", None), ("nan", None), ("", None), (None, None),
    ("tomorrow", None), ("Wed, 21 Oct 2015 07:29:00 GMT", 60.0), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0), ("Wed Oct 21 07:29:00 2015", 60.0),  # RFC 850, asctime: obsolete, read
])
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=datetime(2015, 10, 21, 7, 28, tzinfo=UTC)) == seconds


def _refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, "/Messages.json", reason))  # type: ignore[arg-type]


def _unresolved() -> requests.ConnectionError:
    reason = NameResolutionError("api.twilio.invalid", None, OSError("Name or service not known"))  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, "/Messages.json", reason))  # type: ignore[arg-type]


def _aborted() -> requests.ConnectionError:
    # what requests raises when the server closes the connection after reading the request
    aborted = ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed connection without response"))
    return requests.ConnectionError(aborted)


def _reset() -> requests.ConnectionError:
    return requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")))


def _read_timeout() -> requests.ReadTimeout:
    return requests.ReadTimeout(ReadTimeoutError(None, "/Messages.json", "Read timed out. (read timeout=10)"))  # type: ignore[arg-type]


@pytest.mark.parametrize(("error", "reason", "uncertain"), [
    (_refused, "twilio: connection failed", False),
    (_unresolved, "twilio: connection failed", False),
    (lambda: requests.ConnectTimeout("connect timed out"), "twilio: connect timeout", False),
    (lambda: ConnectionRefusedError(111, "Connection refused"), "twilio: connection failed", False),
    (_aborted, "twilio: connection dropped", True),
    (_reset, "twilio: connection dropped", True),
    (_read_timeout, "twilio: timeout", True),
    (lambda: requests.exceptions.ChunkedEncodingError("incomplete read"), "twilio: connection dropped", True),
    (lambda: requests.exceptions.ContentDecodingError("bad gzip"), "twilio: ContentDecodingError", True),
    (lambda: ValueError("Expecting value: line 1 column 1 (char 0)"), "twilio: unreadable answer", True),
])
def test_transport_errors(error: Any, reason: str, uncertain: bool) -> None:
    result = classify_transport_error(error())
    assert (result.ok, result.retryable, result.uncertain, result.reason) == (False, True, uncertain, reason)


def test_other_client_errors_are_final() -> None:
    result = classify_transport_error(TwilioException("Page Records can not be deserialized"))
    assert (result.retryable, result.uncertain, result.reason) == (False, False, "twilio: TwilioException")


class FakeHttp:
    """An HTTP client that answers what each thread asks it for, after the others asked."""

    def __init__(self) -> None:
        self.timeout: float | None = 10.0
        self.logger = None
        self.barrier = threading.Barrier(8)

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.barrier.wait(timeout=5)  # every thread has sent before any gets its answer
        return Response(429, "{}", {"Retry-After": url.rsplit("/", 1)[-1]})


def test_each_thread_reads_its_own_last_answer() -> None:
    memo = AnswerMemo(FakeHttp())
    seen: dict[str, str | None] = {}

    def ask(n: int) -> None:
        memo.request("POST", f"https://api.twilio.com/{n}")
        seen[str(n)] = memo.last_header("retry-after")  # headers are case-insensitive

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == {str(n): str(n) for n in range(8)}
    assert memo.last_response() is None  # this thread asked nothing


def test_a_failed_request_leaves_no_stale_answer() -> None:
    class Failing(FakeHttp):
        def request(self, method: str, url: str, **kwargs: Any) -> Response:
            raise requests.ConnectionError("refused")

    memo = AnswerMemo(Failing())
    memo._local.response = Response(429, "{}", {"Retry-After": "5"})
    with pytest.raises(requests.ConnectionError):
        memo.request("POST", "https://api.twilio.com/")
    assert memo.last_header("Retry-After") is None


def test_the_memo_forwards_the_timeout_and_wraps_once() -> None:
    client = Client("AC" + "0" * 32, "token")
    inner = client.http_client
    TwilioSender(client, from_number="+15125550199")
    TwilioSender(client, from_number="+15125550198")  # a second sender on the same client: still one wrapper
    memo = client.http_client
    assert isinstance(memo, AnswerMemo) and memo.inner is inner
    memo.timeout = 2.0
    assert inner.timeout == 2.0 and memo.timeout == 2.0
    assert memo.session is inner.session  # everything else is the wrapped client's


def test_reasons_never_carry_the_number() -> None:
    results = [classify_twilio_error(s, c) for s, c in ((400, 21211), (429, None), (503, None), (401, 20003))]
    results += [classify_transport_error(e) for e in (_refused(), _aborted(), _read_timeout())]
    assert all(PHONE not in r.reason and "5550100" not in r.reason for r in results)
