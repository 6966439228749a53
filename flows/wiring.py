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
from forewarn.connectors.memory import InMemoryContactLog, InMemoryIncidentStore
from forewarn.connectors.memory_decisions import InMemoryDecisionStore
from forewarn.connectors.memory_outbox import InMemoryOutbox
from forewarn.connectors.memory_silences import InMemorySilenceStore
from forewarn.connectors.nws import NwsPoller, NwsSource, urllib_fetch
from forewarn.connectors.outbox import OutboxSender
from forewarn.connectors.redis_contact_log import RedisContactLog
from forewarn.connectors.redis_decisions import RedisDecisionStore
from forewarn.connectors.redis_incidents import RedisIncidentStore
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.connectors.redis_responder_outbox import RedisResponderOutbox
from forewarn.connectors.redis_silences import RedisSilenceStore
from forewarn.connectors.templates import JinjaRenderer
from forewarn.flows.deliver import DeliveryWorker
from forewarn.flows.delivery_parts import build_enqueuer, memory_worker, responder_targets
from forewarn.flows.early_warning import FlowIO
from forewarn.flows.startup import kafka_inputs, preflight, redis_client
from forewarn.interfaces import (
    ContactLog,
    CustomerIndex,
    DecisionStore,
    IncidentStore,
    Outbox,
    ResponderOutbox,
    Sender,
    SilenceStore,
)
from forewarn.outreach.covering import Covering
from forewarn.outreach.gate import DecisionGate
from forewarn.outreach.hazards import HazardOutreach, HazardReport, HazardRule
from forewarn.outreach.notifier import ResponderNotifier
from forewarn.outreach.planner import Outreach, OutreachReport
from forewarn.outreach.targeting import TraitRule
from forewarn.outreach.withhold import Withholding
from forewarn.records import Channel, DeadLetter, Spike
from forewarn.settings import ConfigError, HazardSettings, RedisSettings, Secrets, Settings
from forewarn.sources import RecordKind, SourceKinds


def encode_report(report: OutreachReport | HazardReport) -> bytes:
    return orjson.dumps(report.to_dict())


def encode_spike(spike: Spike) -> bytes:
    return orjson.dumps(spike.to_dict())


def build_outreach(settings: Settings, index: CustomerIndex, outbox: Outbox, store: IncidentStore | None = None,
                   log: ContactLog | None = None, decisions: DecisionStore | None = None,
                   silences: SilenceStore | None = None, responders: ResponderOutbox | None = None) -> Outreach:
    """Outreach from settings; with a decision store, every opened incident passes the playbook's gate."""
    renderer = JinjaRenderer(settings.outreach.templates)
    t = settings.targeting
    o = settings.outreach
    gate, notifier = _decision_parts(settings, index, decisions, silences, responders)
    covering = Covering(outbox, decisions.open_decisions, o.topic_labels, frozenset(o.urgent_topics),
                        gate.silenced_now, renderer.names_others) if decisions is not None and gate else None
    return Outreach(index, build_enqueuer(settings, outbox, log), renderer,
                    TraitRule(t.min_support, t.min_coverage, t.min_lift, t.max_p_value),
                    o.max_audience, store, o.topic_labels, o.urgent_topics, gate, notifier, covering)


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
    io.drain = parts.drain
    return io


