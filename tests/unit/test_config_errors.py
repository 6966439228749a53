"""Issue 9: every broken value is refused on load, naming the key and the fix (one fixture per rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forewarn.settings import ConfigError, load_settings

EMAIL = "email: {host: smtp.example.com, from_addr: alerts@example.com, %s}\n"
SMS = "sms: {%s}\n"

BROKEN = [
    # (YAML, the key path named, the fix offered)
    ("redis: {url: 'http://localhost:6379/0'}\n", "redis.url:", "redis://host:6379/0"),
    ("redis: {url: 'localhost:6379'}\n", "redis.url:", "redis://host:6379/0"),
    ("redis: {url: 'redis://'}\n", "redis.url:", "names no host"),
    ("redis: {url: 'redis://localhost:99999/0'}\n", "redis.url:", "1 to 65535"),
    ("redis: {url: 'unix://'}\n", "redis.url:", "unix:///path/to/redis.sock"),
    ("redis: {url: 'redis://localhost/0', prefix: ''}\n", "redis.prefix:", "at least 1 character"),
    ("kafka: {brokers: [localhost]}\n", "kafka.brokers:", "host:port"),
    ("kafka: {brokers: ['localhost:0']}\n", "kafka.brokers:", "kafka-1.internal:9092"),
    ("kafka: {brokers: ['localhost:9092'], connect_timeout: 0s}\n", "kafka.connect_timeout:", "must be positive"),
    ("kafka: {brokers: ['localhost:9092'], connect_timeout: -5s}\n", "kafka.connect_timeout:", "must be positive"),
    (SMS % "from_number: hello", "sms.from_number:", "E.164"),
    (SMS % "from_number: '+1512555'", "sms.from_number:", "E.164"),
    (SMS % "from_number: '+1 512 555 0199'", "sms.from_number:", "write +15125550199"),
    (SMS % "messaging_service_sid: PN123", "sms.messaging_service_sid:", "MG and 32 hex digits"),
    (SMS % "from_number: '+15125550199', base_url: not a url", "sms.base_url:", "https://"),
    (SMS % "from_number: '+15125550199', base_url: 'ftp://example.com'", "sms.base_url:", "https://"),
    (EMAIL % "port: 70000", "email.port:", "1 to 65535"),
    (EMAIL % "port: 0", "email.port:", "1 to 65535"),
    ("email: {host: smtp.example.com, from_addr: alerts}\n", "email.from_addr:", "alerts@example.com"),
    ("email: {host: smtp.example.com, from_addr: 'Ops <ops@example.com>'}\n", "email.from_addr:",
     "alerts@example.com"),
    ("email: {host: 'smtp.example.com:25', from_addr: alerts@example.com}\n", "email.host:", "its own key"),
    (EMAIL % "timeout: 0s", "email.timeout:", "must be positive"),
    (EMAIL % "timeout: -10s", "email.timeout:", "must be positive"),
    ("recovery: {directory: rec, snapshot_interval: 0s}\n", "recovery.snapshot_interval:", "must be positive"),
    ("recovery: {directory: rec, backup_interval: -1m}\n", "recovery.backup_interval:", "must be positive"),
    ("hazards: {poll: {user_agent: 'fw (ops@example.com)', interval: 0s}}\n", "hazards.poll.interval:",
     "must be positive"),
    ("hazards: {poll: {user_agent: 'fw (ops@example.com)', url: api.weather.gov}}\n", "hazards.poll.url:",
     "https://"),
    ("hazards: {poll: {user_agent: ' '}}\n", "hazards.poll.user_agent:", "ops@example.com"),
    ("detection: {window: -1h}\n", "detection.window:", "must be positive"),
    ("outreach: {templates: /nonexistent/forewarn-templates}\n", "outreach.templates:", "*.j2 templates"),
    ("outreach: {templates: no-such-templates}\n", "outreach.templates:", "*.j2 templates"),
    ("outreach: {urgent_hazard_rank: 5}\n", "outreach.urgent_hazard_rank:", "less than or equal to 4"),
    # issue 11: retries are the delivery workers' now (delivery.backoff, delivery.deadline)
    ("outreach: {retry_attempts: 3}\n", "outreach.retry_attempts:", "unknown key"),
    ("outreach: {retry_backoff: 500ms}\n", "outreach.retry_backoff:", "unknown key"),
    # issue 13: the topics' gate counts runs now
    ("detection: {rarity: 0.01}\n", "detection.rarity:", "replaced by detection.rarity_runs"),
    ("detection: {rarity_runs: 0}\n", "detection.rarity_runs:", "greater than or equal to 1"),
    ("delivery: {deadline: 0s}\n", "delivery.deadline:", "must be positive"),
    ("delivery: {backoff: -1s}\n", "delivery.backoff:", "must be positive"),
    ("delivery: {reclaim_after: 0s}\n", "delivery.reclaim_after:", "must be positive"),
    ("delivery: {breaker_cooldown: 0s}\n", "delivery.breaker_cooldown:", "must be positive"),
    ("delivery: {concurrency: {sms: 0}}\n", "delivery.concurrency:", "at least 1"),
    ("delivery: {concurrency: {fax: 2}}\n", "delivery.concurrency", "'sms' or 'email'"),
    ("delivery: {shards: 0}\n", "delivery.shards:", "greater than or equal to 1"),
    ("web: {public_url: forewarn.example.com}\n", "web.public_url:", "https://"),
    ("web: {port: 70000}\n", "web.port:", "1 to 65535"),
    (SMS % "from_number: '+15125550199', rate_per_second: 0", "sms.rate_per_second:", "greater than 0"),
    (EMAIL % "rate_per_second: -1", "email.rate_per_second:", "greater than 0"),
]


@pytest.mark.parametrize(("yaml_text", "key", "fix"), BROKEN, ids=[f"{k}{f}" for _, k, f in BROKEN])
def test_a_broken_value_is_refused_naming_the_key_and_the_fix(
    tmp_path: Path, yaml_text: str, key: str, fix: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert f"\n  {key}" in message, message
    assert fix in message, message


def test_negative_durations_are_called_negative_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("kafka: {brokers: ['localhost:9092'], connect_timeout: -5s}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "not understood" not in str(caught.value)


GOOD = [
    "redis: {url: 'rediss://user:pw@redis.internal:6380/2'}\n",
    "redis: {url: 'unix:///run/redis.sock'}\n",
    "kafka: {brokers: ['k1:9092', '[::1]:9093'], connect_timeout: 2s}\n",
    SMS % "from_number: '+15005550006', base_url: 'http://127.0.0.1:8080'",
    SMS % f"messaging_service_sid: MG{'a' * 32}",
    EMAIL % "port: 465, username: forewarn",
    "recovery: {directory: rec, backup_interval: 0s}\n",
    "hazards: {poll: {user_agent: 'fw (ops@example.com)'}}\n",
    "delivery: {deadline: 6h, backoff: 2s, max_backoff: 1m, concurrency: {sms: 4, email: 2}, shards: 8}\n",
    "web: {public_url: 'https://forewarn.example.com', port: 8080}\n",
    SMS % "from_number: '+15125550199', rate_per_second: 1",
    EMAIL % "rate_per_second: 0.5",
    "outreach: {urgent_topics: [gas_leak], urgent_hazard_rank: 4, quiet_hours: ['21:00', '08:00']}\n",
]


@pytest.mark.parametrize("yaml_text", GOOD)
def test_good_values_still_load(tmp_path: Path, yaml_text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    load_settings(path)


def test_a_relative_templates_folder_beside_the_config_folder_is_found(tmp_path: Path) -> None:
    (tmp_path / "mine" / "templates").mkdir(parents=True)
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "config.yaml"
    path.write_text("outreach: {templates: mine/templates}\n")
    assert load_settings(path).outreach.templates == (tmp_path / "mine" / "templates").resolve()
