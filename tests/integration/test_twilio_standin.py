"""The Twilio stand-in speaks Twilio's wire: the Messages list and fetch through the official client
and raw HTTP, status callbacks signed the way Twilio signs (checked with the official
`RequestValidator`), inbound replies, and the fault modes delivery tests rely on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.servers.ports import free_port
from tests.servers.twilio_standin import TwilioStandin, WebhookReceiver, twilio_signature

pytestmark = pytest.mark.integration

ANA, BEN = "+15125550100", "+15125550101"
OURS, SPARE = "+15125550199", "+15125550198"
SERVICE = "MG" + "a" * 32


def client_for(standin: TwilioStandin) -> Client:
    client = Client(standin.account_sid, standin.auth_token)
    client.api.base_url = standin.base_url
    return client


def raw(standin: TwilioStandin, path: str, **params: str) -> requests.Response:
    """A GET as Twilio's docs show it (curl -u SID:TOKEN), without the official client."""
    return requests.get(f"{standin.base_url}{path}", params=params, auth=(standin.account_sid, standin.auth_token),
                        timeout=5)


def messages_path(standin: TwilioStandin) -> str:
    return f"/2010-04-01/Accounts/{standin.account_sid}/Messages.json"


def send(client: Client, to: str, body: str, from_: str = OURS, **kwargs: Any) -> str:
    return str(client.messages.create(to=to, from_=from_, body=body, **kwargs).sid)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# --- the Messages list and fetch ------------------------------------------------------------------


def test_the_list_pages_newest_first_with_twilios_paging_keys(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    to_ana = [send(client, ANA, f"Notice {i}") for i in range(5)]
    send(client, BEN, "Notice for Ben")
    first = raw(twilio_standin, messages_path(twilio_standin), To=ANA, PageSize="2")
    assert first.status_code == 200 and first.headers["Content-Type"].startswith("application/json")
    page = first.json()
    assert set(page) == {"messages", "page", "page_size", "uri", "first_page_uri", "next_page_uri",
                         "previous_page_uri", "start", "end"}
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 2, 0, 1)
    assert page["previous_page_uri"] is None
    assert [m["sid"] for m in page["messages"]] == to_ana[::-1][:2]
    assert page["uri"] == f"{messages_path(twilio_standin)}?To=%2B15125550100&PageSize=2"
    assert page["first_page_uri"] == f"{messages_path(twilio_standin)}?To=%2B15125550100&PageSize=2&Page=0"
    assert page["next_page_uri"] == (f"{messages_path(twilio_standin)}?To=%2B15125550100&PageSize=2&Page=1"
                                     f"&PageToken=PA{to_ana[3]}")
    record = page["messages"][0]
    assert set(record) >= {"account_sid", "api_version", "body", "date_created", "date_sent", "date_updated",
                           "direction", "error_code", "error_message", "from", "messaging_service_sid", "num_media",
                           "num_segments", "price", "price_unit", "sid", "status", "subresource_uris", "to", "uri"}
    assert (record["to"], record["from"], record["body"]) == (ANA, OURS, "Notice 4")
    assert record["direction"] == "outbound-api"
    # follow the links as the client does
    sids, uri, pages = [], f"{messages_path(twilio_standin)}?To=%2B15125550100&PageSize=2", 0
    while uri:
        answer = requests.get(twilio_standin.base_url + uri, auth=(twilio_standin.account_sid,
                                                                    twilio_standin.auth_token), timeout=5).json()
        sids += [m["sid"] for m in answer["messages"]]
        pages, uri = pages + 1, answer["next_page_uri"]
    assert (sids, pages) == (to_ana[::-1], 3)
    second = raw(twilio_standin, messages_path(twilio_standin), To=ANA, PageSize="2", Page="1",
                 PageToken=f"PA{to_ana[3]}").json()
    assert second["start"] == 2 and second["previous_page_uri"].endswith(f"Page=0&PageToken=PB{to_ana[2]}")
    back = requests.get(twilio_standin.base_url + second["previous_page_uri"],
                        auth=(twilio_standin.account_sid, twilio_standin.auth_token), timeout=5).json()
    assert [m["sid"] for m in back["messages"]] == to_ana[::-1][:2]


