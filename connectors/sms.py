"""SMS through Twilio's Messages API, with the official `twilio` client.

Failures are classified, never raised: rate limits (429), Twilio server errors (5xx),
timeouts and connection errors are retryable; refused credentials (401/20003) halt the
channel (retryable: the message waits for the fix); an unsubscribed recipient (21610) is
final and reported as an opt-out; any other 4xx is final. Reasons are built from status and
error code only, never from Twilio's message text, which can quote the phone number.

The constructor needs exactly one sender identity, and checks it without any network:

>>> from twilio.rest import Client
>>> client = Client("AC" + "0" * 32, "token")
>>> TwilioSender(client, from_number="+15125550199").channel
'sms'
>>> TwilioSender(client)
Traceback (most recent call last):
...
ValueError: TwilioSender needs exactly one of from_number or messaging_service_sid, got neither
>>> TwilioSender(client, messaging_service_sid="PN123")
Traceback (most recent call last):
...
ValueError: messaging_service_sid must start with 'MG' (a Twilio Messaging Service SID)
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from forewarn.records import Channel, Message, SendResult
from forewarn.settings import ConfigError

log = logging.getLogger(__name__)

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


def classify_twilio_error(status: int, code: int | None) -> SendResult:
    """Map a Twilio HTTP status and error code to a SendResult.

    >>> result = classify_twilio_error(400, 21211)
    >>> result.ok, result.retryable, result.reason
    (False, False, 'twilio 21211: invalid To number')
    >>> classify_twilio_error(429, 20429).retryable, classify_twilio_error(503, None).retryable
    (True, True)
    >>> classify_twilio_error(400, 21610).opted_out
    True
    >>> halted = classify_twilio_error(401, 20003)
    >>> halted.halts_channel, halted.retryable
    (True, True)
    """
    label = f"twilio {code if code is not None else status}"
    if status == 401 or code == AUTHENTICATION:
        # Our credentials, not this message: every send would fail alike, so halt, keep them for later.
        return SendResult(ok=False, retryable=True, halts_channel=True,
                          reason=f"{label}: channel halted: authentication failed; {CREDENTIALS_FIX}")
    if status == 429 or code == 20429:
        return SendResult(ok=False, retryable=True, reason=f"{label}: rate limited")
    if status >= 500:
        return SendResult(ok=False, retryable=True, reason=f"{label}: server error (HTTP {status})")
    if code == UNSUBSCRIBED:
        return SendResult(ok=False, reason=f"{label}: recipient unsubscribed", opted_out=True)
    known = _FINAL_REASONS.get(code) if code is not None else None
    return SendResult(ok=False, retryable=False, reason=f"{label}: {known or f'rejected (HTTP {status})'}")


def _refusal(status: int, code: int | None) -> str:
    if status in (401, 403, 404) or code == AUTHENTICATION:
        return (f"Twilio refused the credentials (HTTP {status}, error {code}): set TWILIO_ACCOUNT_SID (AC...) and "
                "TWILIO_AUTH_TOKEN to the account SID and auth token shown in the Twilio Console, then restart")
    return f"Twilio answered the account check with HTTP {status} (error {code}): see https://status.twilio.com"


def _as_int(code: object) -> int | None:
    try:
        return int(code)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


class TwilioSender:
    """Sends SMS messages with an injected `twilio.rest.Client`; implements `Sender`."""

    channel: Channel = "sms"

    def __init__(
        self, client: Client, *, from_number: str | None = None, messaging_service_sid: str | None = None
    ) -> None:
        if bool(from_number) == bool(messaging_service_sid):
            got = "both" if from_number else "neither"
            raise ValueError(
                f"TwilioSender needs exactly one of from_number or messaging_service_sid, got {got}"
            )
        if messaging_service_sid and not messaging_service_sid.startswith("MG"):
            raise ValueError("messaging_service_sid must start with 'MG' (a Twilio Messaging Service SID)")
        self._client = client
        self._identity: dict[str, Any] = (
            {"from_": from_number} if from_number else {"messaging_service_sid": messaging_service_sid}
        )

    @classmethod
    def from_settings(
        cls,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
    ) -> TwilioSender:
        """Build the client from credentials; `base_url` replaces https://api.twilio.com."""
        if not account_sid or not auth_token:
            raise ValueError("TwilioSender needs a Twilio account_sid and auth_token")
        client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        if base_url is not None:
            client.api.base_url = base_url
            # TWILIO_EDGE/TWILIO_REGION from the environment would rewrite the host of base_url.
            client.edge = client.region = None
        return cls(client, from_number=from_number, messaging_service_sid=messaging_service_sid)

    def check(self, timeout: float = 2.0) -> None:
        """Fetch our own account (an authenticated read): refused credentials stop the start with
        ConfigError, instead of failing every SMS of the run."""
        http = self._client.http_client
        saved = getattr(http, "timeout", None)
        http.timeout = timeout  # type: ignore[attr-defined] # the check must answer in seconds, not the send's
        try:
            account = self._client.api.v2010.accounts(self._client.account_sid).fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            raise ConfigError(_refusal(int(exc.status), _as_int(exc.code))) from None
        except (requests.RequestException, OSError) as exc:
            raise ConfigError(f"Twilio at {self._client.api.base_url} did not answer ({type(exc).__name__}): check "
                              "sms.base_url (unset means https://api.twilio.com) and the network") from None
        except TwilioException as exc:
            raise ConfigError(f"Twilio at {self._client.api.base_url} answered the account check with something "
                              f"unexpected ({type(exc).__name__}): check sms.base_url") from None
        finally:
            http.timeout = saved  # type: ignore[attr-defined]
        if account.status not in (None, "active"):  # suspended or closed: no SMS will go
            raise ConfigError(f"the Twilio account in TWILIO_ACCOUNT_SID is {account.status}, so it cannot send: "
                              "reactivate it in the Twilio Console or use another account")

    def send(self, message: Message) -> SendResult:
        """Send one SMS; classify any failure instead of raising."""
        if message.channel != self.channel:
            return SendResult(ok=False, reason=f"not an sms message (channel {message.channel})")
        try:
            created = self._client.messages.create(to=message.to, body=message.body, **self._identity)
        except (TwilioRestException, TwilioServiceException) as exc:
            result = classify_twilio_error(int(exc.status), _as_int(exc.code))
        except requests.Timeout:
            result = SendResult(ok=False, retryable=True, reason="twilio: timeout")
        except (requests.ConnectionError, ConnectionError):
            result = SendResult(ok=False, retryable=True, reason="twilio: connection failed")
        except (requests.RequestException, OSError) as exc:
            result = SendResult(ok=False, retryable=True, reason=f"twilio: {type(exc).__name__}")
        except TwilioException as exc:
            result = SendResult(ok=False, retryable=False, reason=f"twilio: {type(exc).__name__}")
        else:
            log.debug("sms sent key=%s sid=%s", message.key, created.sid)
            return SendResult(ok=True, provider_id=created.sid)
        log.warning("sms not sent key=%s reason=%s retryable=%s", message.key, result.reason,
                    result.retryable)
        return result


GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def sms_segments(body: str) -> tuple[str, int]:
    """The encoding a body needs and how many SMS segments it takes.

    Bodies within the GSM 03.38 alphabet travel as 7-bit septets (extension characters
    such as € take two); anything else as UCS-2. A concatenated message loses room to
    its header: 153 septets or 67 UCS-2 characters per segment.

    >>> sms_segments("Outage in your area since 14:05. Reply STOP to opt out.")
    ('GSM-7', 1)
    >>> sms_segments("€" * 81)
    ('GSM-7', 2)
    >>> sms_segments("Corte en su zona ✓")
    ('UCS-2', 1)
    """
    import gsm0338  # noqa: F401 - registers the "gsm03.38" codec

    try:
        septets = len(body.encode("gsm03.38"))
    except UnicodeEncodeError:
        units = len(body.encode("utf-16-le")) // 2
        return "UCS-2", 1 if units <= UCS2_SINGLE else -(-units // UCS2_PART)
    return "GSM-7", 1 if septets <= GSM7_SINGLE else -(-septets // GSM7_PART)
