"""From an incident event to decided messages: isolate, target, render, enqueue.

An opened incident warns its audience; a resolved one tells the customers who were
warned that the problem is fixed. Updates change nothing for customers. Nothing here waits
on a provider: messages go to the outbox, and delivery workers send them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from forewarn.decisions import Decision, ResponderStage
from forewarn.interfaces import CustomerIndex, IncidentStore, Rendered, Renderer
from forewarn.localtime import LocalTime
from forewarn.outreach.audience import Audience, Recipient, build_audience
from forewarn.outreach.covering import Carried, Covering
from forewarn.outreach.effect import in_holdout
from forewarn.outreach.enqueue import DeliveryTally, Enqueuer
from forewarn.outreach.gate import ApprovalError, DecisionGate, why_not
from forewarn.outreach.notifier import ResponderNotifier
from forewarn.outreach.targeting import TraitRule, isolate_traits, warning_segment
from forewarn.records import (
    EMERGING_PREFIX,
    NATIONAL,
    TELEMETRY_PREFIX,
    Channel,
    Customer,
    Incident,
    MessageKind,
    rfc3339,
)
from forewarn.settings import OVERFLOW_REGION, OutreachSettings


@dataclass
class OutreachReport(DeliveryTally):
    """What outreach did for one incident event: the audience and the delivery outcomes."""

    incident: Incident
    decision: Decision | None = None

    def to_dict(self) -> dict[str, Any]:
        decision = {"decision": self.decision.to_dict()} if self.decision is not None else {}
        return {"incident": self.incident.to_dict(), **self.tally(), **decision}


PREVIEW_LABEL = "service"
"""Shown by a dry-run preview for a topic without a label (a real send is held instead)."""


class Outreach:
    """Turns incident events into decided messages in the outbox through the injected parts."""

    def __init__(self, index: CustomerIndex, enqueuer: Enqueuer, renderer: Renderer,
                 trait_rule: TraitRule | None = None, max_audience: int = 10_000,
                 store: IncidentStore | None = None, topic_labels: Mapping[str, str] | None = None,
                 urgent_topics: Sequence[str] = (), gate: DecisionGate | None = None,
                 notifier: ResponderNotifier | None = None, covering: Covering | None = None):
        self.index = index
        self.enqueuer = enqueuer
        self.renderer = renderer
        self.trait_rule = trait_rule or TraitRule()
        self.max_audience = max_audience
        self.urgent_topics = frozenset(urgent_topics)
        self.store = store
        self.gate = gate
        self.notifier = notifier
        self.covering = covering
        # Only the company's words for a topic reach customers; None: the bundled labels.
        self.topic_labels = dict(OutreachSettings().topic_labels if topic_labels is None else topic_labels)

    def handle(self, incident: Incident) -> OutreachReport:
        if incident.status == "opened":
            report = self._warn(incident)
        elif incident.status == "resolved":
            report = self._all_clear(incident)
            if self.gate is not None and (decision := self.gate.closed(incident.id)) is not None:
                self.tell_responders(decision, incident, "resolve")
        else:
            report = OutreachReport(incident)
        if self.store is not None:
            saved = self.store.load(incident.id) if incident.status != "opened" else None
            # Later events keep the segment isolated when the incident opened.
            self.store.save(replace(report.incident, segment=saved.segment) if saved else report.incident)
        return report

    def _warn(self, incident: Incident, at: datetime | None = None) -> OutreachReport:
        report = self._warn_customers(incident, at)
        if report.decision is None and report.held is not None and self.gate is not None:
            # customers are not told (no words, no place): responders still are
            report.decision = self.gate.responders_only(report.incident, report.held)
            self.tell_responders(report.decision, report.incident, "trigger")
        return report

    def _warn_customers(self, incident: Incident, at: datetime | None) -> OutreachReport:
        if incident.topic.startswith(TELEMETRY_PREFIX):
            # A device signal with no customer topic has no words for customers: responders only.
            return OutreachReport(incident, held=f"{incident.topic} is not mapped to a customer topic: add it to "
                                                 "detection.telemetry_topics to warn customers about it")
        if incident.region == OVERFLOW_REGION:
            # The bucket pools regions a topic had no room for: its cases share no place to warn.
            return OutreachReport(incident, held=f"region {OVERFLOW_REGION} pools the cases of {incident.topic}'s "
                                                 "regions beyond detection.max_regions_per_topic: a responder "
                                                 "must find where (dead letters of step cap_regions) before "
                                                 "anyone is warned")
        reporters = [c for c in self.index.get_many(sorted(incident.reporters)) if c is not None]
        traits = isolate_traits(reporters, self.index, self.trait_rule)
        incident = replace(incident, segment=traits)
        if incident.topic.startswith(EMERGING_PREFIX):
            # A topic named from case words is a guess; customers would read "new:loop+reboot+router".
            return OutreachReport(incident, held=f"{incident.topic} is an emerging topic found in case texts: "
                                                 f"review it (forewarn audience {incident.id}) before customers "
                                                 "are told")
        if (unlabelled := self._unlabelled(incident)) is not None:
            return unlabelled
        segment = warning_segment(incident)  # the isolated traits are on the incident now
        audience = build_audience(segment, self.index, incident.reporters | incident.earlier_reporters,
                                  self.max_audience)
        report = self._report(incident, audience)
        if self.gate is not None:
            report.decision = self.gate.judge(incident, audience.recipients, audience.excluded)
            self.tell_responders(report.decision, incident, "trigger")  # responders first
            if audience.held is None and not report.decision.messages_customers:
                report.held = why_not(report.decision)
        if report.held is None:
            self._send_warning(report, incident, self._without_holdout(report, incident, audience.recipients), at)
        return report

    def _send_warning(self, report: OutreachReport, incident: Incident, recipients: Sequence[Recipient[Any]],
                      at: datetime | None) -> None:
        """The warning, carrying the news of overlapping incidents whose warnings to the same customers wait."""
        if self.covering is None:
            self._send(report, incident, "warning", recipients, at)
            return
        carried = self.covering.carried(incident.id, incident.topic, [r.customer.id for r in recipients])
        fresh = self._send(report, incident, "warning", recipients, at, carried=carried)
        carried.record(self.enqueuer.outbox, fresh)

    def _without_holdout(self, report: OutreachReport, incident: Incident,
                         recipients: Sequence[Recipient[Any]]) -> Sequence[Recipient[Any]]:
        """The audience less its holdout, which is recorded (the effect's control group); never for a critical
        incident or an urgent topic: safety messages reach everyone."""
        share = self.gate.settings.holdout_share if self.gate is not None else 0.0
        decision = report.decision
        if share <= 0 or decision is None or decision.severity == "critical" or incident.topic in self.urgent_topics:
            return recipients
        kept: list[Recipient[Any]] = []
        held: list[Recipient[Any]] = []
        for recipient in recipients:
            (held if in_holdout(incident.id, recipient.customer.id, share) else kept).append(recipient)
        if held:
            self.enqueuer.outbox.hold_out(incident.id, [r.customer.id for r in held])
        for recipient in held:
            report.count("held_out", recipient.channel)
        return kept

    def approve(self, incident_id: str, actor: str, note: str = "") -> OutreachReport:
        """An operator approves: the audience as it stands now is warned (quiet hours judged now)."""
        if self.gate is None or self.store is None:
            raise ApprovalError("approval needs the decision and incident stores (a redis section)")
        incident = self.store.load(incident_id)  # first: an unknown id (a hazard's, say) changes nothing
        if incident is None:
            raise ApprovalError(f"{incident_id} is not in the incident store (kept 30 days; a hazard never waits "
                                "for approval)")
        self.gate.act(incident_id, "approve", actor, note)
        return self._warn(incident, at=self.gate.clock())

    def hold(self, incident_id: str, actor: str, note: str = "") -> Decision:
        if self.gate is None:
            raise ApprovalError("holding needs the decision store (a redis section)")
        return self.gate.act(incident_id, "hold", actor, note)

    def _unlabelled(self, incident: Incident) -> OutreachReport | None:
        """Held when the company has no words for the topic: a case's topic string is nobody's to choose."""
        if incident.topic in self.topic_labels:
            return None
        return OutreachReport(incident, held=f"topic {incident.topic!r} has no label for customers: add one under "
                                             f"outreach.topic_labels (e.g. {incident.topic}: internet) to warn them")

    def _all_clear(self, incident: Incident) -> OutreachReport:
        if (unlabelled := self._unlabelled(incident)) is not None:
            return unlabelled
        # Everyone decided a warning: a worker skips those it never reached and drops warnings not yet sent.
        return self._to_the_warned(incident, "resolved", self.enqueuer.outbox.decided(incident.id, "warning"))

    def tell_responders(self, decision: Decision, incident: Incident, stage: ResponderStage) -> None:
        """Muted incidents (silenced, inhibited) notify nobody, responders included, as in Alertmanager; a
        silence added since mutes the acknowledgement and updates (a resolve still closes the alert)."""
        if self.notifier is None or decision.muted is not None:
            return
        if stage != "resolve" and not decision.open:
            return  # a replayed event of a resolved incident: the alert is closed and stays so
        if stage in ("acknowledge", "update") and self.gate is not None and self.gate.silenced_now(decision):
            return
        self.notifier.notify(decision, incident, stage)

    def warn_newcomers(self, incident: Incident, at: datetime) -> OutreachReport:
        """The audience as it stands at `at`: those not yet warned are warned now (the others are duplicates)."""
        return self._warn(incident, at)

    def follow_up(self, incident: Incident, kind: MessageKind, at: datetime, decision: Decision) -> OutreachReport:
        """A stage message (ack, update) to the customers the warning reached, through their budget."""
        outbox = self.enqueuer.outbox  # the warned: their warning went, or an overlapping one carried it
        told = outbox.accepted(incident.id, "warning") | outbox.covered(incident.id).keys()
        return self._to_the_warned(incident, kind, told, at, decision)

    def _to_the_warned(self, incident: Incident, kind: MessageKind, warned: set[str], at: datetime | None = None,
                       decision: Decision | None = None) -> OutreachReport:
        # a customer who opened a case after the warning is linked to the incident: the case is their channel now,
        # so no acknowledgement or update; the all-clear still goes, as the warning promised it would
        linked = warned & incident.reporters if kind != "resolved" else set()
        recipients = []
        for customer in self.index.get_many(sorted(warned - linked)):
            if customer is None:
                continue
            address = customer.contact(customer.preferred_channel)
            if address is not None:
                recipients.append(Recipient(customer, customer.preferred_channel, address))
        report = OutreachReport(incident, audience_size=len(recipients), decision=decision,
                                excluded={"opened a case after the warning": len(linked)} if linked else {})
        self._send(report, incident, kind, recipients, at, decision.eta if decision else None)
        return report

    @staticmethod
    def _report(incident: Incident, audience: Audience) -> OutreachReport:
        return OutreachReport(incident, audience_size=len(audience.recipients),
                              excluded=dict(audience.excluded), held=audience.held)

    def _send(self, report: OutreachReport, incident: Incident, kind: MessageKind,
              recipients: Sequence[Recipient[Any]], at: datetime | None = None, eta: datetime | None = None,
              carried: Carried | None = None) -> set[str]:
        render = _CachedRender(self.renderer, incident, kind, self.topic_labels, eta, carried)
        # an all-clear is decided (and its quiet hours judged) when the incident resolved, not when it opened
        decided_at = at or (incident.resolved_at if kind == "resolved" and incident.resolved_at else incident.opened_at)
        severity = report.decision.severity if report.decision is not None else None
        return self.enqueuer.enqueue(report, incident.id, kind, recipients, render, decided_at,
                                     urgent=incident.topic in self.urgent_topics, severity=severity,
                                     uncapped=carried.others.keys() if carried is not None else ())


class _CachedRender:
    """Renders each distinct context once: customers of one incident mostly share region, zone and language."""

    def __init__(self, renderer: Renderer, incident: Incident, kind: MessageKind, labels: Mapping[str, str],
                 eta: datetime | None = None, carried: Carried | None = None):
        self.renderer, self.incident, self.kind, self.labels, self.eta = renderer, incident, kind, labels, eta
        self.carried = carried
        self._seen: dict[tuple[Channel, bytes], tuple[Rendered, str | None]] = {}
        self._by_profile: dict[tuple[object, ...], tuple[Rendered, str | None]] = {}

    def __call__(self, customer: Customer, channel: Channel) -> tuple[Rendered, str | None]:
        # every customer field `message_context` reads: equal profiles render alike, without building a context
        also = self.carried.topics(customer.id) if self.carried is not None else ()
        profile = (channel, customer.region, customer.language, customer.timezone, also,
                   tuple((p.model, p.firmware, p.lot, p.installed) for p in customer.products))
        if (found := self._by_profile.get(profile)) is None:
            found = self._by_profile[profile] = self._render(customer, channel, also)
        return found

    def _render(self, customer: Customer, channel: Channel, also: Sequence[str]) -> tuple[Rendered, str | None]:
        context = message_context(self.incident, customer, self.labels, self.eta, also)
        frozen = orjson.dumps(context, default=_frozen, option=orjson.OPT_SORT_KEYS)
        if (found := self._seen.get((channel, frozen))) is None:
            text = self.renderer.render(self.incident.topic, self.kind, channel, context)
            html = self.renderer.render_html(self.incident.topic, self.kind, context) if channel == "email" else None
            found = self._seen[(channel, frozen)] = (text, html)
        return found


def _frozen(value: object) -> object:
    if isinstance(value, LocalTime):  # the whole moment, not one spelling of it: templates may use any
        return [value.ts, value.timezone, value.language]
    return repr(value)


def message_context(incident: Incident, customer: Customer, topic_labels: Mapping[str, str] | None = None,
                    eta: datetime | None = None, also: Sequence[str] = ()) -> dict[str, Any]:
    """What templates may use: vetted values only, never a record's free text.

    The topic is shown through the company's label, the region and products through the
    customer's own values in the index; times are shown in the customer's own time zone.
    """

    def local(ts: datetime | None) -> LocalTime:
        return LocalTime(ts, customer.timezone, customer.language)

    labels = OutreachSettings().topic_labels if topic_labels is None else topic_labels
    regional = incident.region != NATIONAL
    return {
        "incident_id": _reference(incident, customer, labels),
        "topic_label": labels.get(incident.topic, PREVIEW_LABEL),
        "region": customer.region if regional else None,
        "customer_region": customer.region,
        "language": customer.language,
        "since_local": local(incident.first_window_start),
        "resolved_local": local(incident.resolved_at),
        "eta_local": local(eta),
        "opened_at": rfc3339(incident.opened_at),
        "segment": _own_traits(incident, customer),
        "models": sorted({p.model for p in customer.products}),
        # overlapping incidents this warning carries (`covering`): the company's labels of their topics
        "also_labels": sorted({labels[t] for t in also if t in labels} - {labels.get(incident.topic)}),
    }


def _own_traits(incident: Incident, customer: Customer) -> dict[str, str]:
    """The incident's traits that the customer's own index record carries (a stored or telemetry
    segment value the customer does not have is not shown)."""
    own = customer.attributes()
    return {t.attribute: t.value for t in incident.segment if t.value in own.get(t.attribute, ())}


def _reference(incident: Incident, customer: Customer, labels: Mapping[str, str]) -> str:
    """The incident id, which spells the key's topic and region, when the topic is labelled and the
    region is the customer's own; otherwise a digest of it, so a case's strings are never shown."""
    if incident.topic in labels and incident.region in (NATIONAL, customer.region):
        return incident.id
    return "INC-" + hashlib.sha1(incident.id.encode()).hexdigest()[:12]
