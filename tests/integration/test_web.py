"""The web app served by a real uvicorn on a free port, over a real Redis (outbox, suppressions, index).

Requests are signed as Twilio signs them, with the official `RequestValidator.compute_signature`,
over the app's public URL (which, as behind a proxy, is not the address the test connects to).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest
import redis
import requests
from twilio.request_validator import RequestValidator

from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.connectors.redis_suppressions import RedisSuppressions
from forewarn.envelopes import Envelope
from forewarn.records import Customer, Message, MessageKey, SendResult
from forewarn.settings import ConfigError, Secrets, Settings
from forewarn.unsubscribe import make_token, unsubscribe_url
from forewarn.web import WebServer, build_web_app, create_app, serve

pytestmark = pytest.mark.integration

TOKEN = "twilio-auth-token-for-tests-0123456789"
SECRET = b"unsubscribe-secret-for-tests-0123456789"
PUBLIC = "https://forewarn.example.com/hooks"
HELP = "Alerts from Example Co. Reply STOP to stop, START to resume. Msg&data rates may apply <3"
PHONE = "+15125550100"
OTHER_PHONE = "+15125550199"
NOW = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
SMS_BODY = "Internet outage near you since 14:00. Reply STOP to opt out."


def customer(cid: str, phone: str | None = PHONE) -> Customer:
    return Customer.model_validate({"id": cid, "phone": phone, "email": f"{cid.lower()}@example.com",
                                    "region": "TX-453"})


@dataclass
class Web:
    server: WebServer
    client: redis.Redis
    outbox: RedisOutbox
    suppressions: RedisSuppressions
    index: RedisCustomerIndex

    def post(self, path: str, params: dict[str, str], *, query: str = "", sign_url: str | None = None,
             token: str = TOKEN, signature: str | None = "compute", **kwargs: Any) -> requests.Response:
        """POST `params` form-encoded to `path?query`, signed over the public URL (or `sign_url`)."""
        url = PUBLIC + path + (f"?{query}" if query else "")
        headers = {}
        if signature == "compute":
            signature = RequestValidator(token).compute_signature(sign_url or url, params)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        local = self.server.url + path + (f"?{query}" if query else "")
        return requests.post(local, data=params, headers=headers, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.server.url + path, timeout=10, **kwargs)


@pytest.fixture
def web(redis_url: str) -> Iterator[Web]:
    client = redis.Redis.from_url(redis_url)
    outbox = RedisOutbox(client, "t")
    suppressions = RedisSuppressions(client, "t")
    index = RedisCustomerIndex(client, "t")
    index.upsert([customer("CU-1"), customer("CU-2"), customer("CU-3", OTHER_PHONE)])
    app = create_app(queue=outbox, suppressions=suppressions, index=index, public_url=PUBLIC,
                     twilio_auth_token=TOKEN, unsubscribe_secret=SECRET, help_text=HELP, clock=lambda: NOW)
    server = serve(app)
    try:
        yield Web(server, client, outbox, suppressions, index)
    finally:
        server.stop()
        client.close()


def sent_sms(outbox: RedisOutbox, customer_id: str = "CU-1", with_fallback: bool = True) -> str:
    """An SMS enqueued, taken, sent (as a worker would settle it): its message id."""
    key = MessageKey("INC-1", customer_id, "warning")
    fallback = Envelope(Message(key, "email", f"{customer_id.lower()}@example.com", "Outage near you.", "Outage"),
                        NOW, NOW + timedelta(hours=6))
    envelope = Envelope(Message(key, "sms", PHONE, SMS_BODY), NOW, NOW + timedelta(hours=6),
                        fallback=fallback if with_fallback else None)
    assert outbox.enqueue([envelope], NOW) == [envelope.id]
    [lease] = outbox.take("sms", "w1", 10, 0.1)
    begun = outbox.begin(lease, NOW)
    assert begun.verdict == "send"
    outbox.settle(lease, "sent", NOW, SendResult(ok=True, provider_id="SM" + "0" * 32))
    return envelope.id


def status_query(message_id: str) -> str:
    return "m=" + quote(message_id, safe="")


def test_healthz(web: Web) -> None:
    answer = web.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


# --- status callbacks ------------------------------------------------------------------------------


def test_a_signed_status_callback_records_delivery(web: Web) -> None:
    mid = sent_sms(web.outbox)
    answer = web.post("/twilio/status", {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"},
                      query=status_query(mid))
    assert answer.status_code == 204
    assert web.outbox.state(mid)["state"] == "delivered"
    assert [e["state"] for e in web.outbox.history("INC-1", "CU-1")[mid]][-1] == "delivered"
    assert web.outbox.funnel("INC-1").get("delivered") == 1


def test_progress_statuses_are_taken_and_change_nothing(web: Web) -> None:
    mid = sent_sms(web.outbox)
    for status in ("queued", "sending", "sent"):
        answer = web.post("/twilio/status", {"MessageStatus": status, "SmsStatus": status}, query=status_query(mid))
        assert answer.status_code == 204
    assert web.outbox.state(mid)["state"] == "sent"


def test_an_undelivered_sms_falls_back_to_email_once(web: Web) -> None:
    mid = sent_sms(web.outbox)
    params = {"MessageStatus": "undelivered", "ErrorCode": "30003"}
    for _ in range(2):  # Twilio may call twice; the fallback is queued once
        assert web.post("/twilio/status", params, query=status_query(mid)).status_code == 204
    state = web.outbox.state(mid)
    assert (state["state"], state["reason"]) == ("undelivered", "error 30003")
    assert web.outbox.funnel("INC-1").get("fallback") == 1
    assert web.outbox.backlog("email") == 1


@pytest.mark.parametrize("how", ["forged", "missing", "tampered", "replayed to another message",
                                 "signed over the local URL", "empty"])
def test_an_unsigned_status_callback_is_refused_and_changes_nothing(web: Web, how: str) -> None:
    mid = sent_sms(web.outbox)
    other = sent_sms(web.outbox, "CU-2")
    params = {"MessageStatus": "failed", "ErrorCode": "30008"}
    query = status_query(mid)
    if how == "forged":
        answer = web.post("/twilio/status", params, query=query, token="not-the-auth-token")
    elif how == "missing":
        answer = web.post("/twilio/status", params, query=query, signature=None)
    elif how == "tampered":  # signed for "delivered", posted as "failed"
        signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/twilio/status?{query}",
                                                              {**params, "MessageStatus": "delivered"})
        answer = web.post("/twilio/status", params, query=query, signature=signature)
    elif how == "replayed to another message":  # a genuine signature, for another message's URL
        answer = web.post("/twilio/status", params, query=status_query(other),
                          sign_url=f"{PUBLIC}/twilio/status?{query}")
    elif how == "signed over the local URL":  # the app checks the public URL, not the one it was reached at
        answer = web.post("/twilio/status", params, query=query,
                          sign_url=f"{web.server.url}/twilio/status?{query}")
    else:
        answer = web.post("/twilio/status", params, query=query, signature="")
    assert answer.status_code == 403
    assert web.outbox.state(mid)["state"] == web.outbox.state(other)["state"] == "sent"
    assert "failed" not in web.outbox.funnel("INC-1")


def test_a_status_for_an_unknown_message_is_taken_and_ignored(web: Web) -> None:
    answer = web.post("/twilio/status", {"MessageStatus": "delivered"}, query=status_query("INC-9|CU-9|warning|sms"))
    assert answer.status_code == 200
    assert web.outbox.funnel("INC-9") == {}


@pytest.mark.parametrize("query", ["", "m=nonsense", "m=INC-1%7CCU-1%7Cwarning%7Cfax",
                                   "m=INC-1%7CCU-1%7Cwarning%7Csms&m=INC-1%7CCU-2%7Cwarning%7Csms"])
def test_a_malformed_message_id_is_a_bad_request(web: Web, query: str) -> None:
    answer = web.post("/twilio/status", {"MessageStatus": "delivered"}, query=query)
    assert answer.status_code == 400


def test_a_status_callback_without_a_status_is_a_bad_request(web: Web) -> None:
    mid = sent_sms(web.outbox)
    assert web.post("/twilio/status", {"MessageSid": "SM1"}, query=status_query(mid)).status_code == 400
    assert web.outbox.state(mid)["state"] == "sent"


def test_a_huge_body_is_refused_before_it_is_read(web: Web) -> None:
    answer = web.post("/twilio/status", {"Body": "x" * 100_000}, query=status_query("INC-1|CU-1|warning|sms"))
    assert answer.status_code == 413


def test_only_post_is_served_on_the_webhooks(web: Web) -> None:
    assert web.get("/twilio/status").status_code == 405
    assert web.get("/twilio/inbound").status_code == 405


# --- inbound messages ------------------------------------------------------------------------------


def inbound(web: Web, body: str, sender: str = PHONE, **kwargs: Any) -> requests.Response:
    params = {"MessageSid": "SM" + "1" * 32, "AccountSid": "AC" + "2" * 32, "From": sender, "To": "+15125550000",
              "Body": body, "NumMedia": "0"}
    return web.post("/twilio/inbound", params, **kwargs)


def twiml_messages(answer: requests.Response) -> list[str]:
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(answer.content)
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


def opted_out(web: Web, *ids: str) -> list[bool]:
    return [c is not None and c.opted_out("sms") for c in web.index.get_many(list(ids))]


@pytest.mark.parametrize("body", ["STOP", "  stop ", "Stop please", "STOPALL", "unsubscribe", "Cancel.", "end",
                                  "QUIT!"])
def test_stop_suppresses_the_number_and_opts_its_customers_out(web: Web, body: str) -> None:
    assert twiml_messages(inbound(web, body)) == []
    assert web.suppressions.is_suppressed("sms", PHONE)
    assert opted_out(web, "CU-1", "CU-2", "CU-3") == [True, True, False]
    [one] = web.index.get_many(["CU-1"])
    assert one is not None and not one.opted_out("email"), "STOP by text is about texts"


@pytest.mark.parametrize("word", ["START", "yes", "Unstop"])
def test_start_undoes_stop(web: Web, word: str) -> None:
    inbound(web, "STOP")
    assert twiml_messages(inbound(web, word)) == []
    assert not web.suppressions.is_suppressed("sms", PHONE)
    assert opted_out(web, "CU-1", "CU-2") == [False, False]


@pytest.mark.parametrize("word", ["HELP", "info", "Help?"])
def test_help_answers_the_help_text(web: Web, word: str) -> None:
    answer = inbound(web, word)
    assert twiml_messages(answer) == [HELP]
    assert b"Msg&amp;data" in answer.content and b"&lt;3" in answer.content
    assert not web.suppressions.is_suppressed("sms", PHONE)


def test_anything_else_gets_an_empty_answer(web: Web) -> None:
    assert twiml_messages(inbound(web, "When will it be fixed? Not stopping by")) == []
    assert twiml_messages(inbound(web, "")) == []
    assert not web.suppressions.is_suppressed("sms", PHONE) and opted_out(web, "CU-1") == [False]


def test_a_number_spelled_otherwise_or_of_nobody_still_stops(web: Web) -> None:
    assert twiml_messages(inbound(web, "STOP", sender="+1 (512) 555-0199")) == []
    assert opted_out(web, "CU-3") == [True]
    assert twiml_messages(inbound(web, "STOP", sender="+15125550142")) == []  # no customer has it
    assert web.suppressions.is_suppressed("sms", "+15125550142")


@pytest.mark.parametrize("how", ["forged", "missing", "replayed from the status URL"])
def test_an_unsigned_stop_is_refused_and_changes_nothing(web: Web, how: str) -> None:
    if how == "forged":
        answer = inbound(web, "STOP", token="guess")
    elif how == "missing":
        answer = inbound(web, "STOP", signature=None)
    else:
        answer = inbound(web, "STOP", sign_url=f"{PUBLIC}/twilio/status")
    assert answer.status_code == 403
    assert not web.suppressions.is_suppressed("sms", PHONE)
    assert opted_out(web, "CU-1", "CU-2") == [False, False]


def test_no_phone_number_or_body_reaches_the_logs(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    inbound(web, "STOP right now 7f3a")
    inbound(web, "START again 7f3a")
    inbound(web, "HELP me 7f3a")
    inbound(web, "STOP", token="forged")
    web.post("/unsubscribe", {"List-Unsubscribe": "One-Click"},
             query="t=" + make_token("CU-1", "email", SECRET), signature=None)
    text = caplog.text
    assert "inbound STOP" in text and "unsubscribed from email" in text, "the steps are logged"
    assert "5550100" not in text and "7f3a" not in text and "cu-1@example.com" not in text


# --- unsubscribe links ------------------------------------------------------------------------------


def email_opted_out(web: Web, cid: str) -> bool:
    [found] = web.index.get_many([cid])
    return found is not None and found.opted_out("email")


def test_the_link_opens_a_page_and_changes_nothing(web: Web) -> None:
    url = unsubscribe_url(PUBLIC, "CU-1", "email", SECRET)
    answer = web.get("/unsubscribe?" + url.split("?", 1)[1])
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    form = re.search(r'<form method="post" action="([^"]+)">', answer.text)
    assert form is not None and form.group(1) == "unsubscribe?" + url.split("?", 1)[1]
    assert answer.headers["referrer-policy"] == "no-referrer" and answer.headers["cache-control"] == "no-store"
    assert not email_opted_out(web, "CU-1") and not web.suppressions.is_suppressed("email", "cu-1@example.com")


def test_a_one_click_post_unsubscribes(web: Web) -> None:
    token = make_token("CU-1", "email", SECRET)
    answer = web.post("/unsubscribe", {"List-Unsubscribe": "One-Click"}, query=f"t={token}", signature=None)
    assert answer.status_code == 200 and "unsubscribed" in answer.text
    assert email_opted_out(web, "CU-1") and web.suppressions.is_suppressed("email", "CU-1@Example.com")
    assert not email_opted_out(web, "CU-2") and opted_out(web, "CU-1") == [False], "one customer, one channel"
    again = web.post("/unsubscribe", {}, query=f"t={token}", signature=None)
    assert again.status_code == 200, "a second click is fine"


def test_the_pages_button_unsubscribes(web: Web) -> None:
    """What a browser does: GET the link, then POST the form's action (resolved against the page's URL)."""
    session = requests.Session()
    page = session.get(web.server.url + "/unsubscribe?t=" + make_token("CU-2", "email", SECRET), timeout=10)
    action = re.search(r'action="([^"]+)"', page.text)
    assert action is not None
    answer = session.post(requests.compat.urljoin(page.url, action.group(1).replace("&amp;", "&")), timeout=10)
    assert answer.status_code == 200
    assert email_opted_out(web, "CU-2")


@pytest.mark.parametrize("token", [
    make_token("CU-1", "email", b"some-other-secret-0123456789"),
    make_token("CU-1", "email", SECRET)[:-1] + "x",
    "not-a-token",
    "",
])
def test_a_forged_token_is_refused(web: Web, token: str) -> None:
    assert web.get(f"/unsubscribe?t={token}").status_code == 403
    assert web.post("/unsubscribe", {"List-Unsubscribe": "One-Click"}, query=f"t={token}",
                    signature=None).status_code == 403
    assert web.get("/unsubscribe").status_code == 403
    assert not email_opted_out(web, "CU-1") and web.suppressions.count("email") == 0


def test_a_token_of_an_unknown_customer_changes_nothing(web: Web) -> None:
    answer = web.post("/unsubscribe", {}, query="t=" + make_token("CU-404", "email", SECRET), signature=None)
    assert answer.status_code == 200
    assert web.suppressions.count("email") == 0


def test_an_sms_token_opts_out_of_sms(web: Web) -> None:
    answer = web.post("/unsubscribe", {}, query="t=" + make_token("CU-3", "sms", SECRET), signature=None)
    assert answer.status_code == 200
    assert opted_out(web, "CU-3") == [True] and web.suppressions.is_suppressed("sms", OTHER_PHONE)
    assert not email_opted_out(web, "CU-3")


# --- without Twilio or a secret, and from settings ---------------------------------------------------


def test_parts_not_configured_answer_503(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    app = create_app(queue=RedisOutbox(client, "t"), suppressions=RedisSuppressions(client, "t"),
                     index=RedisCustomerIndex(client, "t"), public_url=PUBLIC, twilio_auth_token=None,
                     unsubscribe_secret=None, help_text=HELP)
    with serve(app) as server:
        assert requests.post(server.url + "/twilio/inbound", data={"Body": "STOP"}, timeout=10).status_code == 503
        assert requests.get(server.url + "/unsubscribe?t=x", timeout=10).status_code == 503
    client.close()
    with pytest.raises(ValueError, match="public_url"):
        create_app(queue=RedisOutbox(client, "t"), suppressions=RedisSuppressions(client, "t"),
                   index=RedisCustomerIndex(client, "t"), public_url="forewarn.example.com",
                   twilio_auth_token=None, unsubscribe_secret=None, help_text=HELP)


def settings_for(redis_url: str, **web: Any) -> Settings:
    return Settings.model_validate({
        "redis": {"url": redis_url, "prefix": "t"},
        "sms": {"from_number": "+15125550000"},
        "email": {"host": "smtp.example.com", "port": 587, "from_addr": "alerts@example.com"},
        "web": {"public_url": PUBLIC, **web},
    })


def secrets_for(**values: Any) -> Secrets:
    base: dict[str, Any] = {"twilio_auth_token": TOKEN, "forewarn_unsubscribe_secret": SECRET.decode(),
                            "forewarn_redis_url": None}
    return Secrets(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


def test_build_web_app_wires_the_redis_parts(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    RedisCustomerIndex(client, "t").upsert([customer("CU-1")])
    mid = sent_sms(RedisOutbox(client, "t"))
    app = build_web_app(settings_for(redis_url, help_text=HELP), secrets_for())
    with serve(app) as server:
        web = Web(server, client, RedisOutbox(client, "t"), RedisSuppressions(client, "t"),
                  RedisCustomerIndex(client, "t"))
        assert web.post("/twilio/status", {"MessageStatus": "delivered"}, query=status_query(mid)).status_code == 204
        assert twiml_messages(inbound(web, "HELP")) == [HELP]
        assert twiml_messages(inbound(web, "STOP")) == []
        assert web.suppressions.is_suppressed("sms", PHONE) and opted_out(web, "CU-1") == [True]
    assert RedisOutbox(client, "t").state(mid)["state"] == "delivered"
    client.close()


@pytest.mark.parametrize(("settings_change", "secrets_change", "message"), [
    ({"public_url": None}, {}, "web.public_url is not set"),
    ({}, {"twilio_auth_token": None}, "TWILIO_AUTH_TOKEN"),
    ({}, {"forewarn_unsubscribe_secret": None}, "FOREWARN_UNSUBSCRIBE_SECRET is not set"),
    ({}, {"forewarn_unsubscribe_secret": "short"}, "16 bytes or more"),
])
def test_build_web_app_says_what_to_set(redis_url: str, settings_change: dict[str, Any],
                                        secrets_change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_web_app(settings_for(redis_url, **settings_change), secrets_for(**secrets_change))


def test_a_taken_port_names_the_setting() -> None:
    app = create_app(queue=None, suppressions=None, index=None, public_url=PUBLIC,  # type: ignore[arg-type]
                     twilio_auth_token=None, unsubscribe_secret=None, help_text=HELP)
    with serve(app) as first, pytest.raises(ConfigError, match=r"web\.port"):
        serve(app, port=first.port)


@pytest.mark.parametrize("quoting", [quote, quote_plus])
def test_an_id_with_any_characters_round_trips_through_the_callback_url(web: Web, quoting: Any) -> None:
    """The SMS sender asks for `{public_url}/twilio/status?m={urlencoded id}`; Twilio signs that URL as given,
    so the app checks the query as it arrived, however it was encoded."""
    mid = sent_sms(web.outbox, "CU 42/é&x=1+2")
    query = urlencode({"m": mid}, quote_via=quoting)
    answer = web.post("/twilio/status", {"MessageStatus": "delivered"}, query=query)
    assert answer.status_code == 204
    assert web.outbox.state(mid)["state"] == "delivered"
