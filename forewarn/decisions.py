"""What the decision layer says about an incident: how bad, how wide, which tier, who approved, what muted it.

Severity and reach are judged separately, each on its own ordered scale with its reasons; a playbook
(`forewarn.outreach.playbook`) maps the pair to a tier. Tiers are ordered too: `observe` tells the
responders only, `publish` writes a status entry and the knowledge-article and call-centre texts,
`notify` messages the audience one to one, `broadcast` does both. A silence (an operator's "not now")
or an inhibition (another open incident explains this one) keeps customers out of it; the decision
still records what would have been done.

>>> from datetime import UTC, datetime
>>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
>>> d = Decision("INC-1", "no_internet", "TX-453", "high", ("90x the expected count",), "local",
...              ("370 customers in 1 region",), "notify", "not_needed", at, audience=370)
>>> Decision.from_json(d.to_json()) == d
True
>>> at_least("notify", "publish"), at_least("publish", "notify")
(True, False)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal, cast, get_args

import orjson

SeverityLevel = Literal["low", "moderate", "high", "critical"]
ReachLevel = Literal["few", "local", "regional", "widespread"]
Tier = Literal["observe", "publish", "notify", "broadcast"]
Approval = Literal["not_needed", "pending", "approved", "held"]
AuditAction = Literal["approve", "hold", "ack", "update", "resolve"]
Stage = Literal["investigating", "identified", "monitoring", "resolved"]
"""Where an incident stands for the public (Statuspage's words): opened, acknowledged by a responder, fixed
and watched, over."""

SEVERITY_LEVELS: tuple[SeverityLevel, ...] = get_args(SeverityLevel)
REACH_LEVELS: tuple[ReachLevel, ...] = get_args(ReachLevel)
TIERS: tuple[Tier, ...] = get_args(Tier)
MESSAGING_TIERS: frozenset[Tier] = frozenset({"notify", "broadcast"})
"""Tiers that message customers one to one."""


def at_least(tier: Tier, floor: Tier) -> bool:
    """Whether `tier` is `floor` or louder."""
    return TIERS.index(tier) >= TIERS.index(floor)


def severity_at_least(level: SeverityLevel, floor: SeverityLevel) -> bool:
    return SEVERITY_LEVELS.index(level) >= SEVERITY_LEVELS.index(floor)


@dataclass(frozen=True)
class Decision:
    """The decision layer's verdict on one incident, kept for `forewarn incidents` and the audit.

    Parameters
    ----------
    severity, severity_reasons
        How bad the problem is, and why (the evidence, each in words).
    reach, reach_reasons
        How many it touches (audience, share of the base, regions), and why.
    tier
        What the playbook says the pair deserves.
    approval
        `pending` until an operator approves (tiers at or above the playbook's `approval_from`);
        `not_needed` below it; `approved` / `held` after `forewarn approve` / `forewarn hold`.
    silenced_by, inhibited_by
        The silence id or the inhibiting incident id that keeps customers out of it.
    """

    incident_id: str
    topic: str
    region: str
    severity: SeverityLevel
    severity_reasons: tuple[str, ...]
    reach: ReachLevel
    reach_reasons: tuple[str, ...]
    tier: Tier
    approval: Approval
    decided_at: datetime
    audience: int = 0
    silenced_by: str | None = None
    inhibited_by: str | None = None
    open: bool = True
    labels: tuple[tuple[str, str], ...] = ()
    """What silences and inhibition rules match on: topic, region and the segment's traits."""
    stage: Stage = "investigating"
    eta: datetime | None = None
    """When responders expect the fix (`forewarn incident update --eta`)."""
    note: str = ""
    """The responders' latest public note (shown in the status feed; never sent to customers as typed)."""
    updated_at: datetime | None = None
    updates: int = 0
    """How many `forewarn incident update`s there were."""

    @property
    def messages_customers(self) -> bool:
        """One-to-one messages may go now: open, a messaging tier, approved or not needing it, neither muted."""
        return (self.open and self.tier in MESSAGING_TIERS and self.approval in ("not_needed", "approved")
                and self.silenced_by is None and self.inhibited_by is None)

    @property
    def muted(self) -> str | None:
        if self.silenced_by:
            return f"silenced by {self.silenced_by}"
        if self.inhibited_by:
            return f"inhibited by {self.inhibited_by}"
        return None

    def with_approval(self, approval: Approval) -> Decision:
        return replace(self, approval=approval)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["decided_at"] = self.decided_at.isoformat()
        doc["eta"] = self.eta.isoformat() if self.eta else None
        doc["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        doc["labels"] = [list(pair) for pair in self.labels]
        return doc

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str) -> Decision:
        doc = orjson.loads(raw)
        doc["decided_at"] = datetime.fromisoformat(doc["decided_at"])
        for name in ("eta", "updated_at"):
            doc[name] = datetime.fromisoformat(doc[name]) if doc.get(name) else None
        doc["severity_reasons"] = tuple(doc["severity_reasons"])
        doc["reach_reasons"] = tuple(doc["reach_reasons"])
        doc["labels"] = tuple((k, v) for k, v in doc.get("labels", ()))
        return cls(**doc)


@dataclass(frozen=True)
class AuditEntry:
    """Who approved or held an incident, when, and why."""

    incident_id: str
    action: AuditAction
    actor: str
    at: datetime
    note: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps({**asdict(self), "at": self.at.isoformat()})

    @classmethod
    def from_json(cls, raw: bytes | str) -> AuditEntry:
        doc = orjson.loads(raw)
        return cls(doc["incident_id"], cast(AuditAction, doc["action"]), doc["actor"],
                   datetime.fromisoformat(doc["at"]), doc.get("note", ""))


@dataclass(frozen=True)
class Silence:
    """An operator's "not now" for incidents whose labels match every matcher, between two times.

    >>> from datetime import UTC, datetime, timedelta
    >>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> s = Silence("S-1", (("topic", "wifi_drops"), ("region", "TX-453")), at, at + timedelta(hours=4),
    ...             "planned maintenance", "ana")
    >>> s.matches({"topic": "wifi_drops", "region": "TX-453", "model": "R7000"}), s.matches({"topic": "wifi_drops"})
    (True, False)
    >>> s.active(at + timedelta(hours=1)), s.active(at + timedelta(hours=4))
    (True, False)
    """

    id: str
    matchers: tuple[tuple[str, str], ...]
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(name) == value for name, value in self.matchers)

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def to_json(self) -> bytes:
        return orjson.dumps({**asdict(self), "matchers": [list(m) for m in self.matchers],
                             "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(),
                             "created_at": self.created_at.isoformat() if self.created_at else None})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Silence:
        doc = orjson.loads(raw)
        created = doc.get("created_at")
        return cls(doc["id"], tuple((k, v) for k, v in doc["matchers"]), datetime.fromisoformat(doc["starts_at"]),
                   datetime.fromisoformat(doc["ends_at"]), doc["reason"], doc["created_by"],
                   datetime.fromisoformat(created) if created else None)



ResponderStage = Literal["trigger", "acknowledge", "update", "resolve"]
ResponderTarget = Literal["pagerduty", "slack"]
RESPONDER_TARGETS: tuple[ResponderTarget, ...] = get_args(ResponderTarget)


@dataclass(frozen=True)
class ResponderEvent:
    """One notification to responders about one stage of an incident, as the responder outbox keeps it.

    `payload` is the provider's own JSON body (a PagerDuty Events API v2 event, a Slack Block Kit message),
    built by `forewarn.outreach.responders`; `seq` tells the updates of one incident apart.

    >>> from datetime import UTC, datetime, timedelta
    >>> at = datetime(2026, 11, 20, 14, tzinfo=UTC)
    >>> e = ResponderEvent("INC-1", "trigger", "pagerduty", {"event_action": "trigger"}, at, at + timedelta(hours=1))
    >>> e.id, ResponderEvent.from_json(e.to_json()) == e
    ('INC-1|trigger|0|pagerduty', True)
    """

    incident_id: str
    stage: ResponderStage
    target: ResponderTarget
    payload: dict[str, Any]
    decided_at: datetime
    expires_at: datetime
    seq: int = 0

    @property
    def id(self) -> str:
        return f"{self.incident_id}|{self.stage}|{self.seq}|{self.target}"

    def to_json(self) -> bytes:
        return orjson.dumps({**asdict(self), "decided_at": self.decided_at.isoformat(),
                             "expires_at": self.expires_at.isoformat()})

    @classmethod
    def from_json(cls, raw: bytes | str) -> ResponderEvent:
        doc = orjson.loads(raw)
        return cls(doc["incident_id"], doc["stage"], doc["target"], doc["payload"],
                   datetime.fromisoformat(doc["decided_at"]), datetime.fromisoformat(doc["expires_at"]),
                   int(doc.get("seq", 0)))
