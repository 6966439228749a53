"""Parsing raw records at the edge: a good record, or a dead letter with its reason."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from forewarn.records import Case, Customer, DeadLetter, Origin, Telemetry
from forewarn.sources import RECORD_KINDS, SourceKinds

MAX_RECORD_BYTES = 64 * 1024
_MODELS: dict[str, type[Case] | type[Telemetry] | type[Customer]] = {
    "case": Case, "telemetry": Telemetry, "customer": Customer}
MIXED = SourceKinds.mixed_file()
"""A source whose records say what they are; cases when they do not."""
_GEOJSON_TYPES = frozenset({"Feature", "FeatureCollection"})
"""The "type" of an NWS alert document (GeoJSON)."""
_BOM = b"\xef\xbb\xbf"


_PLAIN_FIELDS = frozenset({"timezone", "preferred_channel", "language", "region", "type", "ts", "topic"})
"""Fields whose value is no personal data, so an error message may quote it."""


def explain(error: ValidationError) -> str:
    """`field: message` for each error; a personal value quoted in a message is redacted.

    Validators of phones and emails sometimes repeat the bad value in their message;
    reasons travel to dead-letter topics and logs, so such values are cut out.
    """
    parts = []
    for item in error.errors(include_url=False, include_input=True):
        where = ".".join(str(p) for p in item["loc"]) or "record"
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        field = item["loc"][-1] if item["loc"] else None
        if isinstance(value, str) and value and field not in _PLAIN_FIELDS:
            secrets = [value, *value.split("@")] if "@" in value else [value]
            for secret in sorted(secrets, key=len, reverse=True):
                if len(secret) >= 3:
                    message = message.replace(secret, "<redacted>")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_record(raw: bytes, origin: Origin, kinds: SourceKinds = MIXED, max_bytes: int = MAX_RECORD_BYTES,
                 step: str = "parse") -> Case | Telemetry | Customer | DeadLetter:
    """Validate one JSON record as a kind its source accepts; anything else is a dead letter saying why.

    Only a mixed source lets the record's own "type" choose its model: on a single-kind source
    (a production topic) a record claiming another type is refused, never re-routed.

    >>> parse_record(b'{"ts": "2026-11-20T14:03:11Z", "topic": "no_internet", "region": "TX-453"}',
    ...              Origin("cases", 0, 7)).topic
    'no_internet'
    >>> parse_record(b'{"ts": "2026-11-20 14:03:11", "region": "TX-453"}', Origin("cases")).reason
    'ts: Input should have timezone info'
    >>> parse_record(b'{oops', Origin("cases")).reason[:16]
    'malformed JSON: '
    >>> customers = SourceKinds.only("customer")
    >>> parse_record(b'{"id": "CU-1", "region": "TX-453", "phone": "12"}', Origin("customers"), customers).reason
    'phone: phone is not an international number (+country code): (0) Missing or invalid default region.'
    >>> parse_record(b'{"type": "customer", "id": "CU-1", "region": "TX-453"}', Origin("cases"),
    ...              SourceKinds.only("case")).reason
    'type customer is not accepted on source cases'
    """
    if len(raw) > max_bytes:
        return DeadLetter(step, f"record of {len(raw)} bytes exceeds the {max_bytes}-byte limit",
                          origin, raw[:1024])
    data = _decode(raw)
    if isinstance(data, _Malformed):
        return DeadLetter(step, data.reason(raw, origin, kinds), origin, raw)
    if not isinstance(data, dict):
        return DeadLetter(step, f"expected a JSON object, got {type(data).__name__}", origin, raw)
    kind = data.get("type", kinds.default)
    model = _MODELS.get(kind) if isinstance(kind, str) and kind in kinds.accepts else None
    if model is None:
        return DeadLetter(step, _refused(kind, origin, kinds), origin, raw)
    if model is Customer:
        data.pop("type", None)  # says what the record is, not a trait of the customer
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return DeadLetter(step, explain(exc), origin, raw)


def _refused(kind: object, origin: Origin, kinds: SourceKinds) -> str:
    """Why a record's type is not read here; only names we know are quoted (the value is the record's)."""
    if not isinstance(kind, str):
        return f"record type must be a string: source {origin.source} accepts {sorted(kinds.accepts)}"
    if kind in RECORD_KINDS:
        if kind in kinds.accepts:  # an accepted alert that was not shaped like one
            return f"type {kind} is not a CAP or NWS GeoJSON alert document"
        return f"type {kind} is not accepted on source {origin.source}"
    if kind in _GEOJSON_TYPES:
        return f"type {kind} (a GeoJSON alert) is not accepted on source {origin.source}"
    shown = repr(kind) if kind.isidentifier() and len(kind) <= 32 else "(not a plain name)"
    return f"unknown record type {shown}: source {origin.source} accepts {sorted(kinds.accepts)}"


class _Malformed:
    """orjson's complaint about a record that no decoder could read."""

    def __init__(self, error: Exception):
        self.error = error

    def reason(self, raw: bytes, origin: Origin, kinds: SourceKinds) -> str:
        if raw.lstrip()[:1] == b"<" and "alert" not in kinds.accepts:
            return f"an XML document (such as a CAP alert) is not accepted on source {origin.source}"
        return f"malformed JSON: {self.error}"


