"""The NWS poller's logic with a scripted HTTP call (the call is injected; no server, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from forewarn.connectors.nws import HttpResponse, NwsPoller

NWS = Path(__file__).resolve().parents[3] / "shared" / "data" / "cap" / "nws_geojson"
T = datetime(2026, 11, 20, 15, tzinfo=UTC)


class Script:
    """Answers in order and records the headers of every request."""

    def __init__(self, *replies: HttpResponse) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, str]] = []

    def __call__(self, url: str, headers: dict[str, str]) -> HttpResponse:
        self.requests.append(headers)
        return self.replies.pop(0)


@pytest.mark.skipif(not NWS.is_dir(), reason="shared NWS samples are not beside the checkout")
def test_real_feeds_emit_each_alert_once_and_use_cache_validators() -> None:
    first = (NWS / "alerts_active_zone.json").read_bytes()
    second = (NWS / "alerts_active_zone_second.json").read_bytes()
    script = Script(HttpResponse(200, {"etag": '"abc"', "last-modified": "Fri, 20 Dec 2019 10:00:00 GMT"}, first),
                    HttpResponse(304, {}), HttpResponse(200, {"etag": '"def"'}, second))
    poller = NwsPoller(script, user_agent="forewarn-test (ops@example.com)")
    assert len(poller.poll(T)) == 1
    assert poller.poll(T + timedelta(minutes=1)) == []
    new = poller.poll(T + timedelta(minutes=2))
    assert len(new) == 1, "the second feed repeats the first alert and adds one with a new id"
    assert orjson.loads(new[0])["properties"]["id"].endswith("-001")
    assert all(r["User-Agent"] == "forewarn-test (ops@example.com)" for r in script.requests)
    assert script.requests[1]["If-None-Match"] == '"abc"'
    assert script.requests[1]["If-Modified-Since"] == "Fri, 20 Dec 2019 10:00:00 GMT"
    assert script.requests[2]["If-None-Match"] == '"abc"'


def test_errors_back_off_doubling_honour_retry_after_and_recover() -> None:
    ok = HttpResponse(200, {}, b'{"features": []}')
    script = Script(HttpResponse(503, {}), HttpResponse(0, {}), HttpResponse(429, {"retry-after": "900"}),
                    HttpResponse(500, {}), ok)
    poller = NwsPoller(script, user_agent="forewarn-test (ops@example.com)", interval=timedelta(seconds=30),
                       max_backoff=timedelta(minutes=10))
    waits = []
    for _ in range(5):
        poller.poll(T)
        waits.append(poller.wait)
    assert waits == [timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=900),
                     timedelta(minutes=8), timedelta(seconds=30)]
    assert poller.next_poll == T + timedelta(seconds=30)


def test_a_user_agent_without_a_contact_is_refused() -> None:
    with pytest.raises(ValueError, match=r"hazards\.poll\.user_agent"):
        NwsPoller(Script(), user_agent="python-urllib")
