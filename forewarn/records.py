"""The records that travel through Forewarn, from input events to outreach.

Input records (cases, telemetry, customers) are pydantic models: they are validated
once at the edge and unknown extra fields are kept. Records made inside the flow
(spikes, incidents, messages) are frozen dataclasses of plain data, so they are cheap
to build, pickle and snapshot.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, NamedTuple, Protocol

import orjson
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

NATIONAL = "*"
"""The region of a key that spans all regions."""

EMERGING_PREFIX = "new:"
"""Topics discovered from case text are named from their terms, e.g. "new:loop+reboot+router"."""

TELEMETRY_PREFIX = "telemetry."
"""Topic prefix of a fault metric no case topic is mapped to (`detection.telemetry_topics`): responders only."""

Channel = Literal["sms", "email"]


def utc(ts: datetime) -> datetime:
    """Return `ts` in UTC; naive datetimes are refused rather than guessed."""
    if ts.tzinfo is None:
        raise ValueError("timestamp has no time zone; use RFC 3339 such as 2026-11-20T14:03:11Z")
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00 has no UTC datetime: a bad value, not a crash.
        raise ValueError(f"timestamp {ts.isoformat()} falls outside the years 1 to 9999 in UTC") from None


def rfc3339(ts: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with a trailing Z."""
    return utc(ts).isoformat().replace("+00:00", "Z")


