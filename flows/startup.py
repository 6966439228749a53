"""Before a production flow starts: its parts made from settings and secrets, and every edge checked.

Every check has a short timeout and its failure names the setting or environment variable to
fix; all of them run, so one start reports every problem. This module imports no stream engine
or model, so `forewarn run` can report in a second, before it loads the flow.
"""

from __future__ import annotations

from collections.abc import Callable

import jinja2
import redis

from forewarn import config_rules
from forewarn.connectors.email import SmtpSender
from forewarn.connectors.health import check_redis, redis_location
from forewarn.connectors.kafka import BrokerUnreachable, check_brokers
from forewarn.connectors.sms import TwilioSender
from forewarn.connectors.templates import JinjaRenderer
from forewarn.interfaces import Sender
from forewarn.records import Channel
from forewarn.settings import BUNDLED_CONFIG, ConfigError, Secrets, Settings

CHECK_TIMEOUT = 2.0
"""Seconds each edge has to answer at start-up (a healthy one answers in milliseconds)."""


def kafka_inputs(settings: Settings) -> list[str]:
    """The topics the flow reads."""
    assert settings.kafka is not None
    t = settings.kafka.topics
    return [t.cases, t.telemetry, *([t.alerts] if settings.hazards else []), *([t.customers] if t.customers else [])]


def redis_target(settings: Settings, secrets: Secrets) -> tuple[str, str]:
    """The Redis URL (FOREWARN_REDIS_URL first, else redis.url) and the name of where it came from."""
    if secrets.forewarn_redis_url is not None:
        url, setting = secrets.forewarn_redis_url.get_secret_value(), "FOREWARN_REDIS_URL"
        try:
            config_rules.redis_url(url)
        except ValueError:
            # Not echoed: this URL may carry the password.
            raise ConfigError("FOREWARN_REDIS_URL is not a Redis URL: use redis://USER:PASSWORD@host:6379/0, "
                              "rediss://... (TLS) or unix:///path/to/redis.sock") from None
        return url, setting
    assert settings.redis is not None
    return settings.redis.url, "redis.url"


def redis_client(settings: Settings, secrets: Secrets, timeout: float | None = None) -> redis.Redis:
    """A client for the configured Redis; `timeout` bounds connecting and each reply (None: no bound).

    With `redis.cluster: true` a Redis Cluster client, which reads the slot map as it is made: a
    cluster that is down or refuses us raises ConfigError here, naming the setting. It is typed as
    `redis.Redis` for the callers; the stores take either (`connectors.redis_keys.RedisClient`).
    """
    from typing import cast  # here: this function is the only part of the module that needs them

    from forewarn.connectors.health import connect_cluster
    from forewarn.settings import RedisSettings

    url, setting = redis_target(settings, secrets)
    if not (settings.redis or RedisSettings()).cluster:
        return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        config_rules.redis_cluster_url(url)
    except ValueError as exc:
        raise ConfigError(f"{setting}: {exc}") from None  # the rule never echoes the URL (it may hold a password)
    cluster = connect_cluster(url, setting, socket_connect_timeout=timeout, socket_timeout=timeout)
    return cast(redis.Redis, cluster)


def production_senders(settings: Settings, secrets: Secrets, timeout: float = 10.0) -> dict[Channel, Sender]:
    """Twilio and SMTP senders for the configured channels; missing secrets raise ConfigError."""
    return dict(_senders(settings, secrets, timeout))


def _senders(settings: Settings, secrets: Secrets, timeout: float) -> dict[Channel, TwilioSender | SmtpSender]:
    senders: dict[Channel, TwilioSender | SmtpSender] = {}
    if "sms" in settings.outreach.channels and settings.sms is not None:
        sid, token = secrets.twilio_account_sid, secrets.twilio_auth_token
        if sid is None or token is None:
            raise ConfigError("SMS is enabled but TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are not set in the "
                              "environment: export them (never put them in the YAML)")
        senders["sms"] = TwilioSender.from_settings(
            sid.get_secret_value(), token.get_secret_value(), from_number=settings.sms.from_number,
            messaging_service_sid=settings.sms.messaging_service_sid, base_url=settings.sms.base_url,
            timeout=timeout, pool_size=settings.delivery.concurrency.get("sms", 16))
    if "email" in settings.outreach.channels and settings.email is not None:
        e = settings.email
        password = secrets.smtp_password.get_secret_value() if secrets.smtp_password else None
        if (e.username is None) != (password is None):
            raise ConfigError("email.username and SMTP_PASSWORD go together: set both (the password in the "
                              "environment) or neither")
        secret = unsubscribe_secret(secrets)
        public = settings.web.public_url if secret is not None else None  # links only when both are set
        senders["email"] = SmtpSender(e.host, e.port, e.from_addr, starttls=e.starttls, username=e.username,
                                      password=password, timeout=e.timeout.total_seconds(),
                                      unsubscribe_base=public, unsubscribe_secret=secret if public else None)
    return senders


def unsubscribe_secret(secrets: Secrets) -> bytes | None:
    """FOREWARN_UNSUBSCRIBE_SECRET as bytes (None when unset); ConfigError when it is too short."""
    from forewarn.unsubscribe import check_secret

    if secrets.forewarn_unsubscribe_secret is None:
        return None
    try:
        return check_secret(secrets.forewarn_unsubscribe_secret.get_secret_value().encode())
    except ValueError as exc:
        raise ConfigError(f"FOREWARN_UNSUBSCRIBE_SECRET: {exc}") from None


def preflight(settings: Settings, secrets: Secrets, timeout: float = CHECK_TIMEOUT, *, flow: bool = True,
              senders: bool = True) -> None:
    """Check every edge `forewarn run` (`flow`) and a delivery worker (`senders`) need; raise one ConfigError
    listing each failure and its fix."""
    settings.require_production(flow=flow)
    checks = _checks(settings, secrets, timeout)
    wanted = [checks[1]] + ([checks[0], checks[3]] if flow else []) + ([checks[2]] if senders else [])
    problems = []
    for check in wanted:
        try:
            check()
        except (ConfigError, BrokerUnreachable) as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("start-up checks failed, nothing was started:\n  " + "\n  ".join(problems))


def _checks(settings: Settings, secrets: Secrets, timeout: float) -> list[Callable[[], None]]:
    return [lambda: _check_kafka(settings, timeout), lambda: _check_redis(settings, secrets, timeout),
            lambda: _check_senders(settings, secrets, timeout), lambda: _check_templates(settings)]


def _check_kafka(settings: Settings, timeout: float) -> None:
    assert settings.kafka is not None
    k = settings.kafka
    check_brokers(k.brokers, [*kafka_inputs(settings), k.topics.dead_letters, k.topics.incidents],
                  k.connect_timeout, k.extra, probe_timeout=timeout)


def _check_redis(settings: Settings, secrets: Secrets, timeout: float) -> None:
    url, setting = redis_target(settings, secrets)
    client = redis_client(settings, secrets, timeout)
    try:
        check_redis(client, setting, redis_location(url))
    finally:
        client.close()


def _check_senders(settings: Settings, secrets: Secrets, timeout: float) -> None:
    problems = []
    for sender in _senders(settings, secrets, timeout).values():
        try:
            sender.check(timeout)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n  ".join(problems))


def _check_templates(settings: Settings) -> None:
    try:
        JinjaRenderer(settings.outreach.templates).check([])
    except (ValueError, jinja2.TemplateError) as exc:
        raise ConfigError(f"outreach.templates: {exc}: add it (the bundled ones are in "
                          f"{BUNDLED_CONFIG / 'templates'})") from None