def _decode(raw: bytes) -> Any:
    """orjson, after a leading UTF-8 byte order mark (which some editors write) is dropped.

    orjson refuses a number beyond a double's range even in a field nobody reads; rather than
    lose the record, such a number is kept as its text (a field that must be a number then
    refuses it by name). The fallback runs only on records orjson refused, so the hot path is
    orjson alone; whatever it admits must still be something orjson can write back out.
    """
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        data = json.loads(raw.decode("utf-8"), parse_float=_finite_or_text, parse_constant=_no_constant)
        orjson.dumps(data)  # refuses what orjson would have refused for other reasons (lone surrogates)
    except (ValueError, TypeError, RecursionError, orjson.JSONEncodeError):
        return _Malformed(error)
    return data


def _finite_or_text(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


CaseFields = tuple[datetime, str | None, str, str | None, str | None, str | None]
"""A case as detection reads it: (ts in UTC, topic, region, id, customer_id, text)."""

_TS_CACHE: dict[str, datetime] = {}
_TS_CACHE_SIZE = 4096
"""Live streams stamp many records with the same second; a replay's times rarely repeat, so the cache is
small and simply starts over when full."""


def fast_case(data: dict[str, Any]) -> CaseFields | None:
    """The fields of a decoded case on the hot path, or None to leave the record to full validation.

    Accepts only what `Case.model_validate` surely accepts, with the same values: plain strings
    where strings belong, a non-empty region (and topic, when given), and a timestamp in the plain
    RFC 3339 shape `YYYY-MM-DDTHH:MM:SS[.fff]` with `Z` or `±HH:MM`. Anything else — another shape
    of time, a number where a string belongs, a missing field — returns None, and the full
    pydantic validation decides, with the reason a dead letter carries. (A property test holds the
    two to the same answers: tests/unit/test_fast_parse.py.)

    >>> fast_case({"ts": "2026-11-20T14:03:11+01:00", "topic": "billing", "region": "TX-453", "id": "C-1"})
    (datetime.datetime(2026, 11, 20, 13, 3, 11, tzinfo=datetime.timezone.utc), 'billing', 'TX-453', 'C-1', None, None)
    >>> fast_case({"ts": 1763647391, "region": "TX-453"}) is None
    True
    """
    ts = _fast_ts(data.get("ts"))
    region = data.get("region")
    topic = data.get("topic")
    if ts is None or type(region) is not str or not region or (topic is not None and (
            type(topic) is not str or not topic)):
        return None
    case_id, customer_id, text = data.get("id"), data.get("customer_id"), data.get("text")
    if (case_id is not None and type(case_id) is not str) or (
            customer_id is not None and type(customer_id) is not str) or (text is not None and type(text) is not str):
        return None
    return ts, topic, region, case_id, customer_id, text


def _fast_ts(value: Any) -> datetime | None:
    if type(value) is not str:
        return None
    cached = _TS_CACHE.get(value)
    if cached is not None:
        return cached
    n = len(value)
    if not (20 <= n <= 32 and value[4] == "-" and value[7] == "-" and value[10] == "T" and value[13] == ":"
            and value[16] == ":" and (value[-1] == "Z" or (value[-6] in "+-" and value[-3] == ":"))):
        return None
    if value[-1] != "Z" and not (value[-5:-3].isdigit() and value[-2:].isdigit() and value[-5:-3] < "24"
                                 and value[-2:] < "60"):
        return None  # an offset pydantic would refuse (+00:99); Python's parser takes it
    if value[19] not in "Z+-":  # only ".", then 1 to 6 ASCII digits, may stand between seconds and zone
        fraction = value[20:n - (1 if value[-1] == "Z" else 6)]
        if value[19] != "." or not (1 <= len(fraction) <= 6 and fraction.isascii() and fraction.isdigit()):
            return None
    try:
        ts = datetime.fromisoformat(value)
        if ts.tzinfo is None:
            return None
        if ts.tzinfo is not UTC:  # "Z" parses as UTC itself: no second datetime for the usual case
            ts = ts.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    if len(_TS_CACHE) >= _TS_CACHE_SIZE:
        _TS_CACHE.clear()
    _TS_CACHE[value] = ts
    return ts
