"""Severity × reach → tier: how bad a problem is and how many it touches, judged apart, then the playbook.

Severity reads the evidence of the incident itself: how far the count is above what was expected and
how improbable that is, how many kinds of signal joined (cases, device telemetry), and a configured
floor per topic (`playbook.topic_criticality`). Reach reads the audience: how many customers it
touches, what share of the customer base, how many regions. Each comes with its reasons in words,
so an operator sees why. The playbook's rules (first match wins) turn the pair into a tier.

>>> from datetime import UTC, datetime
>>> from forewarn.records import Incident
>>> from forewarn.settings import PlaybookSettings
>>> t = datetime(2026, 11, 17, 14, tzinfo=UTC)
>>> outage = Incident("INC-1", "no_internet", "NY-081", "opened", t, t, t, 36, 0.4, 1, 36)
>>> severity = assess_severity(outage, PlaybookSettings())
>>> severity.level, severity.reasons[0]
('high', '36 cases against 0.4 expected (90x)')
>>> reach = assess_reach(touched=370, regions=1, base=20_000, settings=PlaybookSettings())
>>> reach.level, tier_for(severity.level, reach.level, PlaybookSettings())
('local', 'notify')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

from forewarn.decisions import (
    SEVERITY_LEVELS,
    Approval,
    Decision,
    ReachLevel,
    SeverityLevel,
    Silence,
    Tier,
    at_least,
)
from forewarn.hazards import HazardAlert, HazardIncident
from forewarn.outreach.silencing import silencing
from forewarn.records import TELEMETRY_PREFIX, Incident
from forewarn.settings import InhibitRule, PlaybookSettings
from forewarn.stats import poisson_sf

RATIO_STRONG = 10.0
"""A count this many times the expected one is strong evidence on its own."""
RATIO_CLEAR = 3.0
TAIL_EXTREME = 1e-6
"""A one-in-a-million tail: beyond the detector's own threshold, so chance cannot be what it saw."""


@dataclass(frozen=True)
class Assessment:
    """A level on one scale and the reasons for it."""

    level: str
    reasons: tuple[str, ...]


def assess_severity(incident: Incident, settings: PlaybookSettings) -> Assessment:
    """Points for the evidence (ratio, tail, joined signals) give a level; a topic's criticality is a floor."""
    expected = max(incident.expected, 0.05)
    ratio = incident.observed / expected
    reasons = [f"{incident.observed} cases against {incident.expected:.1f} expected ({ratio:.0f}x)"]
    points = 2 if ratio >= RATIO_STRONG else 1 if ratio >= RATIO_CLEAR else 0
    tail = poisson_sf(incident.observed, expected)
    if tail <= TAIL_EXTREME:
        points += 1
        reasons.append(f"chance of so many by luck below {TAIL_EXTREME:g}")
    kinds = _signal_kinds(incident)
    if len(kinds) > 1:
        points += 1
        reasons.append(f"{len(kinds)} kinds of signal agree: {', '.join(sorted(kinds))}")
    level = SEVERITY_LEVELS[min(max(points - 1, 0), len(SEVERITY_LEVELS) - 1)]
    floor = settings.topic_criticality.get(incident.topic)
    if floor is not None and SEVERITY_LEVELS.index(floor) > SEVERITY_LEVELS.index(level):
        level = floor
        reasons.append(f"{incident.topic} is configured {floor} (playbook.topic_criticality)")
    return Assessment(level, tuple(reasons))


def _signal_kinds(incident: Incident) -> set[str]:
    kinds = {"telemetry" if s.startswith(TELEMETRY_PREFIX) else "cases" for s in incident.signals}
    return kinds or {"cases"}


def assess_reach(touched: int, regions: int, base: int, settings: PlaybookSettings) -> Assessment:
    """`touched`: the audience plus those who already called; `base`: the customers in the index."""
    share = touched / base if base else 0.0
    reasons = (f"{touched} customers ({share:.1%} of {base})", f"{regions} region{'s' * (regions != 1)}")
    level: ReachLevel
    if share >= settings.widespread_share:
        level = "widespread"
    elif share >= settings.regional_share or regions > 1:
        level = "regional"
    elif touched >= settings.local_from:
        level = "local"
    else:
        level = "few"
    return Assessment(level, reasons)


def tier_for(severity: str, reach: str, settings: PlaybookSettings) -> Tier:
    for rule in settings.rules:
        if (not rule.severity or severity in rule.severity) and (not rule.reach or reach in rule.reach):
            return rule.tier
    raise AssertionError("the settings guarantee a catch-all rule")  # PlaybookSettings._catch_all


