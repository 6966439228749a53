"""What the HTTP senders share: one pooled `requests` session posting JSON, the classification of an error
below HTTP (`never_sent` also serves the Twilio sender), and reading an answer's `Retry-After`.

A transport error is retryable (an unusable URL excepted: that is final), and `uncertain` unless the
request never left: a connection that could not be opened (refused, unreachable, a name that does not
resolve, a connect timeout) sent nothing, while a read timeout or a connection dropped after sending may
hide an event the provider took. Reasons carry the error's type only, never its text: `requests` quotes
the URL, and a Slack webhook URL is a secret.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError

from forewarn.records import SendResult

USER_AGENT = "Forewarn responders"


def json_session(pool_size: int = 8) -> requests.Session:
    """A session with keep-alive connections for `pool_size` threads and no automatic retries (a retried POST
    could notify twice; the outbox retries instead, after classifying the failure)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def never_sent(exc: BaseException) -> bool:
    """Whether a transport error happened before any byte of the request left.

    >>> never_sent(requests.ConnectionError(ConnectionRefusedError(111, "refused")))
    True
    >>> never_sent(requests.ConnectTimeout("connect timed out")), never_sent(requests.ReadTimeout("read"))
    (True, False)
    >>> never_sent(requests.ConnectionError(ConnectionResetError(104, "reset")))
    False
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        error = stack.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        # urllib3's NewConnectionError (and NameResolutionError) are ConnectTimeoutErrors.
        if isinstance(error, ConnectTimeoutError | ConnectionRefusedError):
            return True
        linked = (getattr(error, "reason", None), error.__cause__, error.__context__, *error.args)
        stack.extend(e for e in linked if isinstance(e, BaseException))
    return False


def transport_failure(provider: str, exc: BaseException) -> SendResult:
    """A SendResult for an error below HTTP: retryable; uncertain unless the request never left.

    >>> refused = transport_failure("slack", requests.ConnectionError(ConnectionRefusedError(111, "refused")))
    >>> refused.retryable, refused.uncertain, refused.reason
    (True, False, 'slack: connection failed')
    >>> timeout = transport_failure("pagerduty", requests.ReadTimeout("https://secret.example/x timed out"))
    >>> timeout.retryable, timeout.uncertain, timeout.reason
    (True, True, 'pagerduty: timeout')
    >>> transport_failure("slack", requests.exceptions.InvalidURL("no host")).retryable
    False
    """
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                  | requests.exceptions.InvalidSchema):
        return SendResult(ok=False, retryable=False, reason=f"{provider}: invalid URL")  # nothing went; never will
    if never_sent(exc):
        what = "connect timeout" if isinstance(exc, requests.ConnectTimeout) else "connection failed"
        return SendResult(ok=False, retryable=True, reason=f"{provider}: {what}")
    if isinstance(exc, requests.Timeout | TimeoutError):
        what = "timeout"
    elif isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError | ConnectionError):
        what = "connection dropped"
    else:
        what = type(exc).__name__
    return SendResult(ok=False, retryable=True, uncertain=True, reason=f"{provider}: {what}")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from an HTTP `Retry-After` value: delay-seconds or an HTTP date; None when absent
    or unreadable.

    >>> parse_retry_after("7"), parse_retry_after(" 1.5 "), parse_retry_after(None), parse_retry_after("soon")
    (7.0, 1.5, None, None)
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=datetime(2015, 10, 21, 7, 28, tzinfo=UTC))
    30.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=datetime(2015, 10, 21, 7, 29, tzinfo=UTC))
    0.0
    """
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
