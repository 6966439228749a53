"""The delivery worker's metrics, on a registry the caller chooses (Alertmanager's integrations' counters).

- `forewarn_delivery_messages_total{channel, outcome}`: each message a worker handled, by what became of it
  (sent, reconciled, failed, retrying, expired, opted_out, paused, superseded, skipped, waiting, done);
- `forewarn_delivery_send_seconds{channel}`: how long each provider call took (the send, not the wait);
- `forewarn_delivery_provider_answers_total{channel, answer}`: accepted, final, retryable, halted;
- `forewarn_delivery_breaker_open{channel}`: 1 while the channel's breaker holds it;
- `forewarn_outbox_backlog{channel}`, `forewarn_outbox_scheduled`: read from the outbox on each scrape.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = DeliveryMetrics(registry)
>>> metrics.outcome("sms", "sent")
>>> registry.get_sample_value("forewarn_delivery_messages_total", {"channel": "sms", "outcome": "sent"})
1.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from forewarn.records import SendResult

SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DeliveryMetrics:
    """Counters a worker feeds as it settles messages; gauges read from the outbox and breakers on scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._messages = Counter("forewarn_delivery_messages_total", "Messages a delivery worker handled, by outcome.",
                                 ["channel", "outcome"], registry=registry)
        self._seconds = Histogram("forewarn_delivery_send_seconds", "Time of each provider call.", ["channel"],
                                  buckets=SEND_BUCKETS, registry=registry)
        self._answers = Counter("forewarn_delivery_provider_answers_total", "Provider answers, by kind.",
                                ["channel", "answer"], registry=registry)
        self._breaker = Gauge("forewarn_delivery_breaker_open", "1 while a channel's circuit breaker is open.",
                              ["channel"], registry=registry)
        self._backlog = Gauge("forewarn_outbox_backlog", "Messages waiting in a channel's outbox stream.",
                              ["channel"], registry=registry)
        self._scheduled = Gauge("forewarn_outbox_scheduled", "Messages waiting for a time (quiet hours, retries, "
                                "paused channels).", registry=registry)

    def outcome(self, channel: str, outcome: str) -> None:
        self._messages.labels(channel, outcome).inc()

    def timed(self, channel: str, send: Callable[[], SendResult]) -> SendResult:
        """Run one provider call, timing it and counting its answer."""
        started = time.perf_counter()
        result = send()
        self._seconds.labels(channel).observe(time.perf_counter() - started)
        answer = ("accepted" if result.ok else "halted" if result.halts_channel
                  else "retryable" if result.retryable else "final")
        self._answers.labels(channel, answer).inc()
        return result

    def watch(self, channels: Iterable[str], breaker_open: Callable[[str], bool], backlog: Callable[[str], int],
              scheduled: Callable[[], int]) -> None:
        """Read the breakers and the outbox on each scrape."""
        for channel in channels:
            self._breaker.labels(channel).set_function(partial(_flag, breaker_open, channel))
            self._backlog.labels(channel).set_function(partial(_count, backlog, channel))
        self._scheduled.set_function(lambda: float(scheduled()))


def _flag(read: Callable[[str], bool], channel: str) -> float:
    return 1.0 if read(channel) else 0.0


def _count(read: Callable[[str], int], channel: str) -> float:
    return float(read(channel))