class _Input(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    @field_validator("ts", mode="before", check_fields=False)
    @classmethod
    def _not_a_number(cls, value: Any) -> Any:
        """RFC 3339 only: pydantic would otherwise read a number (or a numeric string) as Unix time."""
        text = value.strip().lstrip("+-").replace(".", "", 1) if isinstance(value, str) else None
        if isinstance(value, int | float) or (text is not None and text.isdigit()):
            raise ValueError("expected an RFC 3339 timestamp such as 2026-11-20T14:03:11Z, not a number")
        return value

    @field_validator("ts", check_fields=False)
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return utc(value)


def channel_name(value: Any) -> str | None:
    """A case's `channel` as `Case` keeps it: text as is, a number as its text, anything else none.

    >>> channel_name("Employee Generated"), channel_name(311), channel_name(["phone"])
    ('Employee Generated', '311', None)
    """
    if isinstance(value, str) or value is None:
        return value
    return str(value) if isinstance(value, int | float) else None


class Case(_Input):
    """A support case. `topic` may be missing; topic discovery then assigns one.

    >>> Case.model_validate({"ts": "2026-11-20T14:03:11Z", "topic": "no_internet",
    ...                      "region": "TX-453"}).ts.isoformat()
    '2026-11-20T14:03:11+00:00'
    """

    type: Literal["case"] = "case"
    id: str | None = None
    ts: AwareDatetime
    customer_id: str | None = None
    topic: str | None = Field(default=None, min_length=1)
    region: str = Field(min_length=1)
    text: str | None = None
    channel: str | None = None
    """How the customer reached us (phone, chat, ...): informational, so an odd value never costs the case."""

    @field_validator("channel", mode="before")
    @classmethod
    def _any_channel(cls, value: Any) -> str | None:
        return channel_name(value)


class Telemetry(_Input):
    """One reading of one device metric."""

    type: Literal["telemetry"] = "telemetry"
    ts: AwareDatetime
    device_id: str = Field(min_length=1)
    customer_id: str | None = None
    metric: str = Field(min_length=1)
    value: float = Field(allow_inf_nan=False, strict=True)
    region: str | None = None
    model: str | None = None
    firmware: str | None = None


class Product(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1)
    firmware: str = Field(min_length=1)
    lot: str | None = None
    installed: date | None = None


class OptOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    sms: bool = False
    email: bool = False


def normalize_phone(raw: str) -> str:
    """Return the E.164 form of an international phone number, or raise ValueError.

    >>> normalize_phone("+1 512-555-0100")
    '+15125550100'
    """
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"phone is not an international number (+country code): {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("phone is not a possible number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class Customer(BaseModel):
    """A customer of the index, with the traits targeting matches on.

    >>> c = Customer.model_validate({"id": "CU-42", "phone": "+15125550100", "region": "TX-453",
    ...     "products": [{"model": "R7000", "firmware": "2.1.7"}]})
    >>> c.attributes()["model"], c.contact("sms")
    ({'R7000'}, '+15125550100')
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    phone: str | None = None
    email: str | None = None
    preferred_channel: Channel = "sms"
    region: str = Field(min_length=1)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    timezone: str = "UTC"
    language: str = "en"
    products: tuple[Product, ...] = ()
    opt_out: OptOut = OptOut()

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalize_phone(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"email is not valid: {exc}") from None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    def attributes(self, extra: tuple[str, ...] = ()) -> dict[str, set[str]]:
        """The indexed trait values of this customer, by attribute name.

        `extra` names further fields, of the customer or of its products, to read as traits
        (see `trait_value` for which values count).

        >>> c = Customer.model_validate({"id": "CU-1", "region": "R", "tier": "gold",
        ...     "products": [{"model": "M", "firmware": "1", "battery_backup": False}]})
        >>> sorted(c.attributes(("tier", "battery_backup")).items())[:2]
        [('battery_backup', {'false'}), ('firmware', {'1'})]
        """
        attrs: dict[str, set[str]] = {"region": {self.region}, "model": set(), "firmware": set(), "lot": set(),
                                      "installed": set()}
        for product in self.products:
            attrs["model"].add(product.model)
            attrs["firmware"].add(product.firmware)
            if product.lot:
                attrs["lot"].add(product.lot)
            if product.installed:
                attrs["installed"].add(install_quarter(product.installed))
        for name in extra:
            found = (self.model_extra or {}).get(name), *((p.model_extra or {}).get(name) for p in self.products)
            attrs[name] = {v for v in map(trait_value, found) if v is not None}
        return attrs

    def contact(self, channel: Channel) -> str | None:
        """The address for `channel`, or None when the customer has none or opted out."""
        if self.opted_out(channel):
            return None
        return self.phone if channel == "sms" else self.email

    def opted_out(self, channel: Channel) -> bool:
        return bool(getattr(self.opt_out, channel))

    def opting_out(self, channel: Channel) -> Customer:
        """This customer, opted out of `channel` as well."""
        return self.model_copy(update={"opt_out": self.opt_out.model_copy(update={channel: True})})

    def opting_in(self, channel: Channel) -> Customer:
        """This customer, opted back in to `channel` (an inbound START)."""
        return self.model_copy(update={"opt_out": self.opt_out.model_copy(update={channel: False})})

    def card(self) -> ContactCard:
        return ContactCard(self.id, self.region, self.preferred_channel, self.phone, self.email, self.timezone,
                           self.language, self.opt_out.sms, self.opt_out.email)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


class Reachable(Protocol):
    """What deciding whether and how to reach a customer reads: a `Customer` or its `ContactCard`."""

    @property
    def id(self) -> str: ...
    @property
    def preferred_channel(self) -> Channel: ...
    @property
    def timezone(self) -> str: ...
    def contact(self, channel: Channel) -> str | None: ...
    def opted_out(self, channel: Channel) -> bool: ...


class ContactCard(NamedTuple):
    """How to reach a customer, without their products or extra fields.

    Deciding an audience (channels, opt-outs, quiet hours, exclusions) needs only this, and it
    reads from a stored doc several times faster than a full `Customer` (a named tuple is the
    cheapest immutable record to build).

    >>> card = ContactCard.from_doc({"id": "CU-1", "region": "R", "phone": "+15125550100",
    ...                              "opt_out": {"sms": True, "email": False}})
    >>> card.contact("sms"), card.opted_out("sms"), card.preferred_channel
    (None, True, 'sms')
    """

    id: str
    region: str
    preferred_channel: Channel = "sms"
    phone: str | None = None
    email: str | None = None
    timezone: str = "UTC"
    language: str = "en"
    opt_out_sms: bool = False
    opt_out_email: bool = False

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ContactCard:
        """From the JSON of a validated `Customer` (as the customer index stores it)."""
        opt_out = doc.get("opt_out") or {}
        return cls(doc["id"], doc["region"], doc.get("preferred_channel", "sms"), doc.get("phone"), doc.get("email"),
                   doc.get("timezone", "UTC"), doc.get("language", "en"), bool(opt_out.get("sms")),
                   bool(opt_out.get("email")))

    def contact(self, channel: Channel) -> str | None:
        if self.opted_out(channel):
            return None
        return self.phone if channel == "sms" else self.email

    def opted_out(self, channel: Channel) -> bool:
        return self.opt_out_sms if channel == "sms" else self.opt_out_email


INDEXED_ATTRIBUTES = ("region", "model", "firmware", "lot", "installed")
"""Trait attributes the customer index keeps sets for; `installed` is the install quarter, e.g. 2025Q1."""

TRAIT_VALUE_MAX = 64
"""Longer strings are free text, not traits: they are not indexed."""


def trait_value(value: object) -> str | None:
    """The indexed form of an extra field's value, or None when it cannot be a trait.

    Booleans and integers are spelled as text; strings are kept when short and not empty;
    floats, lists, objects and long text are not traits.

    >>> [trait_value(v) for v in (True, 3, " gold ", 2.5, ["a"], "x" * 65, None)]
    ['true', '3', 'gold', None, None, None, None]
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value.strip()) <= TRAIT_VALUE_MAX:
        return value.strip()
    return None


