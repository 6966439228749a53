"""Configuration is validated on load: one failing config per rule, each naming what to fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from forewarn.settings import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("targeting:\n  extra_traits: [tier, 'battery backup']\n",
     "targeting.extra_traits: 'battery backup' is not a field name"),
    ("targeting:\n  extra_traits: [phone]\n", "'phone' is a built-in field of a customer or product"),
    ("targeting:\n  extra_traits: [lot]\n", "'lot' is a built-in field"),
    ("targeting:\n  extra_traits: [tier, tier]\n", "a field is named twice"),
    ("targeting:\n  extra_trait: [tier]\n", "targeting.extra_trait: unknown key (a typo?); valid keys here:"),
])
def test_bad_extra_traits_fail_on_load(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, yaml_text))
    assert message in str(caught.value)


def test_extra_traits_load(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "targeting:\n  extra_traits: [tier, battery_backup]\n"))
    assert settings.targeting.extra_traits == ("tier", "battery_backup")
    assert load_settings(None).targeting.extra_traits == ()


def test_the_delivery_and_web_sections_have_working_defaults() -> None:
    settings = load_settings(None)
    d = settings.delivery
    assert d.deadline > d.max_backoff >= d.backoff > timedelta(0)  # several tries before a message expires
    assert d.shards == 1 and set(d.concurrency) == {"sms", "email"} and min(d.concurrency.values()) >= 1
    assert settings.web.public_url is None  # no callbacks asked for, no unsubscribe links, until it is set
    assert settings.outreach.urgent_topics == () and settings.outreach.urgent_hazard_rank == 3


def test_the_flow_needs_kafka_and_a_delivery_worker_does_not(tmp_path: Path) -> None:
    worker_only = load_settings(write(tmp_path, "redis: {url: 'redis://localhost:6379/0'}\n"
                                               "sms: {from_number: '+15125550199'}\n"
                                               "email: {host: smtp.example.com, from_addr: a@example.com}\n"))
    worker_only.require_production(flow=False)
    with pytest.raises(ConfigError, match=r"incomplete for `forewarn run`:\n  kafka: missing"):
        worker_only.require_production()
    no_email = load_settings(write(tmp_path, "redis: {url: 'redis://localhost:6379/0'}\n"
                                             "sms: {from_number: '+15125550199'}\n"))
    for flow, command in ((True, "forewarn run"), (False, "forewarn deliver")):
        with pytest.raises(ConfigError) as caught:
            no_email.require_production(flow=flow)
        assert f"incomplete for `{command}`" in str(caught.value)
        assert "email: outreach.channels lists email but the email section is missing" in str(caught.value)
