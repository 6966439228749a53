"""Build the delivery side from settings: the enqueuer the flow decides with, and the workers that send.

The flow and the workers meet only in the outbox: in this process for the demo (`InMemoryOutbox`,
outbox files instead of providers), in Redis for production (`RedisOutbox`, Twilio and SMTP).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from urllib.parse import quote

from forewarn.connectors.rate_limit import InMemoryRateLimiter, RedisRateLimiter
from forewarn.decisions import ResponderTarget
from forewarn.delivery_metrics import DeliveryMetrics
from forewarn.envelopes import Envelope
from forewarn.flows.deliver import DeliveryWorker, Pace, WorkerOptions
from forewarn.flows.responder_worker import ResponderWorker
from forewarn.interfaces import (
    ContactLog,
    DeliveryQueue,
    Outbox,
    RateLimiter,
    Reconciler,
    ResponderOutbox,
    ResponderSender,
    Sender,
    Suppressions,
)
from forewarn.outreach.breaker import Backoff, Breaker
from forewarn.outreach.dispatch import Channels, Dispatcher, OptOutRecorder, SendEnvelope
from forewarn.outreach.enqueue import ContactCap, Enqueuer
from forewarn.outreach.policy import QuietHours
from forewarn.outreach.withhold import Withholding
from forewarn.records import Channel, SendResult
from forewarn.settings import ConfigError, Secrets, Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_enqueuer(settings: Settings, outbox: Outbox, log: ContactLog | None) -> Enqueuer:
    """The deciding side: deadlines, quiet hours and the per-customer cap from the settings."""
    o = settings.outreach
    quiet = QuietHours(*o.quiet_hours) if o.quiet_hours else None
    return Enqueuer(outbox, o.channels, settings.delivery.deadline, quiet, budget_of(settings, log))


def budget_of(settings: Settings, log: ContactLog | None) -> ContactCap | None:
    """Each customer's warning budget (per day, per week, the safety bypass); None when no limit is set."""
    o = settings.outreach
    if log is None:
        return None
    cap = ContactCap(log, o.max_warnings_per_day, per_week=o.max_warnings_per_week,
                     bypass_from=o.budget_bypass_severity)
    return cap if cap.limits else None


def send_functions(senders: Mapping[Channel, Sender], metrics: DeliveryMetrics | None = None
                   ) -> dict[Channel, SendEnvelope]:
    """Each sender behind the one seam workers call: the envelope, and the status-callback URL for SMS;
    timed and counted into `metrics` when given."""
    def bind(channel: Channel, sender: Sender) -> SendEnvelope:
        def send(envelope: Envelope, status_callback: str | None) -> SendResult:
            call = partial(sender.send, envelope.message, status_callback=status_callback, html=envelope.html)
            return metrics.timed(channel, call) if metrics is not None else call()
        return send
    return {channel: bind(channel, sender) for channel, sender in senders.items()}


def status_callback_url(public_url: str | None) -> Callable[[str], str | None] | None:
    """The URL Twilio reports an SMS's fate to; None without a public web app."""
    if public_url is None:
        return None
    base = public_url.rstrip("/")
    return lambda message_id: f"{base}/twilio/status?m={quote(message_id, safe='')}"


def build_worker(settings: Settings, queue: DeliveryQueue, senders: Mapping[Channel, Sender], *,
                 limiter: RateLimiter, suppressions: Suppressions | None = None,
                 opt_outs: OptOutRecorder | None = None, identities: Mapping[Channel, str] | None = None,
                 rates: Mapping[Channel, float | None] | None = None,
                 metrics: DeliveryMetrics | None = None, withholding: Withholding | None = None) -> DeliveryWorker:
    """A delivery worker over `queue` with the configured concurrency, backoff, breakers and paces."""
    d = settings.delivery
    reconcilers = {c: s for c, s in senders.items() if isinstance(s, Reconciler)}
    breakers = {c: Breaker(d.breaker_failures, d.breaker_cooldown) for c in senders}
    dispatcher = Dispatcher(queue, Channels(send_functions(senders, metrics), reconcilers, breakers),
                            Backoff(d.backoff, d.max_backoff), suppressions=suppressions, opt_outs=opt_outs,
                            status_callback=status_callback_url(settings.web.public_url), withholding=withholding,
                            clock=utc_now)
    if metrics is not None:
        dispatcher.on_outcome = metrics.outcome
        metrics.watch(senders, lambda c: breakers[c].state(utc_now()) == "open",  # type: ignore[index]
                      queue.backlog, queue.scheduled)  # type: ignore[arg-type]
    identities = identities or {}
    paces = {c: Pace(identities.get(c, c), (rates or {}).get(c)) for c in senders}
    options = WorkerOptions({c: d.concurrency.get(c, 4) for c in senders}, d.batch, d.reclaim_after.total_seconds())
    return DeliveryWorker(queue, dispatcher, options, paces, limiter)