def install_quarter(installed: date | str) -> str:
    """The install-date range a product counts in: its calendar quarter.

    >>> install_quarter(date(2025, 3, 1)), install_quarter("2025-11-30")
    ('2025Q1', '2025Q4')
    """
    day = date.fromisoformat(installed) if isinstance(installed, str) else installed
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class Origin:
    """Where a raw record came from: a Kafka position or a file line."""

    source: str
    partition: int | None = None
    offset: int | None = None
    line: int | None = None

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be used, with the reason and where it came from."""

    step: str
    reason: str
    origin: Origin
    raw: bytes

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "step": self.step,
                "reason": self.reason,
                "origin": self.origin.describe(),
                "raw": self.raw.decode("utf-8", errors="replace"),
            }
        )


@dataclass(frozen=True)
class Spike:
    """A window whose count is improbably high for its key, with why it fired."""

    topic: str
    region: str
    window_start: datetime
    window_end: datetime
    observed: int
    expected: float
    p_value: float
    score: float
    baseline: str
    example_case_ids: tuple[str, ...] = ()
    reporters: tuple[str, ...] = ()
    earlier_reporters: tuple[str, ...] = ()
    """Customers with a case on the key in the look-back before the window: they called
    already, maybe about this very problem, so they are not told "no need to call"."""
    segment: tuple[tuple[str, str], ...] = ()
    """Traits the signal itself names, e.g. the model and firmware of a device group."""
    decided_at: datetime | None = None
    """For a spike fired early, while its newest pane was still filling: the time of the newest record
    counted (the window's end is the pane's). None when the window had closed."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.topic, self.region)

    @property
    def early(self) -> bool:
        return self.decided_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": {"topic": self.topic, "region": self.region},
            "window_start": rfc3339(self.window_start),
            "window_end": rfc3339(self.window_end),
            "observed": self.observed,
            "expected": round(self.expected, 4),
            "score": round(self.score, 3),
            "p_value": self.p_value,
            "baseline": self.baseline,
            "example_case_ids": list(self.example_case_ids),
            **({"segment": dict(self.segment)} if self.segment else {}),
            **({"decided_at": rfc3339(self.decided_at)} if self.decided_at else {}),
        }


@dataclass(frozen=True)
class Trait:
    """One attribute value over-represented among the customers already hit."""

    attribute: str
    value: str
    affected: int
    affected_share: float
    base_share: float
    lift: float
    p_value: float


IncidentStatus = Literal["opened", "updated", "resolved"]