def test_the_official_client_lists_streams_and_filters(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    to_ana = [send(client, ANA, f"Notice {i}") for i in range(5)]
    from_spare = send(client, ANA, "From the spare number", from_=SPARE)
    to_ben = send(client, BEN, "Notice for Ben")
    assert [m.sid for m in client.messages.list(to=ANA, page_size=2)] == [from_spare, *to_ana[::-1]]
    assert [m.sid for m in client.messages.stream(to=ANA, from_=OURS, page_size=2)] == to_ana[::-1]
    assert [m.sid for m in client.messages.list(to=ANA, limit=3)] == [from_spare, *to_ana[::-1][:2]]
    assert [m.sid for m in client.messages.list(page_size=3)] == [to_ben, from_spare, *to_ana[::-1]]
    assert client.messages.list(to="+15125550999") == []
    newest = client.messages.list(to=BEN)[0]
    assert (newest.to, newest.from_, newest.body, newest.num_segments) == (BEN, OURS, "Notice for Ben", "1")
    assert newest.date_created is not None and abs(newest.date_created - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_list_keeps_the_order_of_messages_accepted_within_one_second(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    sids = [send(client, ANA, f"Burst {i}") for i in range(30)]  # well within a second or two
    assert [m.sid for m in client.messages.stream(to=ANA, page_size=7)] == sids[::-1]
    created = [m.date_created for m in twilio_standin.messages]
    assert created == sorted(created) and len(set(created)) == len(created)  # microseconds, strictly increasing


def test_date_sent_filters_follow_twilios_semantics(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    twilio_standin.status_delay = None
    queued = send(client, ANA, "Never leaves the queue")
    twilio_standin.status_delay = 0
    sent = [send(client, ANA, f"Sent {i}") for i in range(3)]
    today, now = datetime.now(UTC).date(), datetime.now(UTC)
    path = messages_path(twilio_standin)

    def sids(**params: str) -> list[str]:
        return [m["sid"] for m in raw(twilio_standin, path, To=ANA, **params).json()["messages"]]

    assert sids() == [*sent[::-1], queued]  # no filter: queued ones too
    assert sids(DateSent=today.isoformat()) == sent[::-1]  # a day: only messages that went out
    assert sids(**{"DateSent<": (today - timedelta(days=1)).isoformat()}) == []  # on or before yesterday
    assert sids(**{"DateSent<": today.isoformat()}) == sent[::-1]  # on or before today
    assert sids(**{"DateSent>": (today + timedelta(days=1)).isoformat()}) == []  # on or after tomorrow
    assert sids(**{"DateSent>": today.isoformat()}) == sent[::-1]
    # date-times, as the official client sends a datetime
    assert [m.sid for m in client.messages.list(to=ANA, date_sent_after=now - timedelta(minutes=1))] == sent[::-1]
    assert client.messages.list(to=ANA, date_sent_before=now - timedelta(minutes=1)) == []
    bad = raw(twilio_standin, path, DateSent="yesterday")
    assert (bad.status_code, bad.json()["code"]) == (400, 20001)


def test_fetch_one_message_whose_status_moves_on(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    twilio_standin.status_delay = 0.5
    sid = send(client, ANA, "Outage in your area.")
    fetched = client.messages(sid).fetch()
    assert (fetched.sid, fetched.status, fetched.date_sent, fetched.error_code) == (sid, "queued", None, None)
    wait_for(lambda: client.messages(sid).fetch().status == "sent", "sent")
    wait_for(lambda: client.messages(sid).fetch().status == "delivered", "delivered")
    assert client.messages(sid).fetch().date_sent is not None
    assert twilio_standin.status_of(sid) == "delivered"
    with pytest.raises(TwilioRestException) as missing:
        client.messages("SM" + "0" * 32).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)


def test_a_messaging_service_message_is_accepted_then_gets_a_sender(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    twilio_standin.status_delay = 0.2
    created = client.messages.create(to=ANA, messaging_service_sid=SERVICE, body="Hi")
    assert (created.status, created.from_, created.messaging_service_sid) == ("accepted", None, SERVICE)
    wait_for(lambda: client.messages(created.sid).fetch().status == "sent", "sent")
    assert client.messages(created.sid).fetch().from_ == twilio_standin.service_number


def test_accepted_messages_record_what_was_asked(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    long_body = "Outage notice. " * 20  # 300 GSM characters: two segments
    sid = send(client, ANA, long_body, status_callback="https://example.com/twilio/status?m=1")
    [accepted] = twilio_standin.messages
    assert (accepted.sid, accepted.segments, accepted.status_callback) == (
        sid, 2, "https://example.com/twilio/status?m=1")
    assert accepted.status in ("queued", "sent", "delivered")
    assert client.messages(sid).fetch().num_segments == "2"
    with pytest.raises(TwilioRestException) as bad:
        send(client, ANA, "Hi", status_callback="not a url")
    assert (bad.value.status, bad.value.code) == (400, 21609)


def test_other_accounts_and_credentials_are_refused(twilio_standin: TwilioStandin) -> None:
    wrong = requests.get(f"{twilio_standin.base_url}{messages_path(twilio_standin)}",
                         auth=(twilio_standin.account_sid, "wrong"), timeout=5)
    assert (wrong.status_code, wrong.json()["code"], wrong.headers["WWW-Authenticate"]) == (
        401, 20003, 'Basic realm="Twilio API"')
    other = raw(twilio_standin, "/2010-04-01/Accounts/AC" + "1" * 32 + "/Messages.json")
    assert other.status_code == 401


# --- status callbacks and inbound messages ---------------------------------------------------------


def test_status_callbacks_are_signed_like_twilios(
    twilio_standin: TwilioStandin, webhook_receiver: WebhookReceiver
) -> None:
    client = client_for(twilio_standin)
    url = f"{webhook_receiver.base_url}/twilio/status?m=INC-1%7CCU-42%7Cwarning%7Csms"
    sid = send(client, ANA, "Outage in your area.", status_callback=url)
    sent, delivered = twilio_standin.wait_for_callbacks(2)
    assert [c.status for c in (sent, delivered)] == ["sent", "delivered"]
    assert sent.params == {"AccountSid": twilio_standin.account_sid, "ApiVersion": "2010-04-01", "From": OURS,
                           "MessageSid": sid, "MessageStatus": "sent", "SmsSid": sid, "SmsStatus": "sent", "To": ANA}
    assert (sent.answer, delivered.answer) == (204, 204)
    received = webhook_receiver.received
    assert [(r.url, r.params, r.valid) for r in received] == [(url, sent.params, True), (url, delivered.params, True)]
    # the official validator: the signature covers the URL (query included) and every parameter
    validator = RequestValidator(twilio_standin.auth_token)
    signature = received[1].signature
    assert signature is not None and validator.validate(url, received[1].params, signature)
    assert signature == validator.compute_signature(url, received[1].params)
    assert not validator.validate(url, {**received[1].params, "MessageStatus": "undelivered"}, signature)
    assert not validator.validate(url.replace("CU-42", "CU-43"), received[1].params, signature)
    assert not RequestValidator("another-token").validate(url, received[1].params, signature)
    assert twilio_standin.callbacks_for(sid) == [sent, delivered]


@pytest.mark.parametrize(("status", "code"), [("undelivered", 30003), ("failed", 30008)])
def test_an_undeliverable_number_gets_its_final_status_and_error_code(
    twilio_standin: TwilioStandin, webhook_receiver: WebhookReceiver, status: str, code: int
) -> None:
    client = client_for(twilio_standin)
    twilio_standin.register_undeliverable(ANA, status=status)  # type: ignore[arg-type]
    url = f"{webhook_receiver.base_url}/twilio/status"
    sid = send(client, ANA, "Outage in your area.", status_callback=url)
    expected = ["sent", status] if status == "undelivered" else ["failed"]  # a failed message never went out
    callbacks = twilio_standin.wait_for_callbacks(len(expected))
    assert [c.status for c in callbacks] == expected
    assert callbacks[-1].params["ErrorCode"] == str(code)
    if status == "undelivered":
        assert "ErrorCode" not in callbacks[0].params
    assert all(r.valid for r in webhook_receiver.received)
    fetched = client.messages(sid).fetch()
    assert (fetched.status, fetched.error_code) == (status, code)


def test_a_callback_nobody_answers_is_recorded(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    twilio_standin.callback_timeout = 1
    send(client, ANA, "Hi", status_callback=f"http://127.0.0.1:{free_port()}/twilio/status")
    [first] = twilio_standin.wait_for_callbacks(1)
    assert (first.answer, first.error) == (None, "URLError")


def test_callbacks_of_a_burst_all_arrive_signed(
    twilio_standin: TwilioStandin, webhook_receiver: WebhookReceiver
) -> None:
    client = client_for(twilio_standin)
    twilio_standin.status_delay = 0.01
    sids = [send(client, f"+1512555{i:04d}", "Hi", status_callback=f"{webhook_receiver.base_url}/s?m={i}")
            for i in range(40)]
    twilio_standin.wait_for_callbacks(80)
    for sid in sids:
        assert [c.status for c in twilio_standin.callbacks_for(sid)] == ["sent", "delivered"]  # in order per message
    assert len(webhook_receiver.received) == 80 and all(r.valid for r in webhook_receiver.received)


def test_inbound_replies_are_signed_and_stop_blocks_later_sends(
    twilio_standin: TwilioStandin, webhook_receiver: WebhookReceiver
) -> None:
    client = client_for(twilio_standin)
    url = f"{webhook_receiver.base_url}/twilio/inbound"
    stop = twilio_standin.send_inbound(url, ANA, " stop ")
    assert (stop.answer, stop.params["Body"], stop.params["From"], stop.params["To"]) == (204, " stop ", ANA, OURS)
    assert webhook_receiver.received[-1].valid
    with pytest.raises(TwilioRestException) as blocked:
        send(client, ANA, "Outage in your area.")
    assert (blocked.value.status, blocked.value.code) == (400, 21610)
    twilio_standin.send_inbound(url, ANA, "START")
    assert send(client, ANA, "Outage in your area.").startswith("SM")
    forged = twilio_standin.send_inbound(url, BEN, "STOP", signature="bm90IGEgc2lnbmF0dXJl")
    assert (forged.answer, webhook_receiver.received[-1].valid) == (403, False)
    webhook_receiver.answer_status, webhook_receiver.answer_body = 200, "<Response><Message>Help</Message></Response>"
    help_ = twilio_standin.send_inbound(url, BEN, "HELP", messaging_service_sid=SERVICE)
    assert (help_.answer, help_.answer_body, help_.params["OptOutType"]) == (
        200, "<Response><Message>Help</Message></Response>", "HELP")
    assert [h.params["Body"] for h in twilio_standin.inbound] == [" stop ", "START", "STOP", "HELP"]


def test_the_signature_function_matches_the_official_validator(twilio_standin: TwilioStandin) -> None:
    params = {"MessageSid": "SM1", "To": ANA, "Body": "é & ü = +"}
    url = "https://forewarn.example.com/twilio/status?m=INC-1%7CCU-1%7Cwarning%7Csms"
    validator = RequestValidator(twilio_standin.auth_token)
    assert twilio_signature(twilio_standin.auth_token, url, params) == validator.compute_signature(url, params)
    assert twilio_standin.signature(url, params) == validator.compute_signature(url, params)


# --- faults -----------------------------------------------------------------------------------------


def post_message(standin: TwilioStandin, timeout: float = 5.0, to: str = ANA) -> requests.Response:
    return requests.post(f"{standin.base_url}{messages_path(standin)}", data={"To": to, "From": OURS, "Body": "Hi"},
                         auth=(standin.account_sid, standin.auth_token), timeout=timeout)


def test_fail_after_accept_records_the_message_then_fails_the_answer(twilio_standin: TwilioStandin) -> None:
    twilio_standin.fail_after_accept(1, "error")
    answer = post_message(twilio_standin)
    assert (answer.status_code, answer.json()["code"], twilio_standin.accepted_for(ANA)) == (500, 20500, 1)
    twilio_standin.fail_after_accept(1, "drop")
    with pytest.raises(requests.ConnectionError):
        post_message(twilio_standin)
    assert twilio_standin.accepted_for(ANA) == 2
    twilio_standin.fail_after_accept(1, "stall")
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        post_message(twilio_standin, timeout=0.3)
    assert time.monotonic() - started < 2 and twilio_standin.accepted_for(ANA) == 3
    twilio_standin.release_stalled()
    assert post_message(twilio_standin).status_code == 201  # back to normal
    assert twilio_standin.accepted_for(ANA) == 4 and twilio_standin.duplicates() == {ANA: 4}


def test_scripted_answers_then_normal(twilio_standin: TwilioStandin) -> None:
    twilio_standin.answer_next("429", "500", "503")
    answers = [post_message(twilio_standin) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 500, 503, 201]
    assert [a.json()["code"] for a in answers[:3]] == [20429, 20500, 20503]
    assert answers[0].headers["Retry-After"] == "1"
    assert twilio_standin.accepted_for(ANA) == 1 and twilio_standin.attempts[ANA] == 4
    twilio_standin.answer_next("drop")
    with pytest.raises(requests.ConnectionError):
        post_message(twilio_standin)
    assert twilio_standin.accepted_for(ANA) == 1  # dropped before accepting
    with pytest.raises(ValueError, match="unknown steps"):
        twilio_standin.answer_next("418")  # type: ignore[arg-type]


def test_rate_limits_carry_retry_after(twilio_standin: TwilioStandin) -> None:
    twilio_standin.register_rate_limited(ANA, times=2, retry_after=3)
    twilio_standin.rate_limit_next(1, retry_after=None)
    answers = [post_message(twilio_standin, to=BEN), post_message(twilio_standin), post_message(twilio_standin),
               post_message(twilio_standin)]
    assert [a.status_code for a in answers] == [429, 429, 429, 201]
    assert [a.headers.get("Retry-After") for a in answers[:3]] == [None, "3", "3"]


def test_down_answers_503_to_everything_for_a_while(twilio_standin: TwilioStandin) -> None:
    twilio_standin.down(1.0)
    assert twilio_standin.is_down
    for answer in (post_message(twilio_standin), raw(twilio_standin, messages_path(twilio_standin)),
                   raw(twilio_standin, f"/2010-04-01/Accounts/{twilio_standin.account_sid}.json")):
        assert (answer.status_code, answer.json()["code"]) == (503, 20503)
    wait_for(lambda: not twilio_standin.is_down, "the end of the outage")
    assert post_message(twilio_standin).status_code == 201
    twilio_standin.set_down(True)
    assert post_message(twilio_standin).status_code == 503
    twilio_standin.set_down(False)
    assert post_message(twilio_standin).status_code == 201
    assert twilio_standin.accepted_for(ANA) == 2


def test_latency_delays_every_answer(twilio_standin: TwilioStandin) -> None:
    twilio_standin.latency(0.2)
    started = time.monotonic()
    assert post_message(twilio_standin).status_code == 201
    assert time.monotonic() - started >= 0.2
    with pytest.raises(requests.ReadTimeout):
        post_message(twilio_standin, timeout=0.05)
    wait_for(lambda: twilio_standin.accepted_for(ANA) == 2, "the slow send to be accepted")  # accepted late


def test_hold_next_withholds_the_nth_answer_until_released(twilio_standin: TwilioStandin) -> None:
    hold = twilio_standin.hold_next(2)
    assert post_message(twilio_standin).status_code == 201
    answers: list[int] = []
    sender = threading.Thread(target=lambda: answers.append(post_message(twilio_standin, to=BEN).status_code))
    sender.start()
    held = hold.wait_held()
    assert held.to == BEN and twilio_standin.accepted_for(BEN) == 1  # accepted: it will reach Ben
    time.sleep(0.2)
    assert sender.is_alive() and answers == []  # ... but the sender has no answer
    assert post_message(twilio_standin).status_code == 201  # others are not held
    hold.release()
    sender.join(timeout=5)
    assert answers == [201]


def test_wrapping_handle_still_sees_each_answer(twilio_standin: TwilioStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/integration/test_crash_recovery.py's HoldOneText wraps `handle` and reads (status, body).
    seen: list[tuple[int, str]] = []
    original = twilio_standin.handle

    def wrapper(method: str, path: str, auth: str | None, form: dict[str, str]) -> tuple[int, Any]:
        answer = original(method, path, auth, form)
        seen.append((answer[0], method))
        return answer

    monkeypatch.setattr(twilio_standin, "handle", wrapper)
    twilio_standin.register_rate_limited(ANA, retry_after=5)
    limited = post_message(twilio_standin)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "5")  # headers survive the wrapper
    assert post_message(twilio_standin).status_code == 201
    assert seen == [(429, "POST"), (201, "POST")]


def test_keep_alive_reuses_one_connection(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    for i in range(20):
        send(client, ANA, f"Notice {i}")
    client.messages.list(to=ANA, page_size=5)
    assert twilio_standin.connections == 1 and twilio_standin.requests == 24


def test_reset_forgets_everything(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    send(client, ANA, "Hi")
    twilio_standin.register_invalid(BEN)
    twilio_standin.register_undeliverable(ANA)
    twilio_standin.fail_after_accept(2)
    twilio_standin.latency(2.0)
    twilio_standin.set_down(True)
    hold = twilio_standin.hold_next(1)
    twilio_standin.status_delay = None
    twilio_standin.reset()
    assert hold.released.is_set()
    assert (twilio_standin.messages, twilio_standin.requests, twilio_standin.callbacks, twilio_standin.is_down) == (
        [], 0, [], False)
    assert twilio_standin.status_delay == 0.05 and twilio_standin.accepted_counts() == {}
    started = time.monotonic()
    assert send(client, "+15125550102", "Hi")
    assert time.monotonic() - started < 1.5  # no latency any more
    assert post_message(twilio_standin, to=BEN).status_code == 201  # no longer invalid


def test_list_uri_round_trips_through_parse(twilio_standin: TwilioStandin) -> None:
    client = client_for(twilio_standin)
    send(client, ANA, "Hi")
    page = raw(twilio_standin, messages_path(twilio_standin), To=ANA, **{"DateSent>": "2020-01-01"}).json()
    query = parse_qs(urlsplit(page["first_page_uri"]).query)
    assert query == {"To": [ANA], "DateSent>": ["2020-01-01"], "PageSize": ["50"], "Page": ["0"]}
