"""Incidents in Redis, so a responder can preview or audit one by id after the flow has moved on."""

from __future__ import annotations

from datetime import timedelta

from forewarn.connectors.redis_keys import RedisClient, incident_key
from forewarn.records import Incident


class RedisIncidentStore:
    """Incidents by id in Redis (`{prefix}:incident:{id}`), kept for `ttl` after their last change."""

    def __init__(self, client: RedisClient, prefix: str = "fw", ttl: timedelta = timedelta(days=30)):
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    def save(self, incident: Incident) -> None:
        self.client.set(incident_key(self.prefix, incident.id), incident.to_record(), ex=self.ttl)

    def load(self, incident_id: str) -> Incident | None:
        raw = self.client.get(incident_key(self.prefix, incident_id))
        return Incident.from_record(raw) if raw is not None else None  # type: ignore[arg-type]
