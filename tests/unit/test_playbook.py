"""Severity and reach are judged apart, each with its reasons; the playbook turns the pair into a tier."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from forewarn.decisions import Decision
from forewarn.outreach.playbook import approval_for, assess_reach, assess_severity, decide, inhibitor, tier_for
from forewarn.records import Incident
from forewarn.settings import ConfigError, InhibitRule, PlaybookRule, PlaybookSettings, load_settings

T = datetime(2026, 11, 20, 14, tzinfo=UTC)
DEFAULT = PlaybookSettings()


def incident(observed: int = 36, expected: float = 0.4, topic: str = "no_internet", region: str = "TX-453",
             signals: frozenset[str] = frozenset(), id_: str = "INC-1") -> Incident:
    return Incident(id_, topic, region, "opened", T, T, T, observed, expected, 1, observed, signals=signals)


@pytest.mark.parametrize(("observed", "expected", "signals", "level"), [
    (4, 2.0, frozenset(), "low"),  # twice the usual, could be luck
    (12, 3.0, frozenset(), "low"),  # 4x, but a tail of ~1e-4: clear, not extreme
    (40, 7.5, frozenset(), "moderate"),  # 5x and no luck could do it
    (36, 0.4, frozenset(), "high"),  # 90x, no luck
    (36, 0.4, frozenset({"no_internet", "telemetry.wan_down"}), "critical"),  # and the devices agree
])
def test_severity_grows_with_the_evidence(observed: int, expected: float, signals: frozenset[str], level: str) -> None:
    assessed = assess_severity(incident(observed, expected, signals=signals), DEFAULT)
    assert assessed.level == level, assessed.reasons
    assert assessed.reasons[0].startswith(f"{observed} cases against {expected:.1f} expected")


def test_a_topics_criticality_is_a_floor_not_a_ceiling() -> None:
    settings = PlaybookSettings(topic_criticality={"no_internet": "high"})
    weak = assess_severity(incident(4, 2.0), settings)
    assert weak.level == "high" and "no_internet is configured high" in weak.reasons[-1]
    strong = assess_severity(incident(36, 0.4, signals=frozenset({"a", "telemetry.x"})), settings)
    assert strong.level == "critical"


@pytest.mark.parametrize(("touched", "regions", "level"), [
    (12, 1, "few"), (370, 1, "local"), (500, 1, "regional"), (120, 3, "regional"), (1_700, 50, "regional"),
    (3_000, 50, "widespread"),
])
def test_reach_from_the_audience_its_share_and_its_regions(touched: int, regions: int, level: str) -> None:
    reach = assess_reach(touched, regions, base=20_000, settings=DEFAULT)
    assert reach.level == level
    assert reach.reasons[0].startswith(f"{touched} customers (")


@pytest.mark.parametrize(("severity", "reach", "tier"), [
    ("critical", "few", "broadcast"), ("high", "widespread", "broadcast"), ("high", "local", "notify"),
    ("moderate", "regional", "notify"), ("moderate", "widespread", "publish"), ("low", "few", "observe"),
    ("low", "regional", "publish"),
])
def test_the_default_playbook(severity: str, reach: str, tier: str) -> None:
    assert tier_for(severity, reach, DEFAULT) == tier


def test_tiers_at_or_above_the_approval_level_wait_for_an_operator() -> None:
    assert [approval_for(t, DEFAULT) for t in ("observe", "publish", "notify", "broadcast")] == \
        ["not_needed", "not_needed", "not_needed", "pending"]
    everything = PlaybookSettings(approval_from="observe")
    assert approval_for("observe", everything) == "pending"
    assert approval_for("broadcast", PlaybookSettings(approval_from=None)) == "not_needed"


def test_a_playbook_without_a_catch_all_rule_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end with a rule for any severity and reach"):
        PlaybookSettings(rules=(PlaybookRule(severity=("high",), tier="notify"),))
    config = tmp_path / "c.yaml"
    config.write_text("playbook: {rules: [{severity: [high], tier: notify}]}\n")
    with pytest.raises(ConfigError, match=r"playbook.*any severity and reach \(e.g. \{tier: publish\}\)"):
        load_settings(config)
    config.write_text("playbook: {rules: [{tier: loud}]}\n")
    with pytest.raises(ConfigError, match=r"playbook.rules.0.tier"):
        load_settings(config)


def _open(topic: str, region: str, id_: str) -> Decision:
    return decide(incident(topic=topic, region=region, id_=id_), touched=100, regions=1, base=20_000,
                  settings=DEFAULT, at=T)


def test_an_open_outage_inhibits_the_wifi_drops_of_its_own_region_only() -> None:
    rule = InhibitRule(source_topics=("no_internet",), target_topics=("wifi_drops", "slow_speed"))
    outage = _open("no_internet", "TX-453", "INC-OUT")
    here = {"incident": "INC-W1", "topic": "wifi_drops", "region": "TX-453"}
    elsewhere = {"incident": "INC-W2", "topic": "wifi_drops", "region": "CA-037"}
    other_topic = {"incident": "INC-B", "topic": "billing", "region": "TX-453"}
    assert inhibitor(here, [outage], [rule]) == outage
    assert inhibitor(elsewhere, [outage], [rule]) is None
    assert inhibitor(other_topic, [outage], [rule]) is None
    assert inhibitor({"incident": "INC-OUT", "topic": "no_internet", "region": "TX-453"}, [outage], [rule]) is None


def test_decide_records_everything_an_operator_needs() -> None:
    decision = decide(incident(), touched=370, regions=1, base=20_000, settings=DEFAULT, at=T)
    assert (decision.severity, decision.reach, decision.tier, decision.approval) == ("high", "local", "notify",
                                                                                     "not_needed")
    assert decision.messages_customers and decision.muted is None
    assert dict(decision.labels) == {"incident": "INC-1", "topic": "no_internet", "region": "TX-453"}
    assert Decision.from_json(decision.to_json()) == decision
