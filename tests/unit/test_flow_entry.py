"""The entry point for Bytewax's own runner sits above the flow and its edges (no import cycle)."""

from __future__ import annotations

import pytest

from forewarn.flows import early_warning, live
from forewarn.settings import BUNDLED_CONFIG, ConfigError


def test_get_flow_is_served_by_the_live_module_and_checks_the_config_first() -> None:
    assert not hasattr(early_warning, "get_flow"), "early_warning wires the flow; it builds no edges"
    # Refused on the settings alone (no broker is running here): `kafka` and `redis` are missing.
    with pytest.raises(ConfigError, match=r"incomplete for `forewarn run`:\n  kafka: missing(.|\n)*redis: missing"):
        live.get_flow(str(BUNDLED_CONFIG / "default.yaml"))  # the embedded demo config is not a production one