def configured_rates(settings: Settings) -> dict[Channel, float | None]:
    return {"sms": settings.sms.rate_per_second if settings.sms else None,
            "email": settings.email.rate_per_second if settings.email else None}


def memory_worker(settings: Settings, queue: DeliveryQueue, senders: Mapping[Channel, Sender],
                  opt_outs: OptOutRecorder | None = None, withholding: Withholding | None = None) -> DeliveryWorker:
    """The in-process worker of the demo and dry runs (no shared pace: one process)."""
    return build_worker(settings, queue, senders, limiter=InMemoryRateLimiter(), opt_outs=opt_outs,
                        withholding=withholding)


def production_worker(settings: Settings, secrets: Secrets, metrics: DeliveryMetrics | None = None) -> DeliveryWorker:
    """A worker on the configured Redis outbox, sending through Twilio and SMTP, paced per sender identity,
    honouring STOP and unsubscribes (checked first: `flows.startup.preflight(..., flow=False)`)."""
    from forewarn.connectors.redis_decisions import RedisDecisionStore
    from forewarn.connectors.redis_index import RedisCustomerIndex
    from forewarn.connectors.redis_outbox import RedisOutbox
    from forewarn.connectors.redis_silences import RedisSilenceStore
    from forewarn.connectors.redis_suppressions import RedisSuppressions
    from forewarn.flows.startup import production_senders, redis_client

    assert settings.redis is not None
    client = redis_client(settings, secrets)
    prefix = settings.redis.prefix
    senders = production_senders(settings, secrets)
    identities = {c: str(getattr(s, "identity", c)) for c, s in senders.items()}
    index = RedisCustomerIndex(client, prefix, extra_traits=settings.targeting.extra_traits)
    outbox = RedisOutbox(client, prefix, settings.delivery.shards)
    withholding = Withholding(RedisDecisionStore(client, prefix), RedisSilenceStore(client, prefix), outbox)
    return build_worker(settings, outbox, senders,
                        limiter=RedisRateLimiter(client, prefix), suppressions=RedisSuppressions(client, prefix),
                        opt_outs=index, identities=identities, rates=configured_rates(settings), metrics=metrics,
                        withholding=withholding)


def responder_targets(settings: Settings) -> tuple[ResponderTarget, ...]:
    """The responders configured (`responders.pagerduty`, `responders.slack`)."""
    r = settings.responders
    return (*(("pagerduty",) if r.pagerduty is not None else ()),
            *(("slack",) if r.slack is not None and r.slack.enabled else ()))


def responder_senders(settings: Settings, secrets: Secrets) -> dict[ResponderTarget, ResponderSender]:
    """PagerDuty and Slack senders from the settings and their secrets; a configured one without its secret is
    a ConfigError naming the variable to set."""
    from forewarn.connectors.pagerduty import PagerDutySender
    from forewarn.connectors.slack import SlackSender

    senders: dict[ResponderTarget, ResponderSender] = {}
    r = settings.responders
    problems = []
    if r.pagerduty is not None:
        if secrets.forewarn_pagerduty_routing_key is None:
            problems.append("responders.pagerduty is configured but FOREWARN_PAGERDUTY_ROUTING_KEY is not set: "
                            "export the integration's routing key (Events API v2)")
        else:
            senders["pagerduty"] = PagerDutySender(
                r.pagerduty.url, routing_key=secrets.forewarn_pagerduty_routing_key.get_secret_value())
    if r.slack is not None and r.slack.enabled:
        if secrets.forewarn_slack_webhook_url is None:
            problems.append("responders.slack is configured but FOREWARN_SLACK_WEBHOOK_URL is not set: export the "
                            "incoming webhook's URL")
        else:
            senders["slack"] = SlackSender(secrets.forewarn_slack_webhook_url.get_secret_value())
    if problems:
        raise ConfigError("\n  ".join(problems))
    return senders


def responder_worker(settings: Settings, secrets: Secrets, outbox: ResponderOutbox) -> ResponderWorker | None:
    """The responder notifications' worker, run beside the customer delivery worker; None when no responder
    is configured."""
    senders = responder_senders(settings, secrets)
    if not senders:
        return None
    d = settings.delivery
    return ResponderWorker(outbox, senders, Backoff(d.backoff, d.max_backoff), clock=utc_now)


def production_responder_worker(settings: Settings, secrets: Secrets) -> ResponderWorker | None:
    """`responder_worker` on the configured Redis responder outbox."""
    from forewarn.connectors.redis_responder_outbox import RedisResponderOutbox
    from forewarn.flows.startup import redis_client

    if not responder_targets(settings):
        return None
    assert settings.redis is not None
    return responder_worker(settings, secrets, RedisResponderOutbox(redis_client(settings, secrets),
                                                                     settings.redis.prefix))
