"""The web app: Twilio's status callbacks and inbound messages, email unsubscribe links, the public status
feed, a health check.

- `POST /twilio/status?m=MESSAGE_ID`: Twilio's word on an SMS we sent (queued, sent, delivered,
  undelivered, failed, ...), recorded with `DeliveryQueue.record_status`. 204 when recorded, 200
  for a message id the outbox does not know (Twilio would retry an error), 400 for something that
  is not a message id or carries no status.
- `POST /twilio/inbound`: a text a customer sent us. STOP, STOPALL, UNSUBSCRIBE, CANCEL, END or QUIT
  (the first word, any case) suppresses the number for SMS and opts every customer with that number
  out of SMS in the index; START, YES or UNSTOP undoes both; HELP or INFO is answered with the
  configured help text; anything else gets an empty TwiML answer.
- `GET /unsubscribe?t=TOKEN`: a page with a button; nothing changes on a GET (mail scanners follow links).
  `POST /unsubscribe?t=TOKEN` (the button, or a mail client's RFC 8058 one-click POST): the customer the
  signed token names is opted out of the channel it names, and their address suppressed.
- `GET /status.json` and `GET /status.atom`: the public status feed (`forewarn.outreach.status_feed`): open
  and recently resolved incidents that get a status entry, named by the company's topic labels, as
  Statuspage-style JSON and as Atom. Public (no signature, `Cache-Control: public, max-age=30`, any origin may
  read it); nothing about customers is in it. 503 when the app has no decision store or the store fails.
- `GET /healthz`: 200 while the app serves.

Both Twilio endpoints check `X-Twilio-Signature` with the official `RequestValidator` against the
public URL (`web.public_url` + path + query: behind a proxy the request's own URL differs): a missing
or wrong signature is answered 403 and changes nothing. Nothing here logs a phone number, an email
address or a message body.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from forewarn.envelopes import parse_message_id
from forewarn.interfaces import DecisionStore, Suppressions
from forewarn.records import Channel, Customer
from forewarn.settings import ConfigError, RedisSettings, Secrets, Settings
from forewarn.unsubscribe import UNSUBSCRIBE_PATH, check_secret, read_token
from forewarn.web import pages
from forewarn.web.feed import STATUS_ATOM_PATH, STATUS_JSON_PATH, StatusFeed
from forewarn.web.server import run as run_web

__all__ = ["build_web_app", "create_app", "keyword", "run_web"]

log = logging.getLogger(__name__)

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
HEALTH_PATH = "/healthz"

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

MAX_BODY_BYTES = 64 * 1024
"""A Twilio webhook is a few hundred bytes; a larger body is refused (413) before it is parsed."""
_STATUS = re.compile(r"[a-z_]{1,32}")
_ERROR_CODE = re.compile(r"\d{1,8}")


class StatusRecorder(Protocol):
    """What the status callback needs of the outbox (`forewarn.interfaces.DeliveryQueue` has it)."""

    def record_status(self, message_id: str, status: str, now: datetime, detail: str = "") -> bool:
        ...


class OptIndex(Protocol):
    """What inbound STOP/START and unsubscribe links need of the customer index (both indexes have it)."""

    def get_many(self, ids: Sequence[str]) -> list[Customer | None]:
        ...

    def record_opt_out(self, customer_id: str, channel: Channel) -> bool:
        ...

    def record_opt_in(self, customer_id: str, channel: Channel) -> bool:
        ...

    def ids_by_phone(self, phone: str) -> list[str]:
        ...


Keyword = Literal["stop", "start", "help"]


def keyword(body: str) -> Keyword | None:
    """What an inbound text asks for, by its first word (any case, punctuation around it ignored).

    >>> keyword("  stop "), keyword("Stop sending me these!"), keyword("unstop."), keyword("Info?")
    ('stop', 'stop', 'start', 'help')
    >>> keyword("Thanks, when will it be fixed?"), keyword("")
    (None, None)
    """
    words = body.split(maxsplit=1)
    word = words[0].strip(string.punctuation).upper() if words else ""
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def twiml(text: str | None = None) -> Response:
    """A TwiML answer to an inbound message: `text` as the reply, or no reply."""
    answer = MessagingResponse()
    if text is not None:
        answer.message(text)
    return Response(str(answer), media_type="text/xml")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _Handlers:
    def __init__(self, queue: StatusRecorder, suppressions: Suppressions, index: OptIndex,
                 twilio_auth_token: str | None, public_url: str, help_text: str, unsubscribe_secret: bytes | None,
                 clock: Callable[[], datetime]) -> None:
        self.queue = queue
        self.suppressions = suppressions
        self.index = index
        self.validator = RequestValidator(twilio_auth_token) if twilio_auth_token else None
        self.public_url = public_url.rstrip("/")
        self.help_text = help_text
        self.secret = unsubscribe_secret
        self.clock = clock

    # -- Twilio ----------------------------------------------------------------------------------

    async def _signed_form(self, request: Request, path: str) -> ImmutableMultiDict[str, str] | Response:
        """The POST parameters of a request Twilio signed, or the answer to give instead (403, 413, 503)."""
        if self.validator is None:
            return PlainTextResponse("Twilio webhooks are not configured (TWILIO_AUTH_TOKEN)", status_code=503)
        try:
            body = await _read_body(request)
        except _BodyTooLarge:
            return PlainTextResponse("request body too large", status_code=413)
        form = ImmutableMultiDict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        signature = request.headers.get("x-twilio-signature")
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = f"{self.public_url}{path}" + (f"?{query}" if query else "")
        if not signature or not self.validator.validate(url, form, signature):
            log.warning("refused a request to %s: %s X-Twilio-Signature", path, "bad" if signature else "no")
            return PlainTextResponse("invalid signature", status_code=403)
        return form

    async def status(self, request: Request) -> Response:
        form = await self._signed_form(request, STATUS_PATH)
        if isinstance(form, Response):
            return form
        ids = request.query_params.getlist("m")
        try:
            if len(ids) != 1:
                raise ValueError("one message id")
            parse_message_id(ids[0])
        except ValueError:
            return PlainTextResponse("m must be one message id (INCIDENT|CUSTOMER|KIND|CHANNEL)", status_code=400)
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if not _STATUS.fullmatch(status):
            return PlainTextResponse("MessageStatus is missing", status_code=400)
        code = (form.get("ErrorCode") or "").strip()
        detail = f"error {code}" if _ERROR_CODE.fullmatch(code) else ""
        try:
            known = await run_in_threadpool(self.queue.record_status, ids[0], status, self.clock(), detail)
        except Exception as exc:  # the store is down: say so (Twilio logs it), never a traceback
            log.error("status callback not recorded: the outbox failed (%s)", type(exc).__name__)
            return PlainTextResponse("status not recorded, try again", status_code=503)
        if not known:
            log.info("status callback for a message the outbox does not know (%s): ignored", status)
            return Response(status_code=200)
        log.debug("status %s recorded for %s", status, ids[0])
        return Response(status_code=204)

    async def inbound(self, request: Request) -> Response:
        form = await self._signed_form(request, INBOUND_PATH)
        if isinstance(form, Response):
            return form
        sender = (form.get("From") or "").strip()
        if not sender:
            return PlainTextResponse("From is missing", status_code=400)
        asked = keyword(form.get("Body") or "")
        if asked == "help":
            log.info("inbound HELP answered")
            return twiml(self.help_text)
        if asked is None:
            return twiml()
        try:
            changed = await run_in_threadpool(self._stop if asked == "stop" else self._start, sender)
        except Exception as exc:
            log.error("inbound %s not recorded: a store failed (%s)", asked.upper(), type(exc).__name__)
            return PlainTextResponse("not recorded, try again", status_code=503)
        log.info("inbound %s: the number %s for sms, %d customer(s) opted %s", asked.upper(),
                 "suppressed" if asked == "stop" else "allowed again", changed, "out" if asked == "stop" else "in")
        return twiml()

    def _stop(self, phone: str) -> int:
        self.suppressions.suppress("sms", phone)
        return sum(self.index.record_opt_out(cid, "sms") for cid in self.index.ids_by_phone(phone))

    def _start(self, phone: str) -> int:
        self.suppressions.allow("sms", phone)
        return sum(self.index.record_opt_in(cid, "sms") for cid in self.index.ids_by_phone(phone))

    # -- unsubscribe links -----------------------------------------------------------------------

    def _reader(self, request: Request) -> tuple[str, str, Channel] | Response:
        if self.secret is None:
            return pages.page("Unavailable", "Unsubscribe links are not configured here.", status_code=503)
        tokens = request.query_params.getlist("t")
        found = read_token(tokens[0], self.secret) if len(tokens) == 1 else None
        if found is None:
            return pages.page("Link not valid", "This unsubscribe link is not valid. Use the link in your most "
                              "recent email, or reply to it and we will take you off the list.", status_code=403)
        return tokens[0], *found

    async def unsubscribe_page(self, request: Request) -> Response:
        found = self._reader(request)
        if isinstance(found, Response):
            return found
        token, _, channel = found
        return pages.confirm(token, channel)

    async def unsubscribe(self, request: Request) -> Response:
        try:
            await _read_body(request)  # the one-click body (List-Unsubscribe=One-Click) or the form's
        except _BodyTooLarge:
            return PlainTextResponse("request body too large", status_code=413)
        found = self._reader(request)
        if isinstance(found, Response):
            return found
        _, customer_id, channel = found
        try:
            await run_in_threadpool(self._opt_out, customer_id, channel)
        except Exception as exc:
            log.error("unsubscribe not recorded: a store failed (%s)", type(exc).__name__)
            return pages.page("Please try again", "We could not record your request just now. Please try again "
                              "in a few minutes.", status_code=503)
        return pages.done(channel)

    def _opt_out(self, customer_id: str, channel: Channel) -> None:
        [customer] = self.index.get_many([customer_id])
        if customer is None:
            log.info("unsubscribe link for a customer the index does not hold: nothing to change")
            return
        address = customer.phone if channel == "sms" else customer.email
        if address:
            self.suppressions.suppress(channel, address)
        self.index.record_opt_out(customer_id, channel)
        log.info("customer %s unsubscribed from %s", customer_id, channel)

    async def healthz(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})


def create_app(*, queue: StatusRecorder, suppressions: Suppressions, index: OptIndex, public_url: str,
               twilio_auth_token: str | None, unsubscribe_secret: bytes | None, help_text: str,
               clock: Callable[[], datetime] = _utc_now, decisions: DecisionStore | None = None,
               topic_labels: Mapping[str, str] | None = None) -> Starlette:
    """The web app over the given parts (see the module doc for its routes).

    Parameters
    ----------
    queue
        The outbox's delivering side (`record_status`).
    suppressions, index
        Where STOP, START and unsubscribe links take effect.
    public_url
        Where the world reaches this app (`web.public_url`); Twilio signs its requests over it.
    twilio_auth_token
        The Twilio account's auth token; None answers the Twilio endpoints 503.
    unsubscribe_secret
        The secret unsubscribe tokens are signed with; None answers the unsubscribe endpoints 503.
    help_text
        The answer to an inbound HELP.
    clock
        The time status callbacks are recorded at, and the status feed's "now".
    decisions
        Where the status feed reads incidents from; None answers the feed 503.
    topic_labels
        The company's words for topics (`outreach.topic_labels`; None: the default labels): an incident
        whose topic has none stays out of the feed.
    """
    if not public_url.startswith(("https://", "http://")):
        raise ValueError("public_url must be an http(s) URL, e.g. https://forewarn.example.com")
    if unsubscribe_secret is not None:
        check_secret(unsubscribe_secret)
    handlers = _Handlers(queue, suppressions, index, twilio_auth_token, public_url, help_text, unsubscribe_secret,
                         clock)
    feed = StatusFeed(decisions, topic_labels, public_url, clock)
    return Starlette(routes=[
        Route(STATUS_PATH, handlers.status, methods=["POST"]),
        Route(INBOUND_PATH, handlers.inbound, methods=["POST"]),
        Route(UNSUBSCRIBE_PATH, handlers.unsubscribe_page, methods=["GET"]),
        Route(UNSUBSCRIBE_PATH, handlers.unsubscribe, methods=["POST"]),
        Route(STATUS_JSON_PATH, feed.status_json, methods=["GET"]),
        Route(STATUS_ATOM_PATH, feed.status_atom, methods=["GET"]),
        Route(HEALTH_PATH, handlers.healthz, methods=["GET"]),
    ])


def build_web_app(settings: Settings, secrets: Secrets, *, clock: Callable[[], datetime] = _utc_now) -> Starlette:
    """The web app of `forewarn web`: status callbacks into the Redis outbox, STOP/START and unsubscribe
    links into the Redis suppressions and customer index, the status feed from the Redis decision store.
    Raises ConfigError naming what to set."""
    from forewarn.connectors.redis_decisions import RedisDecisionStore
    from forewarn.connectors.redis_index import RedisCustomerIndex
    from forewarn.connectors.redis_outbox import RedisOutbox
    from forewarn.connectors.redis_suppressions import RedisSuppressions
    from forewarn.flows.startup import redis_client, unsubscribe_secret  # here: tests build the app without Redis

    web = settings.web
    if web.public_url is None:
        raise ConfigError("web.public_url is not set: the web app needs the address Twilio and email readers reach "
                          "it at (e.g. https://forewarn.example.com), since Twilio signs its requests over it")
    if settings.redis is None and secrets.forewarn_redis_url is None:
        raise ConfigError("the web app needs Redis: set redis.url (or FOREWARN_REDIS_URL)")
    sms = "sms" in settings.outreach.channels and settings.sms is not None
    email = "email" in settings.outreach.channels and settings.email is not None
    token = secrets.twilio_auth_token.get_secret_value() if secrets.twilio_auth_token is not None else None
    if sms and token is None:
        raise ConfigError("SMS is enabled but TWILIO_AUTH_TOKEN is not set in the environment: the web app checks "
                          "Twilio's signatures with it")
    secret = unsubscribe_secret(secrets)
    if email and secret is None:
        raise ConfigError("email is enabled but FOREWARN_UNSUBSCRIBE_SECRET is not set in the environment: "
                          "unsubscribe links are signed with it (any long random string)")
    client = redis_client(settings, secrets)
    prefix = (settings.redis or RedisSettings()).prefix
    return create_app(
        queue=RedisOutbox(client, prefix, shards=settings.delivery.shards),
        suppressions=RedisSuppressions(client, prefix),
        index=RedisCustomerIndex(client, prefix, extra_traits=settings.targeting.extra_traits),
        public_url=web.public_url,
        twilio_auth_token=token,
        unsubscribe_secret=secret,
        help_text=web.help_text,
        clock=clock,
        decisions=RedisDecisionStore(client, prefix),
        topic_labels=settings.outreach.topic_labels,
    )
