"""Responder events to PagerDuty, through the Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`).

The event is the `payload` of a `ResponderEvent`, built by `forewarn.outreach.responders.pagerduty_event`
(routing key, action, dedup key = the incident id). Its answer is classified, never raised:

- 202 Accepted: sent; `provider_id` is the dedup key PagerDuty answers with;
- 400 (an invalid event, or a routing key PagerDuty does not know): final, with PagerDuty's `errors`
  in the reason (the routing key cut out, should an error quote it);
- 429 (too many events for the integration): retryable, after the `Retry-After` seconds when given;
- 5xx: retryable and `uncertain` (PagerDuty may have taken the event);
- any other answer: final;
- a timeout or a connection dropped after the request went: retryable and `uncertain`; a connection
  that could not be opened (refused, no route): retryable, nothing went.

Sending again is safe in every case: a trigger with a dedup key already open is folded into its alert,
an acknowledge or resolve repeated changes nothing. The routing key is a credential of the integration
and is never logged (log lines name the event by its id: incident, stage, sequence, target).

>>> sender = PagerDutySender()
>>> sender.target, sender.url
('pagerduty', 'https://events.pagerduty.com/v2/enqueue')
>>> classify_answer(400, {"status": "invalid event", "message": "Event object is invalid",
...                       "errors": ["'payload.summary' is missing or blank"]}, None).reason
"pagerduty 400: invalid event: 'payload.summary' is missing or blank"
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from forewarn.connectors.responder_http import json_session, parse_retry_after, transport_failure
from forewarn.decisions import ResponderEvent, ResponderTarget
from forewarn.records import SendResult

log = logging.getLogger(__name__)

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
REASON_MAX = 500
ROUTING_KEY_SHOWN = "<routing key>"


def _errors(body: Any) -> list[str]:
    found = body.get("errors") if isinstance(body, dict) else None
    return [str(e) for e in found] if isinstance(found, list) else []


def classify_answer(status: int, body: Any, retry_after: float | None, routing_key: str | None = None,
                    sent_key: str | None = None) -> SendResult:
    """Map PagerDuty's HTTP status and JSON answer (None when unreadable) to a SendResult.

    >>> ok = classify_answer(202, {"status": "success", "message": "Event processed", "dedup_key": "INC-1"}, None)
    >>> ok.ok, ok.provider_id
    (True, 'INC-1')
    >>> limited = classify_answer(429, None, 2.0)
    >>> limited.retryable, limited.retry_after, limited.uncertain
    (True, 2.0, False)
    >>> server = classify_answer(502, None, None)
    >>> server.retryable, server.uncertain, server.reason
    (True, True, 'pagerduty 502: server error')
    >>> classify_answer(400, {"errors": ["bad key K123"]}, None, routing_key="K123").reason
    'pagerduty 400: invalid event: bad key <routing key>'
    >>> classify_answer(404, None, None).retryable
    False
    """
    if 200 <= status < 300:
        answered = body.get("dedup_key") if isinstance(body, dict) else None
        return SendResult(ok=True, provider_id=str(answered) if answered else sent_key)
    if status == 429:
        return SendResult(ok=False, retryable=True, retry_after=retry_after, reason="pagerduty 429: rate limited")
    if status >= 500:
        return SendResult(ok=False, retryable=True, uncertain=True, retry_after=retry_after,
                          reason=f"pagerduty {status}: server error")
    if status == 400:
        errors = _errors(body)
        reason = "pagerduty 400: invalid event" + (": " + "; ".join(errors) if errors else "")
    else:
        reason = f"pagerduty {status}: rejected"
    if routing_key:
        reason = reason.replace(routing_key, ROUTING_KEY_SHOWN)
    if len(reason) > REASON_MAX:
        reason = reason[: REASON_MAX - 1] + "…"
    return SendResult(ok=False, retryable=False, reason=reason)


class PagerDutySender:
    """Posts PagerDuty events; implements `ResponderSender`. Safe to share between threads (one pooled
    session); `session` replaces it (the caller then owns its pool and proxies). With `routing_key`, every
    event is sent with it: the outbox then keeps events without the secret."""

    target: ResponderTarget = "pagerduty"

    def __init__(self, url: str = EVENTS_URL, timeout: float = 10.0,
                 session: requests.Session | None = None, routing_key: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self._routing_key = routing_key
        self._session = session if session is not None else json_session()

    def send(self, event: ResponderEvent) -> SendResult:
        """Post one event and classify the answer."""
        if event.target != self.target:
            return SendResult(ok=False, reason=f"not a pagerduty event (target {event.target})")
        payload = event.payload if self._routing_key is None else {**event.payload, "routing_key": self._routing_key}
        routing_key = payload.get("routing_key")
        sent_key = payload.get("dedup_key")
        try:
            response = self._session.post(self.url, json=payload, timeout=self.timeout)
        except (requests.RequestException, OSError) as exc:
            result = transport_failure("pagerduty", exc)
        else:
            try:
                body: Any = response.json()
            except ValueError:
                body = None
            result = classify_answer(response.status_code, body, parse_retry_after(response.headers.get("Retry-After")),
                                     routing_key if isinstance(routing_key, str) else None,
                                     sent_key if isinstance(sent_key, str) else None)
        if result.ok:
            log.debug("pagerduty event accepted id=%s action=%s", event.id, payload.get("event_action"))
        else:
            log.warning("pagerduty event not accepted id=%s reason=%s retryable=%s uncertain=%s", event.id,
                        result.reason, result.retryable, result.uncertain)
        return result

    def close(self) -> None:
        self._session.close()
