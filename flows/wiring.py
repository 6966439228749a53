"""Build a flow's edges from settings: files and in-process parts, or Kafka, Redis, Twilio, SMTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import redis

from connectors.email import SmtpSender
from connectors.jsonl import JsonlSink, JsonlSource
from connectors.kafka import check_brokers, json_topic_sink, kafka_source, to_raw
from connectors.memory import InMemoryCustomerIndex, InMemoryLedger
from connectors.outbox import OutboxSender
from connectors.redis_index import RedisCustomerIndex
from connectors.redis_ledger import RedisLedger
from connectors.sms import TwilioSender
from connectors.templates import JinjaRenderer
from flows.early_warning import FlowIO
from forewarn.interfaces import CustomerIndex, Ledger, Sender
from forewarn.records import Channel, DeadLetter, Spike
from forewarn.settings import ConfigError, Secrets, Settings
from outreach.delivery import Deliverer, RetryPolicy
from outreach.planner import Outreach, OutreachReport
from outreach.targeting import TraitRule


def encode_report(report: OutreachReport) -> bytes:
    return orjson.dumps(report.to_dict())


def encode_spike(spike: Spike) -> bytes:
    return orjson.dumps(spike.to_dict())


def build_outreach(settings: Settings, index: CustomerIndex, ledger: Ledger,
                   senders: dict[Channel, Sender]) -> Outreach:
    renderer = JinjaRenderer(settings.outreach.templates)
    t = settings.targeting
    retry = RetryPolicy(settings.outreach.retry_attempts, settings.outreach.retry_backoff.total_seconds())
    return Outreach(index, Deliverer(ledger, senders, retry), renderer,
                    TraitRule(t.min_support, t.min_coverage, t.min_lift, t.max_p_value),
                    settings.outreach.max_audience)


def file_io(settings: Settings, inputs: list[Path], out: Path,
            outreach: Callable[[], Outreach] | None, with_spikes: bool = True) -> FlowIO:
    """Replay files through the flow; results land as JSONL under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    return FlowIO(
        source=JsonlSource(inputs),
        dead_letters=JsonlSink(out / "dead_letters.jsonl", lambda b: b),
        spikes=JsonlSink(out / "spikes.jsonl", lambda b: b) if with_spikes else None,
        encode_spike=encode_spike,
        reports=JsonlSink(out / "incidents.jsonl", lambda b: b) if outreach else None,
        encode_report=encode_report,
        outreach=outreach,
        replay=True,
    )


def memory_outreach(settings: Settings, index: InMemoryCustomerIndex, out: Path) -> Callable[[], Outreach]:
    """Outreach with nothing leaving the machine: sends are written to outbox files."""
    ledger = InMemoryLedger()

    def build() -> Outreach:
        senders: dict[Channel, Sender] = {
            channel: OutboxSender(out / f"outbox_{channel}.jsonl", channel)
            for channel in settings.outreach.channels
        }
        return build_outreach(settings, index, ledger, senders)

    return build


def production_senders(settings: Settings, secrets: Secrets) -> dict[Channel, Sender]:
    senders: dict[Channel, Sender] = {}
    if "sms" in settings.outreach.channels and settings.sms is not None:
        sid, token = secrets.twilio_account_sid, secrets.twilio_auth_token
        if sid is None or token is None:
            raise ConfigError("SMS is enabled but TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are not set in the "
                              "environment: export them (never put them in the YAML)")
        senders["sms"] = TwilioSender.from_settings(
            sid.get_secret_value(), token.get_secret_value(), from_number=settings.sms.from_number,
            messaging_service_sid=settings.sms.messaging_service_sid, base_url=settings.sms.base_url)
    if "email" in settings.outreach.channels and settings.email is not None:
        e = settings.email
        password = secrets.smtp_password.get_secret_value() if secrets.smtp_password else None
        senders["email"] = SmtpSender(e.host, e.port, e.from_addr, starttls=e.starttls, username=e.username,
                                      password=password, timeout=e.timeout.total_seconds())
    return senders


def redis_client(settings: Settings, secrets: Secrets) -> redis.Redis:
    assert settings.redis is not None
    url = secrets.forewarn_redis_url.get_secret_value() if secrets.forewarn_redis_url else settings.redis.url
    return redis.Redis.from_url(url)


def redis_outreach(settings: Settings, secrets: Secrets) -> Callable[[], Outreach]:
    assert settings.redis is not None
    prefix = settings.redis.prefix

    def build() -> Outreach:
        client = redis_client(settings, secrets)
        return build_outreach(settings, RedisCustomerIndex(client, prefix), RedisLedger(client, prefix),
                              production_senders(settings, secrets))

    return build


def production_io(settings: Settings, secrets: Secrets | None = None) -> FlowIO:
    """Kafka in and out, Redis, Twilio and SMTP, checked before the flow is built."""
    settings.require_production()
    secrets = secrets or Secrets()
    assert settings.kafka is not None
    k = settings.kafka
    check_brokers(k.brokers, [k.topics.cases, k.topics.telemetry, k.topics.dead_letters, k.topics.incidents],
                  k.connect_timeout, k.extra)
    client = redis_client(settings, secrets)
    client.ping()
    assert settings.redis is not None
    regions = RedisCustomerIndex(client, settings.redis.prefix).attribute_counts("region")
    production_senders(settings, secrets)  # fail now, not at the first incident, on missing secrets
    JinjaRenderer(settings.outreach.templates).check([])
    letter_msg, letter_sink = json_topic_sink(k.brokers, k.topics.dead_letters, DeadLetter.to_json,
                                              extra=k.extra)
    report_msg, report_sink = json_topic_sink(k.brokers, k.topics.incidents, encode_report,
                                              key=lambda r: r.incident.id.encode(), extra=k.extra)
    return FlowIO(
        source=kafka_source(k.brokers, [k.topics.cases, k.topics.telemetry], k.tail, k.batch_size, k.extra),
        to_raw=to_raw,
        types={k.topics.cases: "case", k.topics.telemetry: "telemetry"},
        dead_letters=letter_sink,
        encode_dead_letter=letter_msg,
        reports=report_sink,
        encode_report=report_msg,
        outreach=redis_outreach(settings, secrets),
        replay=not k.tail,
        region_weights={region: float(n) for region, n in regions.items()} or None,
    )
