"""SMS through Twilio's Messages API, with the official `twilio` client.

Failures are classified, never raised: rate limits (429, with the seconds of its `Retry-After`),
Twilio server errors (5xx), timeouts and connection errors are retryable; refused credentials
(401/20003) halt the channel (retryable: the message waits for the fix); an unsubscribed
recipient (21610) is final and reported as an opt-out; any other 4xx is final. Reasons are built
from status and error code only, never from Twilio's message text, which can quote the phone
number, and never carry a number or a body.

A failure after the request went out may hide a message Twilio took: a timeout waiting for the
answer, a connection dropped after sending, a 5xx. Those results are `uncertain`: before sending
again, `find_sent` looks the message up in Twilio's own log (the Messages list filtered by `To`,
newest first, matched on the exact body, which the outbox rendered once). A connection that
could not even be opened (refused, no route, a connect timeout, a name that does not resolve)
sent nothing and is retryable but certain.

One sender is safe to call from any number of threads: the official client shares one pooled
`requests` session (sized with `pool_size` in `from_settings`), and the answer headers Twilio's
exceptions do not carry (`Retry-After`) are kept per thread.

The constructor needs exactly one sender identity, and checks it without any network:

>>> from twilio.rest import Client
>>> client = Client("AC" + "0" * 32, "token")
>>> sender = TwilioSender(client, from_number="+15125550199")
>>> sender.channel, sender.identity
('sms', 'twilio:+15125550199')
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

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from forewarn.connectors.responder_http import parse_retry_after
from forewarn.connectors.twilio_errors import (
    as_int,
    classify_transport_error,
    classify_twilio_error,
    refusal,
)
from forewarn.records import Channel, Message, SendResult
from forewarn.settings import ConfigError

log = logging.getLogger(__name__)

RECONCILE_SLACK = timedelta(minutes=2)
"""How far before `since` a reconcile still looks: clocks differ, and Twilio stamps whole seconds."""


class AnswerMemo(HttpClient):  # twilio ships no type hints: HttpClient is Any to mypy
    """Wraps a client's HTTP client and keeps each thread's last answer: Twilio's exceptions carry the
    status and error code but not the headers (`Retry-After`). Everything else is the wrapped client's."""

    def __init__(self, inner: Any) -> None:
        # HttpClient.__init__ is not called: its attributes are the inner client's (see __getattr__).
        self.inner = inner
        self._local = threading.local()

    @property
    def timeout(self) -> float | None:
        return self.inner.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.inner.timeout = value

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._local.response = None
        response = self.inner.request(*args, **kwargs)
        self._local.response = response
        return response

    def last_response(self) -> Any:
        """This thread's last answer (a `twilio.http.response.Response`), None when the last request got none."""
        return getattr(self._local, "response", None)

    def last_header(self, name: str) -> str | None:
        response = self.last_response()
        headers = getattr(response, "headers", None) or {}
        value = headers.get(name)  # requests' headers are case-insensitive; another client's may not be
        if value is None:
            value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
        return None if value is None else str(value)


