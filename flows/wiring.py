"""Build a flow's edges from settings: files and in-process parts, or Kafka, Redis, Twilio, SMTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from bytewax.inputs import Source

from forewarn.connectors.jsonl import JsonlSink, JsonlSource
from forewarn.connectors.kafka import case_partitions, json_topic_sink, kafka_source
from forewarn.connectors.memory import InMemoryContactLog, InMemoryIncidentStore, InMemoryLedger
from forewarn.connectors.nws import NwsPoller, NwsSource, urllib_fetch
from forewarn.connectors.outbox import OutboxSender
from forewarn.connectors.redis_contact_log import RedisContactLog
from forewarn.connectors.redis_incidents import RedisIncidentStore
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_ledger import RedisLedger
from forewarn.connectors.templates import JinjaRenderer
from forewarn.flows.early_warning import FlowIO
from forewarn.flows.startup import kafka_inputs, preflight, production_senders, redis_client
from forewarn.interfaces import ContactLog, CustomerIndex, IncidentStore, Ledger, Sender
from forewarn.outreach.delivery import ContactCap, Deliverer, RetryPolicy
from forewarn.outreach.hazards import HazardOutreach, HazardReport, HazardRule
from forewarn.outreach.planner import Outreach, OutreachReport
from forewarn.outreach.policy import QuietHours
from forewarn.outreach.targeting import TraitRule
from forewarn.records import Channel, DeadLetter, Spike
from forewarn.settings import ConfigError, HazardSettings, RedisSettings, Secrets, Settings
from forewarn.sources import RecordKind, SourceKinds


def encode_report(report: OutreachReport | HazardReport) -> bytes:
    return orjson.dumps(report.to_dict())


def encode_spike(spike: Spike) -> bytes:
    return orjson.dumps(spike.to_dict())


def deliverer(settings: Settings, index: CustomerIndex, ledger: Ledger, senders: dict[Channel, Sender],
              log: ContactLog | None) -> Deliverer:
    """The notification pipeline with the configured retries, the per-customer cap when set, and
    provider opt-outs written back to the index."""
    retry = RetryPolicy(settings.outreach.retry_attempts, settings.outreach.retry_backoff.total_seconds())
    most = settings.outreach.max_warnings_per_day
    cap = ContactCap(log, most) if most is not None and log is not None else None
    return Deliverer(ledger, senders, retry, cap=cap, opt_outs=index)


def build_outreach(settings: Settings, index: CustomerIndex, ledger: Ledger, senders: dict[Channel, Sender],
                   store: IncidentStore | None = None, log: ContactLog | None = None) -> Outreach:
    renderer = JinjaRenderer(settings.outreach.templates)
    t = settings.targeting
    quiet = QuietHours(*settings.outreach.quiet_hours) if settings.outreach.quiet_hours else None
    return Outreach(index, deliverer(settings, index, ledger, senders, log), renderer,
                    TraitRule(t.min_support, t.min_coverage, t.min_lift, t.max_p_value),
                    settings.outreach.max_audience, quiet, store, settings.outreach.topic_labels)


def file_io(settings: Settings, inputs: list[Path], out: Path, outreach: Callable[[], Outreach] | None,
            with_spikes: bool = True, hazards: Callable[[], HazardOutreach] | None = None) -> FlowIO:
    """Replay files through the flow; results land as JSONL under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    return FlowIO(
        source=JsonlSource(inputs, max_bytes=settings.max_record_bytes),
        types={str(path): SourceKinds.mixed_file() for path in inputs},
        partitions=[str(path) for path in inputs],
        dead_letters=JsonlSink(out / "dead_letters.jsonl", lambda b: b),
        spikes=JsonlSink(out / "spikes.jsonl", lambda b: b) if with_spikes else None,
        encode_spike=encode_spike,
        reports=JsonlSink(out / "incidents.jsonl", lambda b: b) if outreach or hazards else None,
        encode_report=encode_report,
        outreach=outreach,
        hazards=hazards,
        replay=True,
    )


def memory_io(settings: Settings, inputs: list[Path], out: Path, index: CustomerIndex,
              upsert_customers: bool = True) -> FlowIO:
    """The full flow over files with an in-process ledger and outbox files; alerts too when configured.

    JSONL lines of type customer update `index` unless `upsert_customers` is False (a replay
    against the production Redis index must leave it as it is)."""
    parts = MemoryParts(settings, index, out)
    io = file_io(settings, inputs, out, parts.outreach, hazards=parts.hazards if settings.hazards else None)
    io.customer_index = (lambda: index) if upsert_customers else None
    return io


@dataclass
class MemoryParts:
    """Outreach with nothing leaving the machine: one ledger and one set of outbox files for
    incident and hazard messages alike, built on first use."""

    settings: Settings
    index: CustomerIndex
    out: Path
    ledger: InMemoryLedger = field(default_factory=InMemoryLedger)
    store: InMemoryIncidentStore = field(default_factory=InMemoryIncidentStore)
    log: InMemoryContactLog = field(default_factory=InMemoryContactLog)
    _senders: dict[Channel, Sender] | None = None

    def senders(self) -> dict[Channel, Sender]:
        if self._senders is None:
            self._senders = {channel: OutboxSender(self.out / f"outbox_{channel}.jsonl", channel)
                             for channel in self.settings.outreach.channels}
        return self._senders

    def outreach(self) -> Outreach:
        return build_outreach(self.settings, self.index, self.ledger, self.senders(), self.store, self.log)

    def hazards(self) -> HazardOutreach:
        return build_hazards(self.settings, self.index, self.ledger, self.senders(), self.log)


