"""Responder messages to a Slack channel, through an incoming webhook (`POST https://hooks.slack.com/services/...`).

The message is the `payload` of a `ResponderEvent`, a Block Kit message built by
`forewarn.outreach.responders.slack_message`. Slack's answer is classified, never raised:

- 200 with the body `ok`: posted (Slack gives a webhook post no id);
- 400 (`invalid_payload`, `no_text`, `invalid_blocks`, ...), 403 (`invalid_token`, `action_prohibited`),
  404 (`no_service`, `channel_not_found`), 410 (`channel_is_archived`) and any other 4xx: final, with
  Slack's error code in the reason;
- 429: retryable, after the `Retry-After` seconds;
- 5xx (`rollup_error`, ...): retryable and `uncertain` (the message may have been posted);
- a timeout or a connection dropped after the request went: retryable and `uncertain`; a connection
  that could not be opened: retryable, nothing went.

Slack has no idempotency key for webhook posts, so sending again after an uncertain failure may post the
message twice: delivery to Slack is at least once (the outbox never drops a message it could not
confirm; a responder may see a stage twice).

The webhook URL is a secret (anyone holding it can post to the channel): it is never logged nor put in
a reason, and transport errors (whose text quotes the URL) are reported by type only. urllib3 writes the
request path (the secret) at DEBUG: `forewarn.logs` holds it at WARNING, and an embedder must do the same.

>>> sender = SlackSender("https://hooks.slack.com/services/T000/B000/XXXX")
>>> sender.target, "XXXX" in repr(sender)
('slack', False)
>>> classify_answer(400, "invalid_blocks", None).reason
'slack 400: invalid_blocks'
"""

from __future__ import annotations

import logging
import re

import requests

from forewarn.connectors.responder_http import json_session, parse_retry_after, transport_failure
from forewarn.decisions import ResponderEvent, ResponderTarget
from forewarn.records import SendResult

log = logging.getLogger(__name__)

_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


def _code(body: str) -> str:
    """Slack's error code (`invalid_blocks`); anything else an answer body holds is not repeated."""
    text = body.strip()
    return text if _ERROR_CODE.fullmatch(text) else "unexpected answer"


def classify_answer(status: int, body: str, retry_after: float | None) -> SendResult:
    """Map a webhook's HTTP status and text answer to a SendResult.

    >>> classify_answer(200, "ok", None).ok
    True
    >>> archived = classify_answer(410, "channel_is_archived", None)
    >>> archived.retryable, archived.reason
    (False, 'slack 410: channel_is_archived')
    >>> limited = classify_answer(429, "rate_limited", 30.0)
    >>> limited.retryable, limited.retry_after, limited.uncertain
    (True, 30.0, False)
    >>> server = classify_answer(500, "rollup_error", None)
    >>> server.retryable, server.uncertain
    (True, True)
    >>> classify_answer(200, "<html>captive portal</html>", None).reason
    'slack 200: unexpected answer'
    """
    if status == 200 and body.strip() == "ok":
        return SendResult(ok=True)
    code = _code(body)
    if 200 <= status < 300:
        # Something answered that is not Slack's "ok" (a proxy?): the post may or may not have gone.
        return SendResult(ok=False, retryable=True, uncertain=True, reason=f"slack {status}: {code}")
    if status == 429:
        return SendResult(ok=False, retryable=True, retry_after=retry_after, reason=f"slack 429: {code}")
    if status >= 500:
        return SendResult(ok=False, retryable=True, uncertain=True, retry_after=retry_after,
                          reason=f"slack {status}: {code}")
    return SendResult(ok=False, retryable=False, reason=f"slack {status}: {code}")


class SlackSender:
    """Posts Slack messages to one incoming webhook; implements `ResponderSender`. Safe to share between
    threads (one pooled session); `session` replaces it."""

    target: ResponderTarget = "slack"

    def __init__(self, webhook_url: str, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        if not webhook_url.startswith(("https://", "http://")):
            raise ValueError("the Slack webhook URL must be an http(s) URL (https://hooks.slack.com/services/...)")
        self._url = webhook_url
        self.timeout = timeout
        self._session = session if session is not None else json_session()

    def __repr__(self) -> str:
        return f"SlackSender(webhook_url=<secret>, timeout={self.timeout})"

    def send(self, event: ResponderEvent) -> SendResult:
        """Post one message and classify the answer."""
        if event.target != self.target:
            return SendResult(ok=False, reason=f"not a slack message (target {event.target})")
        try:
            response = self._session.post(self._url, json=event.payload, timeout=self.timeout)
        except (requests.RequestException, OSError) as exc:
            result = transport_failure("slack", exc)
        else:
            result = classify_answer(response.status_code, response.text,
                                     parse_retry_after(response.headers.get("Retry-After")))
        if result.ok:
            log.debug("slack message posted id=%s", event.id)
        else:
            log.warning("slack message not posted id=%s reason=%s retryable=%s uncertain=%s", event.id,
                        result.reason, result.retryable, result.uncertain)
        return result

    def close(self) -> None:
        self._session.close()
