"""Forecast incidents from hazard alerts: who is in the path, warned before it hits.

CAP semantics: an Update replaces the alert it references, a Cancel withdraws it and the
customers already warned are told the risk has passed; Test, Exercise, System and Draft
messages (and test event codes) never reach a customer. Which events matter to which
customers is configuration (`HazardRule`), not code.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from forewarn.decisions import Decision, ResponderStage
from forewarn.geo import Area
from forewarn.hazards import HazardAlert, HazardIncident, RegionFormat, county_regions
from forewarn.interfaces import CustomerIndex, Rendered, Renderer
from forewarn.localtime import LocalTime
from forewarn.outreach.audience import Audience, Recipient, audience_of
from forewarn.outreach.enqueue import DeliveryTally, Enqueuer
from forewarn.outreach.gate import DecisionGate, why_not
from forewarn.outreach.notifier import ResponderNotifier
from forewarn.records import INDEXED_ATTRIBUTES, Channel, Customer, MessageKind, rfc3339


def hazard_id(alert: HazardAlert) -> str:
    """A stable id from the first alert of a hazard.

    >>> hazard_id(HazardAlert("NWS-1", "w-nws.webmaster@noaa.gov", datetime(2026, 1, 1), "Actual", "Alert"))
    'HAZ-6a32bfb864cb'
    """
    return "HAZ-" + hashlib.sha1(f"{alert.sender}\x00{alert.identifier}".encode()).hexdigest()[:12]


@dataclass
class HazardTracker:
    """Folds alerts into forecast incidents; counts what it ignored and why.

    >>> from datetime import datetime
    >>> t = datetime(2026, 11, 20)
    >>> alert = HazardAlert("A1", "nws", t, "Actual", "Alert", event="High Wind Warning")
    >>> tracker = HazardTracker()
    >>> [i.status for i in tracker.observe(alert)]
    ['opened']
    >>> from forewarn.hazards import Reference
    >>> cancel = HazardAlert("A2", "nws", t, "Actual", "Cancel", references=(Reference("nws", "A1", t),))
    >>> [i.status for i in tracker.observe(cancel)], tracker.observe(HazardAlert("T", "nws", t, "Test", "Alert"))
    (['cancelled'], [])
    >>> dict(tracker.ignored)
    {'status Test': 1}
    """

    _by_identifier: dict[str, HazardIncident] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)

    def observe(self, alert: HazardAlert) -> list[HazardIncident]:
        if not alert.is_actionable:
            self.ignored[f"status {alert.status}" if alert.status != "Actual" else "test or administrative"] += 1
            return []
        earlier = next((self._by_identifier[r.identifier] for r in alert.references
                        if r.identifier in self._by_identifier), None)
        if alert.msg_type == "Cancel":
            if earlier is None:
                self.ignored["cancel of an unknown alert"] += 1
                return []
            return [self._record(alert, replace(earlier, status="cancelled", alert=alert))]
        if earlier is not None and earlier.status != "cancelled":
            return [self._record(alert, replace(earlier, status="updated", alert=alert))]
        return [self._record(alert, HazardIncident(hazard_id(alert), "opened", alert, alert.sent))]

    def expire(self, now: datetime) -> list[HazardIncident]:
        """Incidents whose latest alert has expired: closed without a message (nothing was withdrawn)."""
        expired = []
        for identifier, incident in list(self._by_identifier.items()):
            ends = incident.alert.expires
            if incident.status in ("opened", "updated") and ends is not None and ends <= now:
                expired.append(self._record(incident.alert, replace(incident, status="expired")))
                del self._by_identifier[identifier]
        return expired

    def _record(self, alert: HazardAlert, incident: HazardIncident) -> HazardIncident:
        for identifier in {alert.identifier, *(r.identifier for r in alert.references)}:
            self._by_identifier[identifier] = incident
        return incident


@dataclass(frozen=True)
class HazardRule:
    """Which customers an event type matters to: events, a minimum severity rank, required traits.

    `require` holds customer attributes that must match (e.g. {"battery_backup": "false"} from
    the customer record's extra fields, or {"model": "R7000"}).
    """

    events: tuple[str, ...]
    min_rank: int = 2
    require: tuple[tuple[str, str], ...] = ()

    def matches(self, alert: HazardAlert) -> bool:
        return (alert.event or "") in self.events and alert.severity_rank() >= self.min_rank


def _has(customer: Customer, attribute: str, value: str) -> bool:
    """Whether the customer, or one of its products, carries `value` (case-insensitive) for `attribute`.

    >>> c = Customer.model_validate({"id": "A", "region": "R", "products": [
    ...     {"model": "M", "firmware": "1", "battery_backup": False}]})
    >>> _has(c, "battery_backup", "false"), _has(c, "battery_backup", "true"), _has(c, "model", "M")
    (True, False, True)
    """
    extra = () if attribute in INDEXED_ATTRIBUTES else (attribute,)
    return value.lower() in {v.lower() for v in customer.attributes(extra).get(attribute, ())}


def whole_states(regions: set[str], index: CustomerIndex) -> set[str]:
    """Expand statewide codes ("TX-000" or "48000") into every county region of that state the index knows."""
    statewide = {r[:-3] for r in regions if r.endswith("000")}
    if not statewide:
        return regions
    known = index.attribute_counts("region")
    return {r for r in regions if not r.endswith("000")} | {r for r in known if any(r.startswith(p) for p in statewide)}


def hazard_audience(incident: HazardIncident, rules: Sequence[HazardRule], index: CustomerIndex,
                    region_format: RegionFormat, max_audience: int) -> Audience:
    """Customers in the alert's polygons/circles (`CustomerIndex.in_area`), else in its SAME/FIPS
    counties, filtered by the rule."""
    alert = incident.alert
    rule = next((r for r in rules if r.matches(alert)), None)
    if rule is None:
        return Audience({}, held=f"no hazard rule for {alert.event!r} at severity rank {alert.severity_rank()}: "
                                 "add one under hazards.rules to warn customers")
    area = Area([ring for a in alert.areas for ring in a.polygons], [c for a in alert.areas for c in a.circles])
    if not area.is_empty:
        candidates: Iterable[Customer] = index.in_area(area)
    else:
        regions = whole_states(county_regions(alert, region_format), index)
        if not regions:
            return Audience({}, held="the alert names no polygon, circle or county: a responder must target it")
        candidates = (c for region in sorted(regions) for c in index.segment({"region": region}))
    wanted = [c for c in candidates if all(_has(c, name, value) for name, value in rule.require)]
    return audience_of(wanted, dict(rule.require), frozenset(), max_audience)


@dataclass
class HazardReport(DeliveryTally):
    """What outreach did for one hazard incident event."""

    incident: HazardIncident
    decision: Decision | None = None

    def to_dict(self) -> dict[str, Any]:
        alert = self.incident.alert
        decision = {"decision": self.decision.to_dict()} if self.decision is not None else {}
        return {"hazard": {"id": self.incident.id, "status": self.incident.status, "event": alert.event,
                           "identifier": alert.identifier, "severity_rank": alert.severity_rank(),
                           "expires": rfc3339(alert.expires) if alert.expires else None},
                **self.tally(), **decision}


class HazardOutreach:
    """Warns the customers in a hazard's path once, and tells them when it is withdrawn."""

    def __init__(self, index: CustomerIndex, enqueuer: Enqueuer, renderer: Renderer, rules: Sequence[HazardRule],
                 region_format: RegionFormat = "state-county", max_audience: int = 10_000, urgent_rank: int = 3,
                 gate: DecisionGate | None = None, notifier: ResponderNotifier | None = None):
        self.index = index
        self.enqueuer = enqueuer
        self.renderer = renderer
        self.rules = tuple(rules)
        self.region_format = region_format
        self.max_audience = max_audience
        self.urgent_rank = urgent_rank
        """A hazard at or above this severity rank does not wait for anyone's morning."""
        # The closed list of event names customers may read: the ones the company chose to warn about.
        self._events = frozenset(e for r in self.rules for e in r.events)
        self.gate = gate
        """The playbook: the tier decides whether customers are messaged; silences and holds apply."""
        self.notifier = notifier

    def handle(self, incident: HazardIncident) -> HazardReport:
        if incident.status in ("opened", "updated"):
            # An update may widen the area: the ledger lets only the newly covered customers through.
            audience = hazard_audience(incident, self.rules, self.index, self.region_format, self.max_audience)
            report = HazardReport(incident=incident, audience_size=len(audience.recipients),
                                  excluded=dict(audience.excluded), held=audience.held)
            if audience.held is None and self.gate is not None:
                report.decision = self.gate.judge_hazard(incident, audience.recipients)
                self._tell_responders(report.decision, "trigger")
                if not report.decision.messages_customers:
                    report.held = why_not(report.decision)
            if report.held is None:
                self._send(report, "warning", audience.recipients)
            return report
        if incident.status in ("cancelled", "expired") and self.gate is not None \
                and (closed := self.gate.closed(incident.id)) is not None:
            self._tell_responders(closed, "resolve")
        if incident.status == "cancelled":
            warned = self.index.get_many(sorted(self.enqueuer.outbox.decided(incident.id, "warning")))
            recipients = [Recipient(c, c.preferred_channel, address) for c in warned if c is not None
                          if (address := c.contact(c.preferred_channel)) is not None]
            report = HazardReport(incident=incident, audience_size=len(recipients))
            self._send(report, "resolved", recipients)
            return report
        return HazardReport(incident=incident)

    def _tell_responders(self, decision: Decision, stage: ResponderStage) -> None:
        if self.notifier is not None and decision.muted is None and (stage == "resolve" or decision.open):
            self.notifier.notify(decision, None, stage)

    def _send(self, report: HazardReport, kind: MessageKind, recipients: Sequence[Recipient]) -> None:
        def render(customer: Customer, channel: Channel) -> tuple[Rendered, str | None]:
            context = hazard_context(report.incident, customer, self._events)
            text = self.renderer.render("hazard", kind, channel, context, family="hazard")
            html = self.renderer.render_html("hazard", kind, context, family="hazard") if channel == "email" else None
            return text, html

        alert = report.incident.alert
        severity = report.decision.severity if report.decision is not None else None  # critical passes the budget
        self.enqueuer.enqueue(report, report.incident.id, kind, recipients, render, alert.sent,
                              urgent=alert.severity_rank() >= self.urgent_rank, severity=severity)


GENERIC_EVENT = "weather alert"
"""Shown for an event name outside the configured rules (e.g. on a Cancel that names another event)."""


def hazard_context(incident: HazardIncident, customer: Customer, events: frozenset[str]) -> dict[str, Any]:
    """What hazard templates may use: vetted values only; times in the customer's own zone.

    An alert's headline, area description and instruction are the sender's free text: anyone
    who can write an alert could put a phone number or a link there. So templates get the event
    name only from the closed list in `hazards.rules` (`events`), the alert's times, and the
    company's own advice per event written in the templates. `headline`, `area` and
    `instruction` stay defined (older custom templates still render) but carry nothing from the alert.
    """
    alert = incident.alert
    event = alert.event if alert.event in events else GENERIC_EVENT

    def local(ts: datetime | None) -> LocalTime:
        return LocalTime(ts, customer.timezone, customer.language)

    return {
        "incident_id": incident.id, "event": event, "headline": event, "area": "",
        "onset_local": local(alert.onset or alert.effective), "expires_local": local(alert.expires),
        "instruction": "", "language": customer.language,
    }