def build_hazards(settings: Settings, index: CustomerIndex, ledger: Ledger, senders: dict[Channel, Sender],
                  log: ContactLog | None = None) -> HazardOutreach:
    """Forecast-incident outreach: the configured rules; polygons and circles are searched on the index."""
    hazards = settings.hazards or HazardSettings()
    rules = [HazardRule(tuple(r.events), r.min_rank, tuple(sorted(r.require.items()))) for r in hazards.rules]
    quiet = QuietHours(*settings.outreach.quiet_hours) if settings.outreach.quiet_hours else None
    return HazardOutreach(index, deliverer(settings, index, ledger, senders, log),
                          JinjaRenderer(settings.outreach.templates), rules,
                          hazards.region_format, settings.outreach.max_audience, quiet)


@dataclass
class RedisParts:
    """The production edges, built on first use inside a worker: one Redis client and one set of
    senders for incident and hazard outreach alike."""

    settings: Settings
    secrets: Secrets
    _built: tuple[redis.Redis, dict[Channel, Sender]] | None = None

    def _parts(self) -> tuple[redis.Redis, dict[Channel, Sender]]:
        if self._built is None:
            self._built = (redis_client(self.settings, self.secrets), production_senders(self.settings, self.secrets))
        return self._built

    @property
    def prefix(self) -> str:
        return (self.settings.redis or RedisSettings()).prefix

    def index(self, client: redis.Redis) -> RedisCustomerIndex:
        return RedisCustomerIndex(client, self.prefix, extra_traits=self.settings.targeting.extra_traits)

    def customer_index(self) -> CustomerIndex:
        client, _ = self._parts()
        return self.index(client)

    def outreach(self) -> Outreach:
        client, senders = self._parts()
        return build_outreach(self.settings, self.index(client), RedisLedger(client, self.prefix),
                              senders, RedisIncidentStore(client, self.prefix), RedisContactLog(client, self.prefix))

    def hazards(self) -> HazardOutreach:
        client, senders = self._parts()
        return build_hazards(self.settings, self.index(client), RedisLedger(client, self.prefix),
                             senders, RedisContactLog(client, self.prefix))


def nws_sources(settings: Settings) -> list[Source[Any]]:
    """The api.weather.gov poller, when hazards.poll is configured."""
    poll = settings.hazards.poll if settings.hazards else None
    if poll is None:
        return []
    return [NwsSource(lambda: NwsPoller(urllib_fetch, poll.user_agent, poll.url, poll.interval))]


def production_kinds(settings: Settings) -> dict[str, SourceKinds]:
    """Each production source carries one kind, whatever its records claim: no topic is mixed."""
    assert settings.kafka is not None
    t = settings.kafka.topics
    poll = settings.hazards.poll if settings.hazards else None
    named: list[tuple[str | None, RecordKind]] = [
        (t.cases, "case"), (t.telemetry, "telemetry"), (t.alerts if settings.hazards else None, "alert"),
        (t.customers, "customer"), (poll.url if poll else None, "alert")]
    kinds: dict[str, SourceKinds] = {}
    for source, kind in named:
        if source is None:
            continue
        if source in kinds and kinds[source].default != kind:
            raise ConfigError(f"kafka.topics: {source} is configured for both {kinds[source].default} and {kind} "
                              "records; give each kind its own topic")
        kinds[source] = SourceKinds.only(kind)
    return kinds


def production_io(settings: Settings, secrets: Secrets | None = None, *, checked: bool = False) -> FlowIO:
    """Kafka in and out, Redis, Twilio and SMTP, checked before the flow is built (unless the caller
    already ran `flows.startup.preflight`: `checked`)."""
    settings.require_production()
    secrets = secrets or Secrets()
    assert settings.kafka is not None
    k = settings.kafka
    kinds = production_kinds(settings)  # a topic named for two kinds fails here, before any connection
    inputs = kafka_inputs(settings)
    if not checked:
        preflight(settings, secrets)  # every edge answers, and accepts our credentials, or nothing starts
    client = redis_client(settings, secrets)
    assert settings.redis is not None
    regions = RedisCustomerIndex(client, settings.redis.prefix).attribute_counts("region")
    parts = RedisParts(settings, secrets)
    letter_msg, letter_sink = json_topic_sink(k.brokers, k.topics.dead_letters, DeadLetter.to_json,
                                              extra=k.extra)
    report_msg, report_sink = json_topic_sink(k.brokers, k.topics.incidents, encode_report,
                                              key=lambda r: r.incident.id.encode(), extra=k.extra)
    source = kafka_source(k.brokers, inputs, k.tail, k.batch_size, k.extra, k.idle_poll)
    return FlowIO(
        source=source,
        partitions=case_partitions(source.list_parts(), {k.topics.cases}),
        types=kinds,
        dead_letters=letter_sink,
        encode_dead_letter=letter_msg,
        reports=report_sink,
        encode_report=report_msg,
        outreach=parts.outreach,
        hazards=parts.hazards if settings.hazards else None,
        customer_index=parts.customer_index if k.topics.customers else None,
        extra_sources=nws_sources(settings),
        replay=not k.tail,
        region_weights={region: float(n) for region, n in regions.items()} or None,
    )