def approval_for(tier: Tier, settings: PlaybookSettings) -> Approval:
    return "pending" if settings.approval_from is not None and at_least(tier, settings.approval_from) \
        else "not_needed"


def labels_of(incident: Incident) -> dict[str, str]:
    """What silences and inhibition rules match on: the incident, its topic, its region, its segment."""
    labels = {"incident": incident.id, "topic": incident.topic, "region": incident.region}
    labels |= dict(incident.known_segment)
    labels |= {t.attribute: t.value for t in incident.segment}
    return labels


def inhibitor(labels: Mapping[str, str], open_decisions: Sequence[Decision],
              rules: Sequence[InhibitRule]) -> Decision | None:
    """The open incident that explains this one (a regional outage explains its region's Wi-Fi drops)."""
    for rule in rules:
        if labels.get("topic") not in rule.target_topics:
            continue
        for source in open_decisions:
            theirs = dict(source.labels)
            if source.incident_id != labels.get("incident") and source.topic in rule.source_topics \
                    and all(theirs.get(name) == labels.get(name) for name in rule.equal):
                return source
    return None


def decide(incident: Incident, *, touched: int, regions: int, base: int, settings: PlaybookSettings,
           at: datetime, silences: Sequence[Silence] = (), open_decisions: Sequence[Decision] = (),
           silence_at: datetime | None = None) -> Decision:
    """The whole verdict for an opened incident: severity, reach, tier, approval, silence, inhibition."""
    severity = assess_severity(incident, settings)
    reach = assess_reach(touched, regions, base, settings)
    labels = labels_of(incident)
    decision = _verdict(incident.id, incident.topic, incident.region, severity, reach, labels, settings, at,
                        touched, silencing(silences, labels, silence_at or at))
    source = inhibitor(labels, open_decisions, settings.inhibit)
    return replace(decision, inhibited_by=source.incident_id if source else None)


HAZARD_TOPIC = "hazard"
"""The topic of every hazard's decision (its `event` label names the kind): what silences match on."""
_RANK_LEVELS: tuple[SeverityLevel, ...] = ("low", "low", "moderate", "high", "critical")


def assess_hazard(alert: HazardAlert) -> Assessment:
    """A hazard's severity from its CAP severity, urgency and certainty (`HazardAlert.severity_rank`)."""
    rank = alert.severity_rank()
    return Assessment(_RANK_LEVELS[rank], (f"CAP {alert.event or 'alert'}: severity {alert.severity}, urgency "
                                           f"{alert.urgency}, certainty {alert.certainty} (rank {rank} of 4)",))


def decide_hazard(incident: HazardIncident, *, touched: int, regions: Sequence[str], base: int,
                  settings: PlaybookSettings, at: datetime, silences: Sequence[Silence] = (),
                  silence_at: datetime | None = None) -> Decision:
    """The verdict for a hazard: the playbook's tier from its CAP severity and its reach, at least `notify` (a
    hazard rule chose to warn the customers in its path: the playbook can add a status entry, not take the
    warning away). A hazard warning is a safety message: it never waits for approval (an operator can still hold
    it or silence it), and nobody is held out."""
    reach = assess_reach(touched, max(len(regions), 1), base, settings)
    labels = {"incident": incident.id, "topic": HAZARD_TOPIC, "event": incident.alert.event or ""}
    if len(regions) == 1:
        labels["region"] = regions[0]
    region = regions[0] if len(regions) == 1 else f"{len(regions)} regions"
    decision = _verdict(incident.id, HAZARD_TOPIC, region, assess_hazard(incident.alert), reach, labels, settings,
                        at, touched, silencing(silences, labels, silence_at or at))
    return replace(decision, tier=decision.tier if at_least(decision.tier, "notify") else "notify",
                   approval="not_needed")


def _verdict(incident_id: str, topic: str, region: str, severity: Assessment, reach: Assessment,
             labels: Mapping[str, str], settings: PlaybookSettings, at: datetime, touched: int,
             silence: Silence | None) -> Decision:
    tier = tier_for(severity.level, reach.level, settings)
    return Decision(incident_id, topic, region, cast(SeverityLevel, severity.level), severity.reasons,
                    cast(ReachLevel, reach.level), reach.reasons, tier, approval_for(tier, settings), at,
                    audience=touched, silenced_by=silence.id if silence else None,
                    labels=tuple(sorted(labels.items())))
