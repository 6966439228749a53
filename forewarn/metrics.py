"""The engine's metrics: what the flow counts and measures, on a registry the caller chooses.

One `EngineMetrics` per process, over a `prometheus_client` registry (production: the process's
global one, which also carries the process and GC collectors; tests: a `CollectorRegistry` of
their own). The flow calls plain methods, per batch where it can: each call is a dictionary look-up
and a locked add, about a microsecond, so a source reading 150,000 records a second in batches of
1,000 spends well under a millisecond a second here.

Labels are bounded by construction: sources and partitions are the configured topics (or input
files), steps are the flow's own names, a dead letter's reason is reduced to one of
`REASON_CATEGORIES` (never its free text, which quotes record values), and spikes are counted per
topic (configured or learned), never per region.

| metric | type | labels |
|---|---|---|
| forewarn_records_in_total | counter | source, partition |
| forewarn_dead_letters_total | counter | step, reason |
| forewarn_late_records_total | counter | source |
| forewarn_spikes_total | counter | topic |
| forewarn_event_to_decision_seconds | histogram (10 ms to 30 min) | |
| forewarn_pane_lag_seconds | gauge: now - the oldest open pane's start | |
| forewarn_open_incidents | gauge | |
| forewarn_consumer_lag_records | gauge: high watermark - next offset | topic, partition |
| forewarn_snapshot_age_seconds | gauge: now - the recovery store's last write (NaN: none) | |

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = EngineMetrics(registry)
>>> metrics.records_in("cases", 0, 1000)
>>> registry.get_sample_value("forewarn_records_in_total", {"source": "cases", "partition": "0"})
1000.0
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from forewarn.records import DeadLetter, Spike

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                   1200.0, 1800.0)
"""Seconds from an event to the decision it led to: 10 ms (early firing on a live stream) to 30 min."""

OTHER = "other"
_STEP = re.compile(r"[a-z][a-z0-9_]{0,39}")

# (reason prefix, steps it applies to or None for any, category), first match wins.
_REASON_RULES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    ("late: ", frozenset({"count_panes", "fleet_panes"}), "late"),
    ("time: ", frozenset({"time_bounds"}), "time_bounds"),
    ("duplicate: ", frozenset({"dedup"}), "duplicate"),
    ("region capped: ", frozenset({"cap_regions"}), "region_capped"),
    ("Kafka consumer error", None, "consumer_error"),
    ("record of ", None, "too_large"),
    ("line of ", None, "too_large"),
    ("malformed JSON", None, "malformed"),
    ("expected a JSON object", None, "malformed"),
    ("line is not", None, "malformed"),
    ("row is not", None, "malformed"),
    ("row has more cells", None, "malformed"),
    ("an XML document", None, "type_refused"),
    ("type ", None, "type_refused"),
    ("record type must be", None, "type_refused"),
    ("unknown record type", None, "type_refused"),
    ("source ", frozenset({"parse"}), "unknown_source"),
    ("hazard alert: ", None, "bad_alert"),
    ("telemetry counts in no device group", None, "no_device_group"),
)
_FAILED = re.compile(r"[a-z_]+ failed for key ")

REASON_CATEGORIES = ("late", "time_bounds", "duplicate", "region_capped", "consumer_error", "too_large",
                     "malformed", "type_refused", "unknown_source", "bad_alert", "no_device_group", "step_failed",
                     "invalid", OTHER)
"""Every value the `reason` label of forewarn_dead_letters_total can take."""


def reason_category(step: str, reason: str) -> str:
    """The bounded category of a dead letter's free-text reason (the text itself quotes record values).

    >>> reason_category("count_panes", "late: 2026-11-20T14:03:11+00:00 arrived after its 0:15:00 pane ...")
    'late'
    >>> reason_category("parse", "ts: Input should have timezone info")
    'invalid'
    >>> reason_category("detect", "detect failed for key 'no_internet': ZeroDivisionError: division by zero")
    'step_failed'
    >>> reason_category("read", "something new")
    'other'
    """
    for prefix, steps, category in _REASON_RULES:
        if reason.startswith(prefix) and (steps is None or step in steps):
            return category
    if _FAILED.match(reason):
        return "step_failed"
    if step == "parse" or step == "customers":
        return "invalid"  # `field: message` from validation
    return OTHER


def step_label(step: str) -> str:
    """A step name as a label: the flow's own names pass, anything else is `other`."""
    return step if _STEP.fullmatch(step) else OTHER


class Readiness:
    """What /readyz answers: ready once the flow's edges answered and the flow is running.

    `__call__` returns None when ready, else what is missing (the JSON reason of the 503).
    Thread-safe: the flow's workers set it, the HTTP thread reads it.
    """

    def __init__(self) -> None:
        self._checked = False
        self._running = False
        self._stopped: str | None = None

    def edges_checked(self) -> None:
        """The start-up checks passed (`flows.startup.preflight`)."""
        self._checked = True

    def flow_running(self) -> None:
        """The dataflow runs: a source partition was built (idempotent, cheap)."""
        self._running = True

    def flow_stopped(self, why: str = "the flow stopped") -> None:
        self._stopped = why

    def __call__(self) -> str | None:
        if self._stopped is not None:
            return self._stopped
        if not self._checked:
            return "the start-up checks of the flow's edges have not passed yet"
        if not self._running:
            return "the dataflow is not running yet"
        return None


