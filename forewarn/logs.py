"""Logging the Forewarn way: our own lines at the chosen level, identifiers kept out, as text or JSON.

Some libraries we call log what they send: the Twilio client writes every request URL
(`/Accounts/AC…/Messages.json`, the account SID) at INFO, and urllib3 writes the same path at
DEBUG. Forewarn never logs a phone number, an email address, a message body or a credential,
so those loggers are held at WARNING whatever level Forewarn itself logs at. Embedders that
configure logging themselves call `quiet_third_party_loggers()` after doing so.

`configure_logging` sets up the root logger with one of two formatters, both of which pass every
line (message, exception, extra fields) through `redact`, so a phone- or email-shaped value that
reached a message (an exception quoting the value it refused, say) is cut before it is written:

- text (the default): `2026-11-20 14:03:11,123 INFO forewarn.flows.live: message`;
- json (`FOREWARN_LOG_FORMAT=json`, or `observability.log_format: json`): one object a line,
  `{"time": "2026-11-20T14:03:11.123Z", "level": "INFO", "logger": "...", "message": "..."}`,
  plus `exc_info` and any `extra=` fields, for a log shipper to index.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pythonjsonlogger.orjson import OrjsonFormatter

_EMAIL = re.compile(r"[^\s@'\"<>]+@[^\s@'\"<>]+")
# An RFC 3339 / ISO 8601 date or date-time (a real calendar date) is kept whole: it is no phone number,
# and dead-letter reasons and log lines quote record times. Anything else phone-shaped is cut.
_DATE_TIME = (r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
              r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?!\d)")
_PHONE = re.compile(rf"(?P<kept>{_DATE_TIME})|\+?\(?\d[\d ().-]{{5,}}\d")
REDACTED = "<redacted>"


def _cut(match: re.Match[str]) -> str:
    return match.group() if match.group("kept") is not None else REDACTED


def redact(text: str) -> str:
    """`text` with anything shaped like an email address or a phone number cut out, for log lines built
    from exceptions, whose messages may quote the value that failed. Dates and times stay.

    >>> redact("bad value '+1 512 555 0100' for ana@example.com at pane 12")
    "bad value '<redacted>' for <redacted> at pane 12"
    >>> redact("late: 2026-11-20T14:03:11+00:00 arrived; call (512) 555-0100 or 5125550100")
    'late: 2026-11-20T14:03:11+00:00 arrived; call <redacted> or <redacted>'
    """
    return _PHONE.sub(_cut, _EMAIL.sub(REDACTED, text))


def _redact_value(value: Any) -> Any:
    """A log field with `redact` applied to every string in it (and to numbers long enough to be a phone)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if redact(str(value)) == str(value) else REDACTED
    if isinstance(value, dict):
        return {redact(str(k)): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    return redact(str(value))


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]
LOG_FORMAT_ENV = "FOREWARN_LOG_FORMAT"


class RedactingFormatter(logging.Formatter):
    """The text format, with `redact` over everything after the timestamp (message and traceback)."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = redact(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))


class JsonFormatter(OrjsonFormatter):
    """One JSON object a line (python-json-logger over orjson): time (UTC, ms), level, logger, message,
    and exc_info / stack_info / extra fields when present; every value but the first three redacted."""

    _OWN = frozenset({"time", "level", "logger"})

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return stamp.replace("+00:00", "Z")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {k: v if k in self._OWN else _redact_value(v) for k, v in log_data.items()}


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else RedactingFormatter()


def chosen_format(configured: LogFormat = "text") -> LogFormat:
    """FOREWARN_LOG_FORMAT (json or text) if set, else `configured`; another value fails loudly."""
    value = os.environ.get(LOG_FORMAT_ENV, "").strip().lower()
    if not value:
        return configured
    if value not in ("json", "text"):
        raise ValueError(f"{LOG_FORMAT_ENV}={value!r} is not a log format: use json or text")
    return "json" if value == "json" else "text"


class _ForewarnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler `configure_logging` installs (and replaces when called again)."""


def configure_logging(level: int = logging.WARNING, log_format: LogFormat | None = None,
                      stream: IO[str] | None = None) -> logging.Handler:
    """Log to `stream` (stderr) at `level`, as text or JSON (`log_format`, else FOREWARN_LOG_FORMAT, else text),
    every line redacted; the identifying third-party loggers are held at WARNING. Calling it again replaces
    the handler it installed before (other handlers, an embedder's or pytest's, are left alone)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ForewarnHandler)]:
        root.removeHandler(old)
    handler = _ForewarnHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format or chosen_format()))
    root.addHandler(handler)
    root.setLevel(level)
    quiet_third_party_loggers()
    return handler


def use_log_format(log_format: LogFormat) -> None:
    """Switch the handler `configure_logging` installed to `log_format` (the config's choice, known only
    after the settings loaded), unless FOREWARN_LOG_FORMAT decides."""
    chosen = chosen_format(log_format)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _ForewarnHandler):
            handler.setFormatter(formatter(chosen))


IDENTIFYING_LOGGERS = ("twilio", "urllib3", "requests")
"""Loggers (and their children, e.g. twilio.http_client, urllib3.connectionpool) that echo request
URLs, headers or bodies carrying account SIDs, phone numbers or message text."""


def quiet_third_party_loggers() -> None:
    """Hold the identifying loggers at WARNING: their warnings and errors still show, their requests do not."""
    for name in IDENTIFYING_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
