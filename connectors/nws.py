"""Polling api.weather.gov `/alerts/active` as a source of hazard alerts.

The NWS asks every client to send a User-Agent that names it and a contact, and to back
off when told to: this poller sends one, remembers ETag/Last-Modified so an unchanged list
costs a 304, emits each alert (id + sent) once, and doubles its wait on 429/5xx/network
errors up to `max_backoff`, honouring Retry-After. The HTTP call is injected, so the
logic is tested without the network.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from forewarn.records import Origin


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes = b""


Fetch = Callable[[str, dict[str, str]], HttpResponse]


def urllib_fetch(url: str, headers: dict[str, str], timeout: float = 15.0) -> HttpResponse:
    """GET with the stdlib; HTTP errors come back as responses, network errors as status 0."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return HttpResponse(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read())
    except urllib.error.HTTPError as exc:
        return HttpResponse(exc.code, {k.lower(): v for k, v in (exc.headers or {}).items()})
    except (urllib.error.URLError, TimeoutError, OSError):
        return HttpResponse(0, {})


@dataclass
class NwsPoller:
    """One polling loop's state: what was seen, the cache validators and the current wait.

    >>> replies = [HttpResponse(200, {"etag": "v1"}, orjson.dumps({"features": [
    ...     {"properties": {"id": "urn:1", "sent": "2026-11-20T10:00:00-05:00"}}]})),
    ...     HttpResponse(304, {})]
    >>> poller = NwsPoller(lambda url, headers: replies.pop(0), user_agent="forewarn (ops@example.com)")
    >>> t = datetime(2026, 11, 20, 15, tzinfo=UTC)
    >>> len(poller.poll(t)), poller.poll(t + timedelta(minutes=1)), poller.next_poll - t
    (1, [], datetime.timedelta(seconds=120))
    """

    fetch: Fetch
    user_agent: str
    url: str = "https://api.weather.gov/alerts/active"
    interval: timedelta = timedelta(seconds=60)
    max_backoff: timedelta = timedelta(minutes=10)
    remember: int = 5000
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    validators: dict[str, str] = field(default_factory=dict)
    next_poll: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))
    wait: timedelta = timedelta(0)
    failures: int = 0

    def __post_init__(self) -> None:
        if "@" not in self.user_agent and "http" not in self.user_agent:
            raise ValueError("the NWS asks for a User-Agent with a contact, e.g. 'forewarn (ops@example.com)': "
                             "set hazards.poll.user_agent")

    def poll(self, now: datetime) -> list[bytes]:
        """Fetch once; the features not seen before, as JSON bytes. Sets `next_poll`."""
        headers = {"User-Agent": self.user_agent, "Accept": "application/geo+json", **self.validators}
        reply = self.fetch(self.url, headers)
        if reply.status in (200, 304):
            self.failures, self.wait = 0, self.interval
            self.next_poll = now + self.interval
            return self._new_features(reply) if reply.status == 200 else []
        self.failures += 1
        backoff = min(self.interval * 2**self.failures, self.max_backoff)
        retry_after = reply.headers.get("retry-after", "")
        self.wait = max(backoff, timedelta(seconds=int(retry_after))) if retry_after.isdigit() else backoff
        self.next_poll = now + self.wait
        return []

    def _new_features(self, reply: HttpResponse) -> list[bytes]:
        for name, header in (("etag", "If-None-Match"), ("last-modified", "If-Modified-Since")):
            if name in reply.headers:
                self.validators[header] = reply.headers[name]
        document: Any = orjson.loads(reply.body)
        fresh = []
        for feature in document.get("features", []):
            properties = feature.get("properties") or {}
            key = f"{properties.get('id')}|{properties.get('sent')}"
            if key in self.seen:
                continue
            self.seen[key] = None
            fresh.append(orjson.dumps(feature))
        while len(self.seen) > self.remember:
            self.seen.popitem(last=False)
        return fresh


class _PollPartition(StatefulSourcePartition[tuple[Origin, bytes], list[str]]):
    def __init__(self, poller: NwsPoller, clock: Callable[[], datetime]):
        self._poller = poller
        self._clock = clock

    def next_batch(self) -> list[tuple[Origin, bytes]]:
        now = self._clock()
        if now < self._poller.next_poll:
            return []
        return [(Origin(self._poller.url), feature) for feature in self._poller.poll(now)]

    def next_awake(self) -> datetime | None:
        return self._poller.next_poll

    def snapshot(self) -> list[str]:
        return list(self._poller.seen)


class NwsSource(FixedPartitionedSource[tuple[Origin, bytes], list[str]]):
    """A Bytewax source of new NWS alert features; what was seen survives a restart with recovery."""

    def __init__(self, make_poller: Callable[[], NwsPoller],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.make_poller = make_poller
        self.clock = clock

    def list_parts(self) -> list[str]:
        return ["nws"]

    def build_part(self, step_id: str, for_part: str, resume_state: list[str] | None) -> _PollPartition:
        poller = self.make_poller()
        poller.seen.update(dict.fromkeys(resume_state or []))
        return _PollPartition(poller, self.clock)
