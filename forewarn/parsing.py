"""Parsing raw records at the edge: a good record, or a dead letter with its reason."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from forewarn.records import Case, Customer, DeadLetter, Origin, Telemetry

MAX_RECORD_BYTES = 64 * 1024
_MODELS: dict[str, type[Case] | type[Telemetry] | type[Customer]] = {
    "case": Case, "telemetry": Telemetry, "customer": Customer}


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


def parse_record(raw: bytes, origin: Origin, default_type: str = "case",
                 max_bytes: int = MAX_RECORD_BYTES, step: str = "parse") -> Case | Telemetry | Customer | DeadLetter:
    """Validate one JSON record; anything unusable becomes a dead letter saying why.

    >>> parse_record(b'{"ts": "2026-11-20T14:03:11Z", "topic": "no_internet", "region": "TX-453"}',
    ...              Origin("cases", 0, 7)).topic
    'no_internet'
    >>> parse_record(b'{"ts": "2026-11-20 14:03:11", "region": "TX-453"}', Origin("cases")).reason
    'ts: Input should have timezone info'
    >>> parse_record(b'{oops', Origin("cases")).reason[:16]
    'malformed JSON: '
    >>> parse_record(b'{"id": "CU-1", "region": "TX-453", "phone": "12"}', Origin("customers"), "customer").reason
    'phone: phone is not an international number (+country code): (0) Missing or invalid default region.'
    """
    if len(raw) > max_bytes:
        return DeadLetter(step, f"record of {len(raw)} bytes exceeds the {max_bytes}-byte limit",
                          origin, raw[:1024])
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return DeadLetter(step, f"malformed JSON: {exc}", origin, raw)
    if not isinstance(data, dict):
        return DeadLetter(step, f"expected a JSON object, got {type(data).__name__}", origin, raw)
    kind = data.get("type", default_type)
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return DeadLetter(step, f"unknown record type {kind!r}: expected one of {sorted(_MODELS)}", origin, raw)
    if model is Customer:
        data.pop("type", None)  # says what the record is, not a trait of the customer
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return DeadLetter(step, explain(exc), origin, raw)
