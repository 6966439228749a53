"""From an incident event to messages sent: isolate, target, render, deliver.

An opened incident warns its audience; a resolved one tells the customers who were
warned that the problem is fixed. Updates change nothing for customers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from forewarn.interfaces import CustomerIndex, IncidentStore, Renderer
from forewarn.localtime import LocalTime
from forewarn.outreach.audience import Audience, Recipient, build_audience
from forewarn.outreach.delivery import Deliverer, DeliveryTally
from forewarn.outreach.policy import QuietHours
from forewarn.outreach.targeting import TraitRule, isolate_traits, warning_segment
from forewarn.records import (
    EMERGING_PREFIX,
    NATIONAL,
    TELEMETRY_PREFIX,
    Customer,
    Incident,
    Message,
    MessageKey,
    MessageKind,
    rfc3339,
)
from forewarn.settings import OVERFLOW_REGION, OutreachSettings


@dataclass
class OutreachReport(DeliveryTally):
    """What outreach did for one incident event: the audience and the delivery outcomes."""

    incident: Incident

    def to_dict(self) -> dict[str, Any]:
        return {"incident": self.incident.to_dict(), **self.tally()}


PREVIEW_LABEL = "service"
"""Shown by a dry-run preview for a topic without a label (a real send is held instead)."""


class Outreach:
    """Turns incident events into delivered messages through the injected parts."""

    def __init__(self, index: CustomerIndex, deliverer: Deliverer, renderer: Renderer,
                 trait_rule: TraitRule | None = None, max_audience: int = 10_000, quiet: QuietHours | None = None,
                 store: IncidentStore | None = None, topic_labels: Mapping[str, str] | None = None):
        self.index = index
        self.deliverer = deliverer
        self.renderer = renderer
        self.trait_rule = trait_rule or TraitRule()
        self.max_audience = max_audience
        self.quiet = quiet
        self.store = store
        # Only the company's words for a topic reach customers; None: the bundled labels.
        self.topic_labels = dict(OutreachSettings().topic_labels if topic_labels is None else topic_labels)

    def handle(self, incident: Incident) -> OutreachReport:
        if incident.status == "opened":
            report = self._warn(incident)
        elif incident.status == "resolved":
            report = self._all_clear(incident)
        else:
            report = OutreachReport(incident)
        if self.store is not None:
            saved = self.store.load(incident.id) if incident.status != "opened" else None
            # Later events keep the segment isolated when the incident opened.
            self.store.save(replace(report.incident, segment=saved.segment) if saved else report.incident)
        return report

    def _warn(self, incident: Incident) -> OutreachReport:
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
        # Quiet hours are judged at the incident's own time, so a replay decides as the live flow did.
        audience = build_audience(segment, self.index, incident.reporters | incident.earlier_reporters,
                                  self.max_audience, self.quiet, incident.opened_at)
        report = self._report(incident, audience)
        self._send(report, incident, "warning", audience.recipients)
        return report

    def _unlabelled(self, incident: Incident) -> OutreachReport | None:
        """Held when the company has no words for the topic: a case's topic string is nobody's to choose."""
        if incident.topic in self.topic_labels:
            return None
        return OutreachReport(incident, held=f"topic {incident.topic!r} has no label for customers: add one under "
                                             f"outreach.topic_labels (e.g. {incident.topic}: internet) to warn them")

    def _all_clear(self, incident: Incident) -> OutreachReport:
        if (unlabelled := self._unlabelled(incident)) is not None:
            return unlabelled
        warned = sorted(self.deliverer.delivered_to(incident.id, "warning"))
        recipients = []
        for customer in self.index.get_many(warned):
            if customer is None:
                continue
            address = customer.contact(customer.preferred_channel)
            if address is not None:
                recipients.append(Recipient(customer, customer.preferred_channel, address))
        report = OutreachReport(incident, audience_size=len(recipients))
        self._send(report, incident, "resolved", recipients)
        return report

    @staticmethod
    def _report(incident: Incident, audience: Audience) -> OutreachReport:
        return OutreachReport(incident, audience_size=len(audience.recipients),
                              excluded=dict(audience.excluded), held=audience.held)

    def _send(self, report: OutreachReport, incident: Incident, kind: MessageKind,
              recipients: Iterable[Recipient]) -> None:
        for recipient in recipients:
            message = self._message(incident, kind, recipient)
            report.count(self.deliverer.deliver(message, incident.opened_at), recipient.channel)

    def _message(self, incident: Incident, kind: MessageKind, recipient: Recipient) -> Message:
        rendered = self.renderer.render(incident.topic, kind, recipient.channel,
                                        message_context(incident, recipient.customer, self.topic_labels))
        return Message(MessageKey(incident.id, recipient.customer.id, kind), recipient.channel,
                       recipient.address, rendered.body, rendered.subject)


def message_context(incident: Incident, customer: Customer,
                    topic_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
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
        "opened_at": rfc3339(incident.opened_at),
        "segment": _own_traits(incident, customer),
        "models": sorted({p.model for p in customer.products}),
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