@dataclass
class MemoryParts:
    """Outreach with nothing leaving the machine: one outbox in this process for incident and hazard
    messages alike, drained by an in-process worker into outbox files (`drain`)."""

    settings: Settings
    index: CustomerIndex
    out: Path
    outbox: InMemoryOutbox = field(default_factory=InMemoryOutbox)
    store: InMemoryIncidentStore = field(default_factory=InMemoryIncidentStore)
    log: InMemoryContactLog = field(default_factory=InMemoryContactLog)
    decisions: InMemoryDecisionStore = field(default_factory=InMemoryDecisionStore)
    silences: InMemorySilenceStore = field(default_factory=InMemorySilenceStore)
    _worker: DeliveryWorker | None = None

    def senders(self) -> dict[Channel, Sender]:
        return {channel: OutboxSender(self.out / f"outbox_{channel}.jsonl", channel)
                for channel in self.settings.outreach.channels}

    def worker(self) -> DeliveryWorker:
        """The in-process delivery worker, started on first use."""
        if self._worker is None:
            withholding = Withholding(self.decisions, self.silences, self.outbox)
            self._worker = memory_worker(self.settings, self.outbox, self.senders(), opt_outs=self.index,
                                         withholding=withholding).start()
        return self._worker

    def outreach(self) -> Outreach:
        outreach = build_outreach(self.settings, self.index, self.outbox, self.store, self.log, self.decisions,
                                  self.silences)
        outreach.enqueuer.after_enqueue = self._delivered
        return outreach

    def hazards(self) -> HazardOutreach:
        hazards = build_hazards(self.settings, self.index, self.outbox, self.log, self.decisions, self.silences)
        hazards.enqueuer.after_enqueue = self._delivered
        return hazards

    def _delivered(self) -> None:
        """A replay keeps wall time and event time in step: each pass's messages go before the next pass."""
        self.worker().drain(timeout=120.0, settle_for=0.0)

    def drain(self, timeout: float = 120.0) -> bool:
        """Wait for every queued message to be settled, then stop the worker; False on timeout."""
        if self._worker is None:
            return True
        done = self._worker.drain(timeout)
        self._worker.stop()
        self._worker = None
        return done


def _decision_parts(settings: Settings, index: CustomerIndex, decisions: DecisionStore | None,
                    silences: SilenceStore | None, responders: ResponderOutbox | None,
                    ) -> tuple[DecisionGate | None, ResponderNotifier | None]:
    """The playbook's gate (with a decision store) and the responders' notifier (with targets configured)."""
    gate = DecisionGate(settings.playbook, decisions, index, silences) if decisions is not None else None
    r = settings.responders
    targets = responder_targets(settings)
    notifier = ResponderNotifier(responders, targets, r.deadline, r.config_hint) \
        if responders is not None and targets else None
    return gate, notifier


def build_hazards(settings: Settings, index: CustomerIndex, outbox: Outbox, log: ContactLog | None = None,
                  decisions: DecisionStore | None = None, silences: SilenceStore | None = None,
                  responders: ResponderOutbox | None = None) -> HazardOutreach:
    """Forecast-incident outreach: the configured rules; polygons and circles are searched on the index; with a
    decision store, each hazard passes the playbook's gate."""
    hazards = settings.hazards or HazardSettings()
    rules = [HazardRule(tuple(r.events), r.min_rank, tuple(sorted(r.require.items()))) for r in hazards.rules]
    gate, notifier = _decision_parts(settings, index, decisions, silences, responders)
    return HazardOutreach(index, build_enqueuer(settings, outbox, log), JinjaRenderer(settings.outreach.templates),
                          rules, hazards.region_format, settings.outreach.max_audience,
                          settings.outreach.urgent_hazard_rank, gate, notifier)


@dataclass
class RedisParts:
    """The production edges, built on first use inside a worker: one Redis client and one outbox for
    incident and hazard outreach alike. The flow only decides: `forewarn deliver` sends."""

    settings: Settings
    secrets: Secrets
    _client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis_client(self.settings, self.secrets)
        return self._client

    @property
    def prefix(self) -> str:
        return (self.settings.redis or RedisSettings()).prefix

    def index(self, client: redis.Redis) -> RedisCustomerIndex:
        return RedisCustomerIndex(client, self.prefix, extra_traits=self.settings.targeting.extra_traits)

    def outbox(self) -> RedisOutbox:
        return RedisOutbox(self.client(), self.prefix, self.settings.delivery.shards)

    def customer_index(self) -> CustomerIndex:
        return self.index(self.client())

    def outreach(self) -> Outreach:
        client = self.client()
        return build_outreach(self.settings, self.index(client), self.outbox(), RedisIncidentStore(client, self.prefix),
                              RedisContactLog(client, self.prefix), RedisDecisionStore(client, self.prefix),
                              RedisSilenceStore(client, self.prefix), RedisResponderOutbox(client, self.prefix))

    def hazards(self) -> HazardOutreach:
        client = self.client()
        return build_hazards(self.settings, self.index(client), self.outbox(), RedisContactLog(client, self.prefix),
                             RedisDecisionStore(client, self.prefix), RedisSilenceStore(client, self.prefix),
                             RedisResponderOutbox(client, self.prefix))


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
