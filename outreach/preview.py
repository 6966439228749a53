"""Audience previews: who a segment, an area or an incident would reach, and at what SMS cost.

A dry run: nothing is sent and nothing is recorded. The audience is decided by the same rules
as outreach (`audience_of`, `warning_segment`, `ContactCap`) from contact cards (see
`CustomerIndex.contacts`), so previewing 100,000 customers takes well under a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from forewarn.interfaces import CustomerIndex, IncidentStore, Outbox, Renderer, Segment
from forewarn.outreach.audience import Audience, Recipient, audience_of
from forewarn.outreach.enqueue import ContactCap
from forewarn.outreach.planner import message_context
from forewarn.outreach.targeting import warning_segment
from forewarn.records import NATIONAL, ContactCard, Customer, Incident

if TYPE_CHECKING:  # shapely and numpy load only where areas are searched
    from forewarn.geo import Area

SegmentCounter = Callable[[str], tuple[str, int]]
"""An SMS body's encoding ("GSM-7" or "UCS-2") and how many segments it travels in."""

NO_LIMIT = 10**9
"""A preview shows the whole audience: `max_audience` holds a send, not a count."""


def parse_segment(text: str) -> dict[str, str]:
    """Parse `model=R7000,firmware=2.1.7` into a segment mapping.

    >>> parse_segment("model=R7000, firmware=2.1.7")
    {'model': 'R7000', 'firmware': '2.1.7'}
    """
    segment = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"segment part {part!r} is not attribute=value, e.g. model=R7000,firmware=2.1.7")
        segment[name.strip()] = value.strip()
    if not segment:
        raise ValueError("empty segment: give attribute=value pairs, e.g. region=TX-453")
    return segment


@dataclass(frozen=True)
class SmsCost:
    """The warning SMS in one language: how it is encoded, its segments, and how many get it."""

    language: str
    encoding: str
    segments: int
    recipients: int


@dataclass
class AudiencePreview:
    """Who a segment or area would reach, who is left out and why, and what the SMS would cost."""

    segment: dict[str, str]
    area: str | None
    size: int
    by_channel: dict[str, int]
    excluded: Counter[str]
    sample: list[str] = field(default_factory=list)
    sms: list[SmsCost] = field(default_factory=list)
    price_per_segment: float = 0.0

    @property
    def sms_segments(self) -> int:
        """SMS segments the warning would take in all: recipients x segments, summed over languages."""
        return sum(c.recipients * c.segments for c in self.sms)

    @property
    def sms_cost(self) -> float:
        return self.sms_segments * self.price_per_segment


class UnknownIncident(ValueError):
    """The incident store does not hold the incident asked for."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"no incident {incident_id} in the incident store")
        self.incident_id = incident_id


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AudiencePreviewer:
    """Previews audiences over the parts a deployment has; the constructor arguments are configuration.

    `cap` counts the customers already at their daily warning cap as "capped" (None: no cap
    known, e.g. no contact log); `incidents` and `outbox` are needed only to preview an incident.
    `count_sms` is the provider's segment rule, `price_per_segment` its price.
    """

    index: CustomerIndex
    renderer: Renderer
    count_sms: SegmentCounter
    price_per_segment: float = 0.0
    cap: ContactCap | None = None
    incidents: IncidentStore | None = None
    outbox: Outbox | None = None
    clock: Callable[[], datetime] = _utc_now
    topic_labels: Mapping[str, str] | None = None
    """The company's words for topics (`outreach.topic_labels`); None: the default labels."""

    def segment(self, segment: Segment, area: Area | None = None, area_name: str | None = None,
                topic: str = "default") -> AudiencePreview:
        """Who `segment` (within `area`, when given; everyone in the area for an empty segment) would
        reach with a warning on `topic`, counted as outreach decides it now."""
        wanted = dict(segment)
        if area is None and not wanted:
            raise ValueError("give a segment such as model=R7000,firmware=2.1.7, or --polygon FILE, or both")
        candidates: Iterator[ContactCard]
        if area is not None:
            candidates = (c.card() for c in self.index.in_area(area, wanted))
        else:
            candidates = self.index.contacts(wanted)
        audience = audience_of(candidates, wanted, frozenset(), NO_LIMIT)
        self._apply_cap(audience)
        now = self.clock()
        incident = Incident("PREVIEW", topic, NATIONAL, "opened", now, now, now, 0, 0.0, 0, 0)
        return self._preview(wanted, area_name, audience, incident)

    def incident(self, incident_id: str) -> AudiencePreview:
        """An incident's audience as outreach would build it now: its warning segment, minus the
        customers who reported it and those the outbox says were already decided a warning.

        Raises `UnknownIncident` when the incident store does not hold it."""
        if self.incidents is None or self.outbox is None:
            raise ValueError("previewing an incident needs the incident store and the outbox")
        incident = self.incidents.load(incident_id)
        if incident is None:
            raise UnknownIncident(incident_id)
        segment = warning_segment(incident)
        contacted = frozenset(self.outbox.decided(incident_id, "warning"))
        audience = audience_of(self.index.contacts(segment) if segment else iter(()), segment,
                               incident.reporters | incident.earlier_reporters, NO_LIMIT, contacted)
        self._apply_cap(audience)
        return self._preview(segment, incident_id, audience, incident)

    def _preview(self, segment: dict[str, str], area: str | None, audience: Audience[ContactCard],
                 incident: Incident) -> AudiencePreview:
        return AudiencePreview(segment, area, len(audience.recipients), audience.by_channel(), audience.excluded,
                               [r.customer.id for r in audience.recipients[:5]],
                               self.sms_costs(incident, audience.recipients), self.price_per_segment)

    def _apply_cap(self, audience: Audience[ContactCard]) -> None:
        """Move the recipients already at their cap (per the contact log) to "capped"."""
        if self.cap is None:
            return
        allowed = self.cap.allowed([r.customer.id for r in audience.recipients], self.clock())
        kept = [r for r, ok in zip(audience.recipients, allowed, strict=True) if ok]
        if len(kept) < len(audience.recipients):
            audience.excluded["capped"] += len(audience.recipients) - len(kept)
            audience.recipients = kept

    def sms_costs(self, incident: Incident, recipients: Iterable[Recipient[ContactCard]]) -> list[SmsCost]:
        """The warning SMS per language of the SMS recipients, rendered for the first recipient of each.

        Languages differ in length and alphabet: Spanish with an accent outside GSM-7 travels as
        UCS-2, 70 characters a segment instead of 160, so one sample would misstate the cost.
        """
        by_language: Counter[str] = Counter()
        first: dict[str, str] = {}
        for r in recipients:
            if r.channel == "sms":
                by_language[r.customer.language] += 1
                first.setdefault(r.customer.language, r.customer.id)
        customers = dict(zip(first, self.index.get_many(list(first.values())), strict=True))
        costs = []
        for language, n in sorted(by_language.items(), key=lambda item: -item[1]):
            customer = customers[language] or Customer(id="PREVIEW", region="-", language=language)
            context = message_context(incident, customer, self.topic_labels)
            body = self.renderer.render(incident.topic, "warning", "sms", context).body
            encoding, segments = self.count_sms(body)
            costs.append(SmsCost(language, encoding, segments, n))
        return costs