class TwilioSender:
    """Sends SMS messages with an injected `twilio.rest.Client`; implements `Sender` and `Reconciler`.

    The client's HTTP client is wrapped (`AnswerMemo`) so that a 429's `Retry-After` is read."""

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
        if not isinstance(client.http_client, AnswerMemo):
            client.http_client = AnswerMemo(client.http_client)
        self._client = client
        self._http: AnswerMemo = client.http_client
        self._from_number = from_number
        self._service = messaging_service_sid
        self._identity: dict[str, Any] = (
            {"from_": from_number} if from_number else {"messaging_service_sid": messaging_service_sid}
        )

    @property
    def identity(self) -> str:
        """The sender identity Twilio paces (the From number, or the Messaging Service), as a rate-limit key."""
        return f"twilio:{self._from_number or self._service}"

    @classmethod
    def from_settings(
        cls,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        pool_size: int = 32,
    ) -> TwilioSender:
        """Build the client from credentials; `base_url` replaces https://api.twilio.com. `pool_size` keep-alive
        connections are kept for the threads sending at once (more are opened, then closed, when needed)."""
        if not account_sid or not auth_token:
            raise ValueError("TwilioSender needs a Twilio account_sid and auth_token")
        http = TwilioHttpClient(timeout=timeout)
        # No automatic retries (max_retries 0): a retried POST could send twice; we classify instead.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(1, pool_size))
        http.session.mount("https://", adapter)
        http.session.mount("http://", adapter)
        client = Client(account_sid, auth_token, http_client=http)
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
        http.timeout = timeout  # the check must answer in seconds, not the send's
        try:
            account = self._client.api.v2010.accounts(self._client.account_sid).fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            raise ConfigError(refusal(int(exc.status), as_int(exc.code))) from None
        except (requests.RequestException, OSError) as exc:
            raise ConfigError(f"Twilio at {self._client.api.base_url} did not answer ({type(exc).__name__}): check "
                              "sms.base_url (unset means https://api.twilio.com) and the network") from None
        except TwilioException as exc:
            raise ConfigError(f"Twilio at {self._client.api.base_url} answered the account check with something "
                              f"unexpected ({type(exc).__name__}): check sms.base_url") from None
        finally:
            http.timeout = saved
        if account.status not in (None, "active"):  # suspended or closed: no SMS will go
            raise ConfigError(f"the Twilio account in TWILIO_ACCOUNT_SID is {account.status}, so it cannot send: "
                              "reactivate it in the Twilio Console or use another account")

    def send(self, message: Message, status_callback: str | None = None, html: str | None = None) -> SendResult:
        """Send one SMS, asking Twilio to report its fate to `status_callback` when given; classify any
        failure instead of raising. `html` is ignored (an SMS is text)."""
        if message.channel != self.channel:
            return SendResult(ok=False, reason=f"not an sms message (channel {message.channel})")
        extra: dict[str, Any] = {"status_callback": status_callback} if status_callback else {}
        try:
            created = self._client.messages.create(to=message.to, body=message.body, **self._identity, **extra)
        except (TwilioRestException, TwilioServiceException) as exc:
            result = classify_twilio_error(int(exc.status), as_int(exc.code), self._retry_after())
        except (requests.RequestException, OSError, ValueError, TwilioException) as exc:
            result = classify_transport_error(exc)
        else:
            log.debug("sms sent key=%s sid=%s", message.key, created.sid)
            return SendResult(ok=True, provider_id=created.sid)
        log.warning("sms not sent key=%s reason=%s retryable=%s uncertain=%s", message.key, result.reason,
                    result.retryable, result.uncertain)
        return result

    def find_sent(self, message: Message, since: datetime, page_size: int = 50) -> SendResult | None:
        """Twilio's record of `message` created at or after `since` (less `RECONCILE_SLACK`): the Messages list
        to its number (from our number, when the identity is one), newest first, paged until older than that,
        matched on the exact body (and our sender). SendResult(ok=True, provider_id=sid) when found; None when
        Twilio has no such message; a failed result (retryable, uncertain) when the lookup itself failed."""
        if message.channel != self.channel:
            return None
        horizon = (since if since.tzinfo else since.replace(tzinfo=UTC)) - RECONCILE_SLACK
        query: dict[str, Any] = {"to": message.to, "page_size": page_size}
        if self._from_number:
            query["from_"] = self._from_number
        try:
            for found in self._client.messages.stream(**query):
                if found.date_created is not None and found.date_created < horizon:
                    break  # newest first: everything further is older
                if found.body == message.body and self._ours(found):
                    log.info("sms found at the provider key=%s sid=%s status=%s", message.key, found.sid,
                             found.status)
                    return SendResult(ok=True, provider_id=found.sid, reason="found in the provider's log")
        except (TwilioRestException, TwilioServiceException) as exc:
            failed = classify_twilio_error(int(exc.status), as_int(exc.code), self._retry_after())
        except TwilioException as exc:  # a list page answered other than 200: "Unable to fetch page"
            failed = self._page_error(exc)
        except (requests.RequestException, OSError, ValueError) as exc:
            failed = classify_transport_error(exc)
        else:
            return None
        log.warning("sms lookup failed key=%s reason=%s", message.key, failed.reason)
        return SendResult(ok=False, retryable=True, uncertain=True, halts_channel=failed.halts_channel,
                          retry_after=failed.retry_after, reason=f"lookup failed: {failed.reason}")

    def _ours(self, found: Any) -> bool:
        if self._from_number:
            return found.from_ in (None, self._from_number)
        return bool(found.messaging_service_sid == self._service)

    def _retry_after(self) -> float | None:
        return parse_retry_after(self._http.last_header("Retry-After"))

    def _page_error(self, exc: TwilioException) -> SendResult:
        response = next((a for a in exc.args if hasattr(a, "status_code")), None) or self._http.last_response()
        if response is None:
            return classify_transport_error(exc)
        try:
            code = as_int(json.loads(response.text).get("code"))
        except (ValueError, AttributeError):
            code = None
        return classify_twilio_error(int(response.status_code), code, self._retry_after())


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
