"""What a Twilio answer means for a message: Twilio's HTTP statuses and error codes, and errors below HTTP, as
`SendResult`s (retryable? uncertain? final? halting the channel?).

Reasons are built from status and error code only, never from Twilio's message text, which can quote the
phone number, and never carry a number or a body.
"""

from __future__ import annotations

import requests

from forewarn.connectors.responder_http import never_sent
from forewarn.records import SendResult

UNSUBSCRIBED = 21610
AUTHENTICATION = 20003
CREDENTIALS_FIX = "fix TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN and restart"
_FINAL_REASONS = {
    21211: "invalid To number",
    21408: "region not enabled for this account",
    21606: "From number cannot send SMS",
    21612: "To number not reachable from this From number",
    21614: "To number is not a mobile number",
    21617: "body exceeds 1600 characters",
    30007: "message filtered as spam",
}


def classify_twilio_error(status: int, code: int | None, retry_after: float | None = None) -> SendResult:
    """Map a Twilio HTTP status and error code (and the answer's Retry-After seconds) to a SendResult.

    >>> result = classify_twilio_error(400, 21211)
    >>> result.ok, result.retryable, result.uncertain, result.reason
    (False, False, False, 'twilio 21211: invalid To number')
    >>> limited = classify_twilio_error(429, 20429, retry_after=3.0)
    >>> limited.retryable, limited.uncertain, limited.retry_after
    (True, False, 3.0)
    >>> server = classify_twilio_error(503, None)
    >>> server.retryable, server.uncertain, server.reason
    (True, True, 'twilio 503: server error (HTTP 503)')
    >>> classify_twilio_error(400, 21610).opted_out
    True
    >>> halted = classify_twilio_error(401, 20003)
    >>> halted.halts_channel, halted.retryable, halted.uncertain
    (True, True, False)
    """
    label = f"twilio {code if code is not None else status}"
    if status == 401 or code == AUTHENTICATION:
        # Our credentials, not this message: every send would fail alike, so halt, keep them for later.
        return SendResult(ok=False, retryable=True, halts_channel=True,
                          reason=f"{label}: channel halted: authentication failed; {CREDENTIALS_FIX}")
    if status == 429 or code == 20429:
        return SendResult(ok=False, retryable=True, reason=f"{label}: rate limited", retry_after=retry_after)
    if status >= 500:
        # The request reached Twilio and something broke: it may have queued the message anyway.
        return SendResult(ok=False, retryable=True, uncertain=True, retry_after=retry_after,
                          reason=f"{label}: server error (HTTP {status})")
    if code == UNSUBSCRIBED:
        return SendResult(ok=False, reason=f"{label}: recipient unsubscribed", opted_out=True)
    known = _FINAL_REASONS.get(code) if code is not None else None
    return SendResult(ok=False, retryable=False, reason=f"{label}: {known or f'rejected (HTTP {status})'}")


def classify_transport_error(exc: BaseException) -> SendResult:
    """Map an error below HTTP (or an unreadable answer) to a SendResult: retryable, and uncertain unless
    the request never left.

    >>> classify_transport_error(requests.ConnectionError(ConnectionRefusedError(111, "refused")))
    SendResult(ok=False, retryable=True, reason='twilio: connection failed', provider_id=None, opted_out=False, \
halts_channel=False, uncertain=False, retry_after=None)
    >>> dropped = classify_transport_error(requests.ConnectionError(ConnectionResetError(104, "reset")))
    >>> dropped.reason, dropped.uncertain
    ('twilio: connection dropped', True)
    >>> timeout = classify_transport_error(requests.ReadTimeout("read timed out"))
    >>> timeout.reason, timeout.uncertain
    ('twilio: timeout', True)
    >>> classify_transport_error(requests.ConnectTimeout("connect timed out")).uncertain
    False
    """
    if never_sent(exc):
        reason = "twilio: connect timeout" if isinstance(exc, requests.ConnectTimeout) else "twilio: connection failed"
        return SendResult(ok=False, retryable=True, reason=reason)
    if isinstance(exc, requests.Timeout | TimeoutError):
        reason = "twilio: timeout"
    elif isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError | ConnectionError):
        reason = "twilio: connection dropped"
    elif isinstance(exc, requests.RequestException | OSError):
        reason = f"twilio: {type(exc).__name__}"
    elif isinstance(exc, ValueError):  # a 2xx answer that is not the JSON of a message
        reason = "twilio: unreadable answer"
    else:
        return SendResult(ok=False, retryable=False, reason=f"twilio: {type(exc).__name__}")
    return SendResult(ok=False, retryable=True, uncertain=True, reason=reason)


def refusal(status: int, code: int | None) -> str:
    if status in (401, 403, 404) or code == AUTHENTICATION:
        return (f"Twilio refused the credentials (HTTP {status}, error {code}): set TWILIO_ACCOUNT_SID (AC...) and "
                "TWILIO_AUTH_TOKEN to the account SID and auth token shown in the Twilio Console, then restart")
    return f"Twilio answered the account check with HTTP {status} (error {code}): see https://status.twilio.com"


def as_int(code: object) -> int | None:
    try:
        return int(code)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
