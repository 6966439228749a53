"""The bundled English SMS templates fit one GSM-7 segment (160 characters) with long values.

Every extra segment is billed: a warning sent to 100,000 customers in two segments costs twice
as much. `forewarn audience` prints the segment count of a message before anything is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from forewarn.connectors.sms import sms_segments
from forewarn.connectors.templates import JinjaRenderer
from forewarn.localtime import LocalTime
from forewarn.settings import BUNDLED_CONFIG

# The longest values seen in practice: a 21-character local time, a 28-character NWS event.
WHEN = LocalTime(datetime(2026, 11, 30, 21, 45, tzinfo=UTC), "America/Anchorage", "en")
INCIDENT = {"topic_label": "slow speeds at peak", "region": "TX-453", "since_local": WHEN, "resolved_local": WHEN,
            "segment": {"model": "AX6000", "firmware": "10.2.11"}, "language": "en"}
HAZARD = {"event": "Hurricane Force Wind Warning", "expires_local": WHEN, "language": "en"}


@pytest.mark.parametrize(("topic", "kind", "family", "context"), [
    ("default", "warning", "default", INCIDENT),
    ("no_internet", "warning", "default", INCIDENT),
    ("wifi_drops", "warning", "default", INCIDENT),
    ("default", "resolved", "default", INCIDENT),
    ("hazard", "warning", "hazard", HAZARD),
    ("hazard", "resolved", "hazard", HAZARD),
])
def test_english_sms_fits_one_segment(topic: str, kind: str, family: str, context: dict[str, object]) -> None:
    assert str(WHEN) == "12:45 PM AKST, Nov 30"
    renderer = JinjaRenderer(BUNDLED_CONFIG / "templates")
    body = renderer.render(topic, kind, "sms", context, family=family).body  # type: ignore[arg-type]
    assert sms_segments(body) == ("GSM-7", 1), (len(body), body)
    assert body.endswith("Reply STOP to opt out.")


@pytest.mark.parametrize("config", ["default.yaml", "production.example.yaml", "compose.yaml"])
def test_each_bundled_config_labels_every_topic_with_templates_and_the_demos(config: str) -> None:
    """A topic without a label is held, so the topics that have templates of their own and the
    demo's topics must all carry one, and each fits the SMS in one segment."""
    from forewarn.demo.scenario_data import TOPIC_SHARES
    from forewarn.settings import load_settings

    labels = load_settings(BUNDLED_CONFIG / config).outreach.topic_labels
    own_templates = {p.name.split(".")[0] for p in (BUNDLED_CONFIG / "templates").glob("*.j2")} - {"default", "hazard"}
    assert own_templates | {topic for topic, _ in TOPIC_SHARES} <= set(labels)
    renderer = JinjaRenderer(BUNDLED_CONFIG / "templates")
    for label in labels.values():
        for kind in ("warning", "resolved"):
            body = renderer.render("default", kind, "sms", {**INCIDENT, "topic_label": label}).body  # type: ignore[arg-type]
            assert sms_segments(body) == ("GSM-7", 1), (len(body), body)
