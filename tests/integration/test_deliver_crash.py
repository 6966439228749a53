"""Issue 11: `forewarn deliver` killed with SIGKILL at three points of a burst, then restarted: every intended
recipient has exactly one accepted text at the Twilio stand-in.

The outbox is filled directly (the flow's part is covered by test_crash_recovery); each worker is a
process of its own with one send at a time, and a silent worker's entries are reclaimed after a second:

1. after the POST, before the record: the stand-in accepts a text and holds its answer; SIGKILL. The
   restarted worker finds the text in the stand-in's Messages list (reconcile) and records it unsent.
2. while retrying: the stand-in answers 500 to every request; the worker schedules retries; SIGKILL. The
   restart looks each uncertain message up (not there) and sends it once.
3. before the POST: the worker is paced at 2 texts a second and holds leases it has not begun; SIGKILL.
   The restart reclaims them and sends each once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml

from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.envelopes import Envelope
from forewarn.records import Message, MessageKey
from tests.integration.helpers import RunProcess, start_deliver
from tests.servers.twilio_standin import TwilioStandin

pytestmark = pytest.mark.integration

N = 24


def _config(path: Path, redis_url: str, twilio: TwilioStandin, rate: float | None = None) -> Path:
    sms: dict[str, object] = {"from_number": "+15005550006", "base_url": twilio.base_url}
    if rate is not None:
        sms["rate_per_second"] = rate
    path.write_text(yaml.safe_dump({
        "redis": {"url": redis_url}, "sms": sms, "outreach": {"channels": ["sms"]},
        "delivery": {"concurrency": {"sms": 1}, "reclaim_after": "1s", "backoff": "200ms", "max_backoff": "1s",
                     "breaker_failures": 1000}}))
    return path


def _fill(redis_url: str, incident: str) -> list[str]:
    now = datetime.now(UTC)
    phones = [f"+1512555{i:04d}" for i in range(N)]
    RedisOutbox(redis.Redis.from_url(redis_url)).enqueue(
        [Envelope(Message(MessageKey(incident, f"CU-{i}", "warning"), "sms", phone, f"{incident}: outage near you"),
                  now, now + timedelta(hours=1)) for i, phone in enumerate(phones)], now)
    return phones


def _wait(condition: Callable[[], bool], what: str, worker: RunProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.running(), f"forewarn deliver ended while waiting for {what}:\n{worker.output()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{worker.output()[-3000:]}"
        time.sleep(0.05)


def _finish(config: Path, twilio: TwilioStandin, log: Path, phones: list[str]) -> None:
    worker = start_deliver(config, twilio, log)
    try:
        _wait(lambda: all(twilio.accepted_for(p) >= 1 for p in phones), "every text", worker, 60)
        time.sleep(1.5)  # past a reclaim: nothing more may arrive
    finally:
        worker.stop()
    assert {p: twilio.accepted_for(p) for p in phones} == dict.fromkeys(phones, 1)
    assert "Traceback" not in worker.output(), worker.output()[-3000:]


def test_killed_after_the_provider_accepted_a_text_the_restart_reconciles_it(
    redis_url: str, twilio_standin: TwilioStandin, tmp_path: Path
) -> None:
    phones = _fill(redis_url, "INC-CRASH-A")
    config, log = _config(tmp_path / "deliver.yaml", redis_url, twilio_standin), tmp_path / "deliver.log"
    hold = twilio_standin.hold_next(5)
    worker = start_deliver(config, twilio_standin, log)
    _wait(hold.held.is_set, "the 5th text", worker)
    worker.kill9()
    hold.release()
    assert sum(twilio_standin.accepted_counts().values()) == 5
    _finish(config, twilio_standin, log, phones)
    outbox = RedisOutbox(redis.Redis.from_url(redis_url))
    details = [e["detail"] for i in range(N) for events in outbox.history("INC-CRASH-A", f"CU-{i}").values()
               for e in events]
    assert details.count("found in the provider's log") == 1, "the held text was reconciled, not sent again"


def test_killed_while_retrying_the_restart_sends_each_once(
    redis_url: str, twilio_standin: TwilioStandin, tmp_path: Path
) -> None:
    phones = _fill(redis_url, "INC-CRASH-B")
    config, log = _config(tmp_path / "deliver.yaml", redis_url, twilio_standin), tmp_path / "deliver.log"
    hold = twilio_standin.hold_next(1)  # the account check passes; the first text waits while sends start failing
    worker = start_deliver(config, twilio_standin, log)
    _wait(hold.held.is_set, "the first text", worker)
    twilio_standin.fail_next(10_000, status=500)
    hold.release()
    outbox = RedisOutbox(redis.Redis.from_url(redis_url))
    _wait(lambda: outbox.scheduled() >= 3, "three messages scheduled for a retry", worker)
    worker.kill9()
    twilio_standin.fail_next(0)
    assert sum(twilio_standin.accepted_counts().values()) == 1
    _finish(config, twilio_standin, log, phones)


def test_killed_before_sending_the_taken_messages_are_reclaimed_and_sent_once(
    redis_url: str, twilio_standin: TwilioStandin, tmp_path: Path
) -> None:
    phones = _fill(redis_url, "INC-CRASH-C")
    config, log = _config(tmp_path / "deliver.yaml", redis_url, twilio_standin, rate=2), tmp_path / "deliver.log"
    worker = start_deliver(config, twilio_standin, log)
    _wait(lambda: sum(twilio_standin.accepted_counts().values()) >= 3, "three paced texts", worker)
    worker.kill9()
    sent = sum(twilio_standin.accepted_counts().values())
    assert sent < N
    _finish(config, twilio_standin, log, phones)