@dataclass(frozen=True)
class Incident:
    """The state of one incident as it changes: opened, updated or resolved."""

    id: str
    topic: str
    region: str
    status: IncidentStatus
    opened_at: datetime
    first_window_start: datetime
    last_spike_end: datetime
    observed: int
    expected: float
    spikes: int
    linked_cases: int
    reporters: frozenset[str] = frozenset()
    earlier_reporters: frozenset[str] = frozenset()
    resolved_at: datetime | None = None
    segment: tuple[Trait, ...] = ()
    signals: frozenset[str] = frozenset()
    """What fired: the case topic and/or telemetry metrics such as telemetry.wan_down."""
    known_segment: tuple[tuple[str, str], ...] = ()
    """Traits named by a telemetry device group; targeted as they are, with isolated traits."""

    def to_record(self) -> bytes:
        """The whole incident as JSON, for an incident store (reporters included: ids, not contacts)."""
        return orjson.dumps({**self.to_dict(), "reporters": sorted(self.reporters),
                             "earlier_reporters": sorted(self.earlier_reporters),
                             "known_segment": [list(pair) for pair in self.known_segment]})

    @classmethod
    def from_record(cls, raw: bytes) -> Incident:
        """Rebuild an incident stored by `to_record`.

        >>> from datetime import UTC
        >>> t = datetime(2026, 11, 17, 14, tzinfo=UTC)
        >>> inc = Incident("INC-1", "no_internet", "TX-453", "opened", t, t, t, 30, 2.5, 1, 30,
        ...                frozenset({"CU-1"}), segment=(Trait("region", "TX-453", 30, 1.0, 0.02, 50.0, 1e-30),))
        >>> Incident.from_record(inc.to_record()) == inc
        True
        """
        d = orjson.loads(raw)
        when = {k: datetime.fromisoformat(d[k]) if d.get(k) else None
                for k in ("opened_at", "first_window_start", "last_spike_end", "resolved_at")}
        return cls(
            id=d["id"], topic=d["key"]["topic"], region=d["key"]["region"], status=d["status"],
            opened_at=when["opened_at"], first_window_start=when["first_window_start"],  # type: ignore[arg-type]
            last_spike_end=when["last_spike_end"], observed=d["observed"],  # type: ignore[arg-type]
            expected=d["expected"], spikes=d["spikes"], linked_cases=d["linked_cases"],
            reporters=frozenset(d["reporters"]), earlier_reporters=frozenset(d["earlier_reporters"]),
            resolved_at=when["resolved_at"], segment=tuple(Trait(**t) for t in d["segment"]),
            signals=frozenset(d.get("signals", ())),
            known_segment=tuple((a, v) for a, v in d.get("known_segment", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": {"topic": self.topic, "region": self.region},
            "status": self.status,
            "opened_at": rfc3339(self.opened_at),
            "first_window_start": rfc3339(self.first_window_start),
            "last_spike_end": rfc3339(self.last_spike_end),
            "resolved_at": rfc3339(self.resolved_at) if self.resolved_at else None,
            "observed": self.observed,
            "expected": round(self.expected, 4),
            "spikes": self.spikes,
            "linked_cases": self.linked_cases,
            "reporters": len(self.reporters),
            "earlier_reporters": len(self.earlier_reporters),
            "segment": [asdict(t) for t in self.segment],
            "signals": sorted(self.signals),
            "known_segment": dict(self.known_segment),
        }


MessageKind = Literal["warning", "ack", "update-1", "update-2", "update-3", "update-4", "update-5", "resolved"]
"""A message's place in its incident's life: the warning, the responders' acknowledgement, up to five updates
(a sixth goes to responders and the status feed only: noise control), the all-clear."""
MAX_CUSTOMER_UPDATES = 5


def template_kind(kind: MessageKind) -> str:
    """The templates' name for a kind: every update shares one.

    >>> template_kind("update-3"), template_kind("warning")
    ('update', 'warning')
    """
    return "update" if kind.startswith("update-") else kind


@dataclass(frozen=True)
class MessageKey:
    """What the ledger dedups on: one message of a kind per incident and customer."""

    incident_id: str
    customer_id: str
    kind: MessageKind

    def __str__(self) -> str:
        return f"{self.incident_id}|{self.customer_id}|{self.kind}"


@dataclass(frozen=True)
class Message:
    """One rendered message to one customer on one channel."""

    key: MessageKey
    channel: Channel
    to: str
    body: str
    subject: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.key.incident_id,
            "customer_id": self.key.customer_id,
            "kind": self.key.kind,
            "channel": self.channel,
            "to": self.to,
            "subject": self.subject,
            "body": self.body,
        }


@dataclass(frozen=True)
class SendResult:
    """What a sender reports: delivered, or failed with a reason and whether to retry."""

    ok: bool
    retryable: bool = False
    reason: str = ""
    provider_id: str | None = None
    opted_out: bool = False
    halts_channel: bool = False
    """The provider refused our own credentials: no message on this channel can go until they are
    fixed, so this one is kept for later (retryable), never recorded as its own failure."""
    uncertain: bool = False
    """The provider may have taken the message although we saw a failure (a timeout, a dropped
    connection, a server error after the request went out): before sending it again, look it up
    in the provider's own log."""
    retry_after: float | None = None
    """Seconds the provider asked us to wait (HTTP Retry-After), when it said so."""


@dataclass(frozen=True)
class PaneCases:
    """The cases of one key in one pane: how many, a few ids, and who reported."""

    count: int
    case_ids: tuple[str, ...] = ()
    reporters: tuple[str, ...] = ()


@dataclass(frozen=True)
class WindowScore:
    """How one window of a key compared with its baseline, spike or not."""

    observed: int
    expected: float
    p_value: float
    threshold: int | None = None
    """The smallest count that would have fired: the top of the expected band (when asked for)."""


@dataclass(frozen=True)
class WindowVerdict:
    """What detection concluded when one pane of a topic closed.

    Emitted for every pane, spiking or quiet, so incidents downstream can tell time
    passing (quiet windows) and link the pane's cases to open incidents.
    """

    topic: str
    pane_start: datetime
    pane_end: datetime
    spikes: tuple[Spike, ...] = ()
    cases: dict[str, PaneCases] = field(default_factory=dict)
    national: WindowScore | None = None
    """The topic's whole window against its baseline (None before warm-up): the series a
    backtest report plots and a benchmark thresholds."""
    regional: dict[str, WindowScore] = field(default_factory=dict)
    """Per region with cases in the window, when the detector is asked to score regions."""
    early: bool = False
    """Judged while the pane was still filling: only the spikes fired early, no cases (the pane's
    closing verdict follows with its final counts)."""

    def window_records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per scored key: the series behind a backtest report."""
        scores = ({NATIONAL: self.national} if self.national else {}) | self.regional
        return [{"topic": self.topic, "region": region, "window_end": rfc3339(self.pane_end),
                 "observed": score.observed, "expected": round(score.expected, 4),
                 "threshold": score.threshold, "p_value": score.p_value}
                for region, score in scores.items()]
