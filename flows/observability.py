"""Observability of the flow process, wired from settings: metrics, the HTTP endpoint, the log format.

`forewarn run` (and `get_flow` for Bytewax's own runner) call, once per process:

    obs = start_observability(settings, checked=True)  # after preflight; serves /metrics etc. if configured
    io = instrument(production_io(settings, checked=True), obs.metrics)
    ...run the flow...; obs.stop()

`instrument` counts what the edges see: records read per source and partition (and Kafka consumer lag)
at the source, dead letters (and late records) where they are encoded for their topic, and open
incidents where incident reports are written; and it hands the metrics to the flow (`FlowIO.metrics`),
which counts each spike with its event-to-decision time as it leaves detection and reports each
shard's oldest open pane (the pane lag).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bytewax.inputs import FixedPartitionedSource
from prometheus_client import REGISTRY, CollectorRegistry

from forewarn.connectors.observability import MeteredSource, ObservabilityServer, observability_app, snapshot_age
from forewarn.flows.early_warning import FlowIO
from forewarn.logs import use_log_format
from forewarn.metrics import EngineMetrics
from forewarn.records import DeadLetter
from forewarn.settings import ConfigError, Settings

log = logging.getLogger(__name__)

_PROCESS_METRICS: EngineMetrics | None = None
"""The metrics on the process's global registry: made once (a registry refuses the same names twice)."""


@dataclass
class Observability:
    """What `start_observability` started: the metrics the flow reports into and the endpoint, if any."""

    metrics: EngineMetrics
    server: ObservabilityServer | None = None

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def stop(self) -> None:
        self.metrics.readiness.flow_stopped()
        if self.server is not None:
            self.server.stop()


def start_observability(settings: Settings, *, registry: CollectorRegistry | None = None, process_id: int = 0,
                        checked: bool = False) -> Observability:
    """The engine's metrics on `registry` (default: the process's global one, with its process and GC
    collectors), the endpoint on `observability.metrics_port + process_id` when a port is set, and the
    configured log format (FOREWARN_LOG_FORMAT overrides it). `checked`: the edges already answered
    (`flows.startup.preflight` passed), so /readyz waits only for the flow to run.

    Raises ConfigError when the port is taken or out of range."""
    global _PROCESS_METRICS
    o = settings.observability
    use_log_format(o.log_format)
    age = snapshot_age(settings.recovery.directory) if settings.recovery is not None else None
    if registry is None:
        if _PROCESS_METRICS is None:
            _PROCESS_METRICS = EngineMetrics(REGISTRY, snapshot_age=age)
        metrics = _PROCESS_METRICS
    else:
        metrics = EngineMetrics(registry, snapshot_age=age)
    if checked:
        metrics.readiness.edges_checked()
    if o.metrics_port is None:
        return Observability(metrics)
    port = o.metrics_port + process_id
    if port > 65535:
        raise ConfigError(f"observability.metrics_port {o.metrics_port} + process {process_id} is past 65535: "
                          "choose a lower port")
    app = observability_app(metrics.registry, metrics.readiness)
    return Observability(metrics, ObservabilityServer(app, o.host, port).start())


def instrument(io: FlowIO, metrics: EngineMetrics) -> FlowIO:
    """`io` with its edges counting into `metrics` (see the module doc); items and results are unchanged."""
    source = MeteredSource(io.source, metrics) if isinstance(io.source, FixedPartitionedSource) else io.source
    extra = [MeteredSource(s, metrics) if isinstance(s, FixedPartitionedSource) else s for s in io.extra_sources]
    return replace(io, source=source, extra_sources=extra, metrics=metrics,
                   encode_dead_letter=_counting_letters(io.encode_dead_letter, metrics),
                   encode_report=_counting_incidents(io.encode_report, metrics))


def _counting_letters(encode: Callable[[DeadLetter], Any], metrics: EngineMetrics) -> Callable[[DeadLetter], Any]:
    def counted(letter: DeadLetter) -> Any:
        metrics.dead_letter(letter)
        return encode(letter)

    return counted


_CLOSED = frozenset({"resolved", "cancelled", "expired"})


def _counting_incidents(encode: Callable[[Any], Any], metrics: EngineMetrics) -> Callable[[Any], Any]:
    """Open incidents from the incident (and hazard) reports: one per id until it resolves, is cancelled or
    expires. After a restart an incident counts again from its next report."""

    def counted(report: Any) -> Any:
        incident = getattr(report, "incident", None)
        ident, status = getattr(incident, "id", None), getattr(incident, "status", None)
        if isinstance(ident, str) and isinstance(status, str):
            metrics.open_incidents(f"incident {ident}", 0 if status in _CLOSED else 1)
        return encode(report)

    return counted