class EngineMetrics:
    """The engine's metrics on `registry`; the flow's calls are plain and cheap (see the module doc).

    `snapshot_age` gives the seconds since the recovery store's last write, or None when there is
    none (`connectors.observability.snapshot_age`); it runs on scrape, never on the flow's path.
    `clock` is the wall clock in seconds (injected in tests).
    """

    def __init__(self, registry: CollectorRegistry, *, snapshot_age: Callable[[], float | None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.readiness = Readiness()
        self._clock = clock
        self._lock = threading.Lock()
        self._records = Counter("forewarn_records_in_total", "Records read, per source (topic or file) and "
                                "partition.", ["source", "partition"], registry=registry)
        self._letters = Counter("forewarn_dead_letters_total", "Dead letters, per step and reason category.",
                                ["step", "reason"], registry=registry)
        self._late = Counter("forewarn_late_records_total", "Records that arrived after their pane closed "
                             "(also counted as dead letters with reason late).", ["source"], registry=registry)
        self._internal = Counter("forewarn_internal_cases_total", "Cases from detection.internal_channels: read "
                                 "and not counted, per source.", ["source"], registry=registry)
        self._repeats = Counter("forewarn_repeat_cases_total", "Cases of a customer already counted on their topic "
                                "within detection.repeat_horizon: read and not counted, per topic.", ["topic"],
                                registry=registry)
        self._spikes = Counter("forewarn_spikes_total", "Spikes detected, per topic.", ["topic"], registry=registry)
        self._latency = Histogram("forewarn_event_to_decision_seconds", "Seconds from the newest event a spike "
                                  "counted to the moment it was decided.", buckets=LATENCY_BUCKETS, registry=registry)
        self._consumer_lag = Gauge("forewarn_consumer_lag_records", "Records between a partition's next offset "
                                   "and its high watermark.", ["topic", "partition"], registry=registry)
        pane_lag = Gauge("forewarn_pane_lag_seconds", "Seconds from the start of the oldest open pane to now "
                         "(0 when none is open).", registry=registry)
        pane_lag.set_function(self._pane_lag)
        incidents = Gauge("forewarn_open_incidents", "Incidents open now.", registry=registry)
        incidents.set_function(self._open_incidents)
        age = Gauge("forewarn_snapshot_age_seconds", "Seconds since the recovery store was last written "
                    "(NaN without recovery).", registry=registry)
        age.set_function(lambda: _or_nan(snapshot_age() if snapshot_age is not None else None))
        self._record_children: dict[tuple[str, int | None], Counter] = {}
        self._letter_children: dict[tuple[str, str], Counter] = {}
        self._oldest_panes: dict[str, float] = {}
        self._incidents: dict[str, int] = {}

    # --- counters, called per batch ---------------------------------------------------------

    def records_in(self, source: str, partition: int | None, n: int = 1) -> None:
        """`n` records read from `source` (a topic or file) and `partition` (None for a file)."""
        child = self._record_children.get((source, partition))
        if child is None:
            child = self._records.labels(source, "" if partition is None else str(partition))
            self._record_children[(source, partition)] = child
        child.inc(n)

    def dead_letter(self, letter: DeadLetter) -> None:
        """One dead letter, by step and reason category; a late record also counts as late for its source."""
        category = reason_category(letter.step, letter.reason)
        key = (letter.step, category)
        child = self._letter_children.get(key)
        if child is None:
            child = self._letters.labels(step_label(letter.step), category)
            self._letter_children[key] = child
        child.inc()
        if category == "late":
            self._late.labels(letter.origin.source).inc()

    def dead_letters(self, letters: Iterable[DeadLetter]) -> None:
        for letter in letters:
            self.dead_letter(letter)

    def internal_cases(self, source: str, n: int) -> None:
        """`n` cases of the company's own channels read from `source` and not counted."""
        self._internal.labels(source).inc(n)

    def repeat_cases(self, counts: dict[str, int]) -> None:
        """Cases per topic of customers already counted on it within `detection.repeat_horizon`."""
        for topic, n in counts.items():
            self._repeats.labels(topic).inc(n)

    def spike(self, spike: Spike, decided_at: datetime, newest_event: datetime | None = None) -> None:
        """A spike decided at `decided_at` (wall clock); the latency runs from `newest_event`, the newest event
        time it counted (without it, the window's end: a lower bound for a spike judged at pane close)."""
        self._spikes.labels(spike.topic).inc()
        since = newest_event if newest_event is not None else spike.window_end
        self._latency.observe(max((decided_at - since).total_seconds(), 0.0))

    def decision_latency(self, seconds: float) -> None:
        """An event-to-decision latency measured elsewhere (e.g. an incident's outreach decision)."""
        self._latency.observe(max(seconds, 0.0))

    # --- gauges, set when the flow knows and read on scrape ---------------------------------

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Records between `partition`'s next offset and its high watermark (the source knows both)."""
        self._consumer_lag.labels(topic, str(partition)).set(max(lag, 0))

    def oldest_open_pane(self, start: datetime | None, worker: str = "0") -> None:
        """The start of the oldest pane still open on `worker` (None: none open). The gauge reads
        now minus the oldest over workers, so a stalled flow shows a growing lag without calls."""
        with self._lock:
            if start is None:
                self._oldest_panes.pop(worker, None)
            else:
                self._oldest_panes[worker] = start.timestamp()

    def open_incidents(self, key: str, count: int) -> None:
        """How many incidents are open for `key` (a topic's tracker); the gauge is the sum over keys.
        Setting, not adding, so a replayed epoch after recovery does not count twice."""
        with self._lock:
            if count:
                self._incidents[key] = count
            else:
                self._incidents.pop(key, None)

    def flow_running(self) -> None:
        """The dataflow runs (call where a source partition is built): /readyz may answer 200."""
        self.readiness.flow_running()

    def _pane_lag(self) -> float:
        with self._lock:
            oldest = min(self._oldest_panes.values(), default=None)
        return 0.0 if oldest is None else max(self._clock() - oldest, 0.0)

    def _open_incidents(self) -> float:
        with self._lock:
            return float(sum(self._incidents.values()))


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
