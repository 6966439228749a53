"""Configuration is validated on load: one failing config per rule, each naming what to fix."""

from __future__ import annotations

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
