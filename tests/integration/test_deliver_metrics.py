"""Issue 11: a `forewarn deliver` worker counts what it does, per channel, at /metrics (Prometheus text)."""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.envelopes import Envelope
from forewarn.records import Message, MessageKey
from tests.integration.helpers import start_deliver
from tests.servers.ports import free_port
from tests.servers.twilio_standin import TwilioStandin

pytestmark = pytest.mark.integration


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_worker_counts_sent_failed_and_retried_messages_and_reads_the_backlog(
    redis_url: str, twilio_standin: TwilioStandin, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    phones = [f"+1512555{i:04d}" for i in range(6)]
    twilio_standin.register_invalid(phones[0])
    twilio_standin.register_rate_limited(phones[1], times=1, retry_after=0)
    RedisOutbox(redis.Redis.from_url(redis_url)).enqueue(
        [Envelope(Message(MessageKey("INC-M", f"CU-{i}", "warning"), "sms", p, "outage near you"), now,
                  now + timedelta(hours=1)) for i, p in enumerate(phones)], now)
    port = free_port()
    config = tmp_path / "deliver.yaml"
    config.write_text(yaml.safe_dump({
        "redis": {"url": redis_url}, "outreach": {"channels": ["sms"]},
        "sms": {"from_number": "+15005550006", "base_url": twilio_standin.base_url},
        "delivery": {"backoff": "100ms", "max_backoff": "200ms"}, "observability": {"metrics_port": port}}))
    worker = start_deliver(config, twilio_standin, tmp_path / "deliver.log")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert worker.running(), worker.output()[-3000:]
            try:
                samples = _samples(url)
            except OSError:
                samples = {}
            sent = samples.get(("forewarn_delivery_messages_total", (("channel", "sms"), ("outcome", "sent"))), 0)
            if sent == 5:
                break
            assert time.monotonic() < deadline, f"sent {sent} of 5:\n{worker.output()[-2000:]}"
            time.sleep(0.2)
    finally:
        worker.stop()
    outcome = {dict(labels)["outcome"]: v for (name, labels), v in samples.items()
               if name == "forewarn_delivery_messages_total"}
    assert outcome["failed"] == 1 and outcome["retrying"] == 1, outcome
    answers = {dict(labels)["answer"]: v for (name, labels), v in samples.items()
               if name == "forewarn_delivery_provider_answers_total"}
    assert answers == {"accepted": 5, "final": 1, "retryable": 1}, answers
    assert samples[("forewarn_delivery_send_seconds_count", (("channel", "sms"),))] == 7
    assert samples[("forewarn_outbox_backlog", (("channel", "sms"),))] == 0
    assert samples[("forewarn_delivery_breaker_open", (("channel", "sms"),))] == 0
