"""Configuration: YAML for behaviour, the environment for secrets, validated on load.

Every section forbids unknown keys, so a typo fails at start-up with the path of the
bad key instead of silently falling back to a default.
"""

from __future__ import annotations

import importlib.resources
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.types import AwareDatetime
from pydantic_settings import BaseSettings, SettingsConfigDict

from forewarn import config_rules as rules
from forewarn.decisions import ReachLevel, SeverityLevel, Tier
from forewarn.durations import parse_duration
from forewarn.records import Channel, Customer, Product, channel_name


class ConfigError(ValueError):
    """A configuration problem, phrased as what is wrong and how to fix it."""


_TRAIT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Labels are read by customers: words only, so no URL, address, phone number or markup fits.
_LABEL = re.compile(r"[^\W_](?:[^\W_]|[ \-'&()]){0,39}")
_TOPIC_LABELS = {"no_internet": "internet", "wifi_drops": "Wi-Fi", "slow_speed": "speed", "billing": "billing",
                 "tv_signal": "TV signal", "account_access": "account access"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> timedelta:
    return parse_duration(value)


class TimeBoundsSettings(_Section):
    """Record times a flow accepts, checked per record before windowing (see detectors.time_bounds)."""

    max_ahead: timedelta = timedelta(minutes=5)
    """Live (tailing): ahead of the wall clock. Below allowed_lateness, so an accepted record never
    makes on-time ones late."""
    max_age: timedelta | None = timedelta(days=7)
    """Live (tailing): behind the wall clock; what still matters, e.g. the topics' retention. null: no limit."""
    max_stream_ahead: timedelta = timedelta(hours=1)
    """Replay: ahead of the input partition's own running watermark (a replay never reads the wall clock)."""
    jump_after: int = Field(5, ge=1)
    """...unless the records after it go on from its time: this many with it (a real gap, or a sparse stream)."""
    not_before: AwareDatetime = datetime(2000, 1, 1, tzinfo=UTC)
    """Never accepted before this instant (a reset clock: 1970, 0001)."""

    @field_validator("max_ahead", "max_age", "max_stream_ahead", mode="before")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if value is None:
            return None
        length = parse_duration(value)
        if length <= timedelta(0):
            raise ValueError(f"must be positive, e.g. 15m (got {value!r})")
        return length


OVERFLOW_REGION = "~overflow"
"""The region a topic's cases count under once it has `detection.max_regions_per_topic` regions;
outreach never targets it (an incident on it is held for a responder)."""


class DetectionSettings(_Section):
    window: timedelta = timedelta(hours=1)
    slide: timedelta = timedelta(minutes=15)
    scales: tuple[timedelta, ...] = (timedelta(hours=2), timedelta(hours=4))
    """Further window lengths judged beside `window` (the most surprising decides, Bonferroni-adjusted)."""
    allowed_lateness: timedelta = timedelta(minutes=10)
    warmup: timedelta = timedelta(days=1)
    alpha: float = Field(2.5e-5, gt=0, lt=1)
    """The tail a window must reach: fixed when `false_alarm_target` is null, else only until it is calibrated."""
    false_alarm_target: float | None = Field(None, gt=0)
    """Alarm episodes per 1,000 key-days (a key: a topic nationally or in one region) the detector aims for:
    alpha is calibrated to it daily from the detector's own null (detectors/calibration.py); null: a fixed
    `alpha`."""
    rarity_runs: int | None = Field(8, ge=1)
    """A topic's key (nation or region) whose window fires opens an alarm only if fewer than this many of its
    runs of firing windows over `rarity_memory` fired at least as strongly (detectors/rarity.py): a key whose
    noise the model underestimates, bursting day after day, stops alarming on it; a key with a real surge every
    week or two is still heard. A region's windows inside an alarm of its nation are the nation's run, not its
    own. null: every firing window may open an alarm."""
    rarity_memory: timedelta = timedelta(days=28)
    """How far back `rarity_runs` and `telemetry_value_rarity` look."""
    min_count: int = Field(8, ge=1)
    min_ratio: float = Field(1.5, ge=1)
    dispersion_size: float = Field(20.0, gt=0)
    explained_share: float = Field(0.5, gt=0, le=1)
    reporter_lookback: timedelta = timedelta(hours=1)
    adapt_after: timedelta = timedelta(hours=6)
    telemetry_fault_metrics: tuple[str, ...] = ("wan_down", "wifi_drop")
    telemetry_topics: dict[str, str] = Field(default_factory=lambda: {"wan_down": "no_internet",
                                                                      "wifi_drop": "wifi_drops"})
    """Fault metric -> the case topic its surges merge with into one incident."""
    telemetry_value_z: float = Field(6.0, gt=0)
    """A device group's mean of a numeric metric this many noise scales from its expectation alarms."""
    telemetry_value_rarity: float | None = Field(0.01, gt=0, le=1)
    """... and only when fewer than this share of the metric's panes over `rarity_memory` were as far out
    (detectors/rarity.py): a metric whose noise is wilder than its noise scale says stops alarming on it
    (bench.bench_nab); null: every such pane alarms."""
    telemetry_value_season: Literal["day", "weekpart", "week"] | None = "day"
    """The seasonal profile a numeric metric's expectation follows: hour of day, weekday/weekend hour,
    hour of week, or null for none."""
    time_bounds: TimeBoundsSettings = TimeBoundsSettings()
    dedup_horizon: timedelta | None = timedelta(days=1)
    """A case whose id was already counted within this much event time of its own is not counted again: it
    is a dead letter ("duplicate: ..."). Cases without an id always count. null or 0: no check."""
    dedup_max_ids: int = Field(100_000, ge=1)
    """At most this many case ids are remembered per topic for dedup_horizon (the oldest counted are forgotten
    first), so memory stays bounded whatever the rate; a duplicate of a forgotten id counts again."""
    repeat_horizon: timedelta | None = timedelta(days=1)
    """A customer counts once per topic within this much event time: their further cases on it are read and
    not counted (one customer calling back, or a script filing under one account, is one affected customer,
    not a surge). Not dead letters: they are valid (a counter per topic, `forewarn_repeat_cases_total`). Cases
    without a customer id always count. null or 0: every case counts."""
    repeat_max_customers: int = Field(100_000, ge=1)
    """At most this many customers are remembered per topic for repeat_horizon (the oldest counted are forgotten
    first); a forgotten customer's next case counts again."""
    max_regions_per_topic: int = Field(5_000, ge=1)
    """A topic's first this-many distinct regions count as themselves; a case from a further new region still
    counts, under the region "~overflow" (never targeted by outreach), and also becomes a dead letter
    ("region capped: ...") so the operator sees which regions were pooled. Bounds per-topic state."""
    internal_channels: frozenset[str] = frozenset()
    """Cases whose `channel` is one of these were opened by the company itself (staff logging what they saw on
    a round, a work-order system syncing), not by a customer reaching out: they are read and then not counted,
    and their customers are not reporters. Empty (the default): every case counts. Names match exactly."""
    shards: int = Field(32, ge=1, le=4096)
    """Detection state is spread over this many keys (by topic), so workers and processes share the work;
    results do not depend on it."""

    _durations = field_validator("window", "slide", "allowed_lateness", "warmup", "reporter_lookback",
                                 "adapt_after", "rarity_memory", mode="before")(_duration)

    @field_validator("dedup_horizon", "repeat_horizon", mode="before")
    @classmethod
    def _horizon(cls, value: Any) -> timedelta | None:
        if value is None:
            return None
        length = parse_duration(value)
        if length < timedelta(0):
            raise ValueError(f"must be positive, e.g. 1d, or 0 or null for no check (got {value!r})")
        return length or None

    @field_validator("internal_channels", mode="before")
    @classmethod
    def _named_channels(cls, value: Any) -> Any:
        example = ("list the `channel` values of cases your own staff or systems open, e.g. [Employee Generated, "
                   "City Worker App]")
        if value is None:
            return frozenset()
        if not isinstance(value, list | tuple | set | frozenset):
            raise ValueError(f"must be a list of channel names, not {type(value).__name__}: {example}")
        names = [channel_name(v) for v in value]  # 311 is the channel "311", as a case's channel is read
        if any(name is None or not name.strip() for name in names):
            raise ValueError(f"a channel name must be a non-empty text or number: {example}")
        return frozenset(names)

    @field_validator("scales", mode="before")
    @classmethod
    def _scale_durations(cls, value: Any) -> Any:
        return tuple(parse_duration(v) for v in value) if isinstance(value, list | tuple) else value

    @model_validator(mode="after")
    def _window_fits_slide(self) -> DetectionSettings:
        for name, length in [("window", self.window), *(("scales", s) for s in self.scales)]:
            if self.slide <= timedelta(0) or length < self.slide or length % self.slide:
                raise ValueError(f"detection.{name} ({length}) must be a whole multiple of detection.slide "
                                 f"({self.slide}), for example window 1h with slide 15m")
        windows = self.rarity_memory // self.slide
        rarity = self.telemetry_value_rarity
        if rarity is not None and windows * rarity < 1.0:
            raise ValueError(f"detection.rarity_memory ({self.rarity_memory}) must hold at least 1 / "
                             f"detection.telemetry_value_rarity ({rarity:g}) windows of detection.slide "
                             f"({self.slide}): a shorter memory cannot tell that share, for example 28d")
        if self.rarity_runs is not None and self.rarity_runs > windows:
            raise ValueError(f"detection.rarity_runs ({self.rarity_runs}) cannot exceed the windows of "
                             f"detection.slide ({self.slide}) in detection.rarity_memory ({self.rarity_memory}): "
                             f"{windows}; lower it or lengthen the memory, for example 8 runs over 28d")
        return self


class IncidentSettings(_Section):
    resolve_after_quiet_panes: int = Field(4, ge=1)


class TargetingSettings(_Section):
    min_support: int = Field(5, ge=1)
    min_coverage: float = Field(0.6, gt=0, le=1)
    min_lift: float = Field(2.0, ge=1)
    max_p_value: float = Field(1e-6, gt=0, lt=1)
    extra_traits: tuple[str, ...] = ()
    """Customer or product fields indexed as traits beside region, model, firmware, lot and installed,
    e.g. [tier, battery_backup]; only fields named here are indexed (never contact details)."""

    @field_validator("extra_traits")
    @classmethod
    def _trait_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _TRAIT_NAME.fullmatch(name):
                raise ValueError(f"targeting.extra_traits: {name!r} is not a field name (letters, digits, _)")
            if name in Customer.model_fields or name in Product.model_fields:
                raise ValueError(f"targeting.extra_traits: {name!r} is a built-in field of a customer or product; "
                                 "name only extra fields (region, model, firmware, lot, installed are always traits)")
        if len(set(names)) != len(names):
            raise ValueError("targeting.extra_traits: a field is named twice")
        return names


def _bundled_config() -> Path:
    folder = importlib.resources.files("forewarn") / "config"
    if not isinstance(folder, Path) or not folder.is_dir():
        # Jinja and `-c` need real files: a zipped install would hide them.
        raise RuntimeError(f"forewarn's bundled config is not a folder on disk ({folder}): install the wheel "
                           "into a virtual environment (pip install forewarn) rather than importing it from a zip")
    return folder


BUNDLED_CONFIG = _bundled_config()
"""The config shipped inside the package: default.yaml, the example production configs and the templates."""


class OutreachSettings(_Section):
    templates: Path = BUNDLED_CONFIG / "templates"
    channels: tuple[Channel, ...] = ("sms", "email")
    max_audience: int = Field(10_000, ge=1)
    max_warnings_per_day: int | None = Field(None, ge=1)
    """At most this many warnings per customer in 24 hours (all-clears are not counted); None: no cap."""
    max_warnings_per_week: int | None = Field(None, ge=1)
    """At most this many warnings per customer in 7 days, across incidents; None: no weekly budget."""
    budget_bypass_severity: SeverityLevel | None = "critical"
    """Incidents of this severity or worse pass the budget (safety messages); None: nothing passes."""
    quiet_hours: tuple[time, time] | None = None
    """Customers' local [start, end) without SMS, e.g. ["21:00", "08:00"]: an SMS decided then waits for the
    end of the recipient's night (emails go at once: they wait in the inbox)."""
    urgent_topics: tuple[str, ...] = ()
    """Topics whose messages go at once even in quiet hours (safety: a gas leak, a 911 outage)."""
    urgent_hazard_rank: int = Field(3, ge=0, le=4)
    """Hazard warnings at or above this rank (CAP severity × urgency × certainty, 0-4) go at once even in
    quiet hours."""
    topic_labels: dict[str, str] = Field(default_factory=lambda: dict(_TOPIC_LABELS))
    """The company's words for each topic in customer messages; an incident on a topic without a
    label is held for a responder (a case's topic string never reaches a customer)."""

    @field_validator("topic_labels")
    @classmethod
    def _plain_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for topic, label in labels.items():
            if not _LABEL.fullmatch(label) or sum(ch.isdigit() for ch in label) > 4:
                raise ValueError(f"topic label {label!r} for {topic!r} is not plain words: use 1-40 letters, "
                                 "digits (at most 4), spaces and - ' & ( ), e.g. no_internet: internet")
        return labels


class PlaybookRule(_Section):
    """One row of the playbook: an empty list matches any level."""

    severity: tuple[SeverityLevel, ...] = ()
    reach: tuple[ReachLevel, ...] = ()
    tier: Tier


_DEFAULT_RULES = (
    PlaybookRule(severity=("critical",), tier="broadcast"),
    PlaybookRule(severity=("high",), reach=("widespread",), tier="broadcast"),
    PlaybookRule(severity=("high",), tier="notify"),
    PlaybookRule(severity=("moderate",), reach=("few", "local", "regional"), tier="notify"),
    PlaybookRule(severity=("moderate",), tier="publish"),
    PlaybookRule(severity=("low",), reach=("few",), tier="observe"),
    PlaybookRule(tier="publish"),
)


class InhibitRule(_Section):
    """An open incident on a `source` topic mutes new incidents on the `target` topics that share the
    labels named in `equal` (a regional outage explains its region's Wi-Fi drops)."""

    source_topics: tuple[str, ...] = Field(min_length=1)
    target_topics: tuple[str, ...] = Field(min_length=1)
    equal: tuple[str, ...] = ("region",)


class PlaybookSettings(_Section):
    """Severity × reach → tier, and which tiers wait for an operator."""

    rules: tuple[PlaybookRule, ...] = _DEFAULT_RULES
    """First match wins; the last rule should match anything."""
    approval_from: Tier | None = "broadcast"
    """Tiers at or above this wait for `forewarn approve`; None: nothing waits."""
    topic_criticality: dict[str, SeverityLevel] = Field(default_factory=dict)
    """A floor for a topic's severity (e.g. no_internet: high; a 911 outage: critical)."""
    local_from: int = Field(50, ge=1)
    """An audience of fewer customers is `few`."""
    regional_share: float = Field(0.02, gt=0, le=1)
    """An audience of at least this share of the customer base, or in more than one region, is `regional`."""
    widespread_share: float = Field(0.15, gt=0, le=1)
    """At least this share of the base is `widespread` (a narrow segment spread over many regions is not:
    it is `regional`)."""
    holdout_share: float = Field(0.1, ge=0, le=0.5)
    """This share of each messaging incident's audience (deterministic by customer and incident) is recorded but
    not messaged, to measure the calls warnings save (`forewarn effect`); never for critical severity or urgent
    topics. 0: nobody is held out."""
    inhibit: tuple[InhibitRule, ...] = (
        InhibitRule(source_topics=("no_internet",), target_topics=("wifi_drops", "slow_speed")),)
    """A regional outage explains the Wi-Fi and speed complaints of its region: they wait for it."""

    @model_validator(mode="after")
    def _catch_all(self) -> PlaybookSettings:
        last = self.rules[-1] if self.rules else None
        if last is None or last.severity or last.reach:
            raise ValueError("playbook.rules must end with a rule for any severity and reach (e.g. "
                             "{tier: publish}), so every incident gets a tier")
        if self.widespread_share < self.regional_share:
            raise ValueError("playbook.widespread_share must be at least playbook.regional_share")
        return self


class KafkaTopics(_Section):
    cases: str = "cases"
    telemetry: str = "telemetry"
    dead_letters: str = "dead-letters"
    incidents: str = "incidents"
    alerts: str = "alerts"
    """CAP XML or NWS GeoJSON hazard alerts; read only when a `hazards` section is configured."""
    customers: str | None = "customers"
    """Customer upserts into the index (the same records as `forewarn customers load`); null: not read."""


class KafkaSettings(_Section):
    brokers: list[str] = Field(min_length=1)
    topics: KafkaTopics = KafkaTopics()
    tail: bool = True
    batch_size: int = Field(1000, ge=1)
    connect_timeout: timedelta = timedelta(seconds=10)
    idle_poll: timedelta = timedelta(milliseconds=100)
    """How long a quiet input partition sleeps between polls (not while records flow)."""
    extra: dict[str, str] = Field(default_factory=dict)

    _durations = field_validator("connect_timeout", "idle_poll", mode="before")(rules.positive_duration)

    @field_validator("brokers")
    @classmethod
    def _broker_addresses(cls, brokers: list[str]) -> list[str]:
        return [rules.broker_address(b) for b in brokers]


class RedisSettings(_Section):
    url: str = "redis://localhost:6379/0"
    prefix: str = Field("fw", min_length=1)
    cluster: bool = False
    """`url` names a node of a Redis Cluster (any one: the client discovers the others)."""

    _url = field_validator("url")(rules.redis_url)

    @model_validator(mode="after")
    def _cluster_fits(self) -> RedisSettings:
        if self.cluster:  # an error here is reported at `redis`, so the message names the key
            for key, rule, value in (("url", rules.redis_cluster_url, self.url),
                                     ("prefix", rules.redis_cluster_prefix, self.prefix)):
                try:
                    rule(value)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return self


class SmsSettings(_Section):
    provider: Literal["twilio"] = "twilio"
    from_number: str | None = None
    messaging_service_sid: str | None = None
    base_url: str | None = None
    price_per_segment: float = Field(0.0083, ge=0)
    """What one SMS segment costs (USD at Twilio's US list price), for audience previews."""
    rate_per_second: float | None = Field(None, gt=0)
    """Messages per second from this sender identity, shared by every worker: a US long code sends 1,
    toll-free 3, a short code or a messaging service more. None: as fast as the provider takes them."""

    _from_number = field_validator("from_number")(rules.unless_none(rules.e164_number))
    _service = field_validator("messaging_service_sid")(rules.unless_none(rules.messaging_service_sid))
    _base_url = field_validator("base_url")(rules.unless_none(rules.http_url))

    @model_validator(mode="after")
    def _one_sender_id(self) -> SmsSettings:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of sms.from_number or sms.messaging_service_sid")
        return self


class EmailSettings(_Section):
    host: str
    port: int = 587
    from_addr: str
    starttls: bool = True
    username: str | None = None
    timeout: timedelta = timedelta(seconds=10)
    rate_per_second: float | None = Field(None, gt=0)
    """Messages per second through this relay, shared by every worker; None: no limit."""

    _durations = field_validator("timeout", mode="before")(rules.positive_duration)
    _host = field_validator("host")(rules.hostname)
    _port = field_validator("port")(rules.tcp_port)
    _from_addr = field_validator("from_addr")(rules.email_address)


class DeliverySettings(_Section):
    """The outbox and its workers (`forewarn deliver`): how messages are paced, retried and given up."""

    deadline: timedelta = timedelta(hours=6)
    """A message not accepted by a provider this long after it was decided is recorded "expired"."""
    backoff: timedelta = timedelta(seconds=1)
    """The first retry's wait; doubled each retry (full jitter), at least what the provider's Retry-After asks."""
    max_backoff: timedelta = timedelta(minutes=5)
    reclaim_after: timedelta = timedelta(seconds=60)
    """A message a worker took and left unsettled this long (it crashed) is taken by another worker."""
    breaker_failures: int = Field(5, ge=1)
    """Retryable failures in a row that open a channel's circuit breaker (its messages wait, none are lost)."""
    breaker_cooldown: timedelta = timedelta(seconds=30)
    """How long an open breaker waits before one probe message tries the provider again."""
    concurrency: dict[Channel, int] = Field(default_factory=lambda: dict[Channel, int]({"sms": 16, "email": 8}))
    """Sends in flight at once per channel and worker: a slow provider never holds up the other channel."""
    shards: int = Field(1, ge=1, le=1024)
    """Outbox streams per channel; incidents are spread over them by id (raise it on Redis Cluster)."""
    batch: int = Field(100, ge=1, le=10_000)
    """Messages a worker takes from a stream at once."""

    _durations = field_validator("deadline", "backoff", "max_backoff", "reclaim_after", "breaker_cooldown",
                                 mode="before")(rules.positive_duration)

    @field_validator("concurrency")
    @classmethod
    def _positive(cls, concurrency: dict[Channel, int]) -> dict[Channel, int]:
        for channel, n in concurrency.items():
            if n < 1:
                raise ValueError(f"concurrency of {channel} must be at least 1, got {n}")
        return concurrency


class WebSettings(_Section):
    """The web app (`forewarn web`): Twilio status callbacks and inbound messages, unsubscribe links."""

    public_url: str | None = None
    """The address the world reaches the web app at, e.g. https://forewarn.example.com: Twilio posts
    status callbacks and inbound messages there, and email unsubscribe links point there. None: no
    callbacks are asked for and emails carry no unsubscribe link."""
    host: str = "127.0.0.1"
    port: int = 8080
    help_text: str = ("Service alerts from your provider. Reply STOP to stop texts, START to resume. "
                      "Msg&data rates may apply.")
    """The answer to an inbound HELP."""

    _public_url = field_validator("public_url")(rules.unless_none(rules.http_url))
    _port = field_validator("port")(rules.tcp_port)


class PagerDutySettings(_Section):
    """PagerDuty Events API v2; the routing key (integration key) is the secret FOREWARN_PAGERDUTY_ROUTING_KEY."""

    url: str = "https://events.pagerduty.com/v2/enqueue"

    _url = field_validator("url")(rules.http_url)


class SlackSettings(_Section):
    """A Slack incoming webhook; its URL is the secret FOREWARN_SLACK_WEBHOOK_URL."""

    enabled: bool = True


class RespondersSettings(_Section):
    """Who is told first and at every stage of an incident, through the delivery workers."""

    pagerduty: PagerDutySettings | None = None
    slack: SlackSettings | None = None
    deadline: timedelta = timedelta(hours=1)
    """How long a responder notification is worth retrying."""
    config_hint: str = "-c CONFIG"
    """How the approve command in a notification names the config, e.g. "-c /etc/forewarn/production.yaml"."""

    _deadline = field_validator("deadline", mode="before")(_duration)


class RecoverySettings(_Section):
    """Bytewax recovery: snapshots of the flow's state and input offsets, so a restart resumes."""

    directory: Path
    """Made and initialised by `forewarn run` when missing or empty (relative: to the working directory)."""
    snapshot_interval: timedelta = timedelta(seconds=30)
    """How often the cluster snapshots; a restart replays at most about this much input."""
    backup_interval: timedelta = timedelta(0)
    """How long superseded snapshots are kept (set it above the lag of a backup of the directory)."""
    partitions: int | None = Field(None, ge=1)
    """Partitions made when the directory is initialised, fixed from then on: at least the most workers
    (processes × workers per process) you will ever run. None: the workers of the first run."""

    _snapshots = field_validator("snapshot_interval", mode="before")(rules.positive_duration)
    _durations = field_validator("backup_interval", mode="before")(_duration)


class ObservabilitySettings(_Section):
    """The flow process's HTTP endpoint (/metrics, /healthz, /readyz) and its log lines."""

    metrics_port: int | None = None
    """Where /metrics, /healthz and /readyz listen, e.g. 9464; 0 or null: no endpoint. With several flow
    processes on one machine (-i/-a), process i listens on metrics_port + i."""
    host: str = "127.0.0.1"
    """The address to listen on: 127.0.0.1 for a local Prometheus, 0.0.0.0 inside a container."""
    log_format: Literal["text", "json"] = "text"
    """Log lines as text or as one JSON object each; FOREWARN_LOG_FORMAT=json|text overrides it."""

    _port = field_validator("metrics_port")(rules.listen_port)
    _host = field_validator("host")(rules.listen_host)


class HazardRuleSettings(_Section):
    """Which customers an event type matters to (see outreach.hazards.HazardRule)."""

    events: list[str] = Field(min_length=1)
    min_rank: int = Field(2, ge=0, le=4)
    require: dict[str, str] = Field(default_factory=dict)


class NwsPollSettings(_Section):
    """Poll api.weather.gov for active alerts (besides, or instead of, the alerts topic)."""

    user_agent: str
    """The NWS asks for the application and a contact, e.g. "forewarn (ops@example.com)"."""
    url: str = "https://api.weather.gov/alerts/active"
    interval: timedelta = timedelta(seconds=60)

    _durations = field_validator("interval", mode="before")(rules.positive_duration)
    _url = field_validator("url")(rules.http_url)

    @field_validator("user_agent")
    @classmethod
    def _contact(cls, agent: str) -> str:
        if not agent.strip():
            raise ValueError("is empty: the NWS asks for the application and a contact, "
                             "e.g. \"forewarn (ops@example.com)\"")
        return agent


class HazardSettings(_Section):
    """Forecast-driven warnings from weather and hazard alerts."""

    region_format: Literal["fips", "state-county"] = "state-county"
    """How the customer index writes county regions: "48453" or "TX-453"."""
    rules: list[HazardRuleSettings] = Field(default_factory=list)
    poll: NwsPollSettings | None = None


class Settings(_Section):
    """The whole configuration of a flow."""

    detection: DetectionSettings = DetectionSettings()
    incidents: IncidentSettings = IncidentSettings()
    targeting: TargetingSettings = TargetingSettings()
    outreach: OutreachSettings = OutreachSettings()
    playbook: PlaybookSettings = PlaybookSettings()
    kafka: KafkaSettings | None = None
    redis: RedisSettings | None = None
    sms: SmsSettings | None = None
    email: EmailSettings | None = None
    recovery: RecoverySettings | None = None
    hazards: HazardSettings | None = None
    observability: ObservabilitySettings = ObservabilitySettings()
    delivery: DeliverySettings = DeliverySettings()
    web: WebSettings = WebSettings()
    responders: RespondersSettings = RespondersSettings()
    max_record_bytes: int = Field(64 * 1024, ge=256)

    def require_production(self, flow: bool = True) -> None:
        """Cross-check what `forewarn run` (`flow`) or `forewarn deliver` needs; raise ConfigError naming each gap."""
        problems = []
        if self.kafka is None and flow:
            problems.append("kafka: missing; add kafka.brokers, e.g. [localhost:9092]")
        if self.redis is None:
            problems.append("redis: missing; add redis.url, e.g. redis://localhost:6379/0")
        for channel in self.outreach.channels:
            if getattr(self, channel) is None:
                problems.append(f"{channel}: outreach.channels lists {channel} but the {channel} section is "
                                f"missing; add it or remove {channel} from outreach.channels")
        if problems:
            command = "forewarn run" if flow else "forewarn deliver"
            raise ConfigError(f"configuration is incomplete for `{command}`:\n  " + "\n  ".join(problems))


class Secrets(BaseSettings):
    """Secrets come only from the environment (or a .env file), never from committed YAML."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    twilio_account_sid: SecretStr | None = None
    twilio_auth_token: SecretStr | None = None
    smtp_password: SecretStr | None = None
    forewarn_redis_url: SecretStr | None = None
    forewarn_unsubscribe_secret: SecretStr | None = None
    """Signs email unsubscribe links (any long random string; rotating it voids the links already sent)."""
    forewarn_pagerduty_routing_key: SecretStr | None = None
    forewarn_slack_webhook_url: SecretStr | None = None


def load_settings(path: Path | None) -> Settings:
    """Load and validate a YAML configuration; None gives the embedded defaults."""
    if path is None:
        return Settings()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found: pass -c with an existing file, "
                          "e.g. config/production.example.yaml") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections at the top level")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e["loc"], e["type"], e["msg"]) for e in exc.errors(include_url=False)]
        raise ConfigError(f"config file {path} has {len(lines)} problem(s):\n  " + "\n  ".join(lines)) from None
    templates = _templates_folder(settings.outreach.templates, path)
    return settings.model_copy(update={"outreach": settings.outreach.model_copy(update={"templates": templates})})


def _templates_folder(templates: Path, config: Path) -> Path:
    """The templates folder, checked now: a missing one used to surface as a traceback at the first send."""
    looked = [templates.resolve()]
    if not templates.is_absolute() and not templates.is_dir():
        # A relative folder is read from the working directory, else beside the config file's folder.
        looked.append(config.resolve().parent.parent / templates)
    for folder in looked:
        if folder.is_dir():
            return templates if folder == looked[0] else folder
    raise ConfigError(f"config file {config} has 1 problem(s):\n  outreach.templates: folder {templates} does not "
                      f"exist (looked at {' and '.join(map(str, looked))}): point it at the folder of *.j2 "
                      f"templates, e.g. {BUNDLED_CONFIG / 'templates'}")


REPLACED_KEYS = {
    "detection.rarity": "replaced by detection.rarity_runs (how many of a key's runs over rarity_memory may have "
                        "fired as strongly, 8 by default; null turns the topics' gate off): remove it",
}
"""Keys an earlier version read, and what to do about each."""


def _describe(loc: tuple[int | str, ...], kind: str, message: str) -> str:
    """One problem as `path: what is wrong`, listing the valid keys for an unknown one."""
    where = ".".join(str(p) for p in loc)
    if kind != "extra_forbidden":
        return f"{where}: {message.removeprefix('Value error, ')}"
    if where in REPLACED_KEYS:
        return f"{where}: {REPLACED_KEYS[where]}"
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        annotation = field.annotation if field else None
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        model = next((a for a in candidates if issubclass(a, BaseModel)), None)
    valid = ", ".join(model.model_fields) if model else "see config/default.yaml"
    return f"{where}: unknown key (a typo?); valid keys here: {valid}"
