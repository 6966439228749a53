"""`forewarn audience`: the preview's parts built from settings (the decisions are in `forewarn.outreach.preview`).

The index is the customers file's, in process, when one is given, else the Redis index; an
incident, the ledger and the contact log behind the daily cap are read from Redis.
"""

from __future__ import annotations

from pathlib import Path

from forewarn.connectors.area_files import read_area
from forewarn.connectors.redis_contact_log import RedisContactLog
from forewarn.connectors.redis_incidents import RedisIncidentStore
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.connectors.sms import sms_segments
from forewarn.connectors.templates import JinjaRenderer
from forewarn.flows.delivery_parts import budget_of
from forewarn.flows.offline import load_memory_index, redis_connection
from forewarn.interfaces import ContactLog, CustomerIndex
from forewarn.outreach.preview import AudiencePreview, AudiencePreviewer, UnknownIncident, parse_segment
from forewarn.settings import Settings, SmsSettings


def preview_audience(settings: Settings, segment_text: str | None, redis_url: str | None,
                     polygon: Path | None = None, customers: Path | None = None,
                     topic: str = "default") -> AudiencePreview:
    """Dry-run of an audience: a segment, an area (polygon/CAP file), both, or an incident (INC-...);
    nothing is sent."""
    incident_id = segment_text if segment_text and segment_text.startswith("INC-") else None
    connection = redis_connection(settings, redis_url) if customers is None or incident_id else None
    if customers is not None:
        index: CustomerIndex = load_memory_index(settings, customers)
        log: ContactLog | None = None  # the daily cap counts the Redis contact log; a customers file has none
    else:
        assert connection is not None
        index = RedisCustomerIndex(*connection, extra_traits=settings.targeting.extra_traits)
        log = RedisContactLog(*connection)
    incidents, outbox = None, None
    if incident_id is not None and connection is not None:
        incidents = RedisIncidentStore(*connection)
        outbox = RedisOutbox(*connection, shards=settings.delivery.shards)
    previewer = AudiencePreviewer(
        index, JinjaRenderer(settings.outreach.templates), sms_segments, _price(settings), budget_of(settings, log),
        incidents, outbox,
        topic_labels=settings.outreach.topic_labels)
    if incident_id is not None:
        try:
            return previewer.incident(incident_id)
        except UnknownIncident:
            raise ValueError(f"no incident {incident_id} in Redis: check the id in the incidents topic or "
                             "incidents.jsonl (incidents are kept 30 days)") from None
    segment = parse_segment(segment_text) if segment_text else {}
    area = read_area(polygon) if polygon is not None else None
    return previewer.segment(segment, area, polygon.name if polygon else None, topic)


def _price(settings: Settings) -> float:
    return settings.sms.price_per_segment if settings.sms else SmsSettings.model_fields["price_per_segment"].default
