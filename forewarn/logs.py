"""Logging the Forewarn way: our own lines at the chosen level, identifiers kept out.

Some libraries we call log what they send: the Twilio client writes every request URL
(`/Accounts/AC…/Messages.json`, the account SID) at INFO, and urllib3 writes the same path at
DEBUG. Forewarn never logs a phone number, an email address, a message body or a credential,
so those loggers are held at WARNING whatever level Forewarn itself logs at. Embedders that
configure logging themselves call `quiet_third_party_loggers()` after doing so.
"""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"[^\s@'\"<>]+@[^\s@'\"<>]+")
_PHONE = re.compile(r"\+?\d[\d ().-]{5,}\d")


def redact(text: str) -> str:
    """`text` with anything shaped like an email address or a phone number cut out, for log lines built
    from exceptions, whose messages may quote the value that failed.

    >>> redact("bad value '+1 512 555 0100' for ana@example.com at pane 12")
    "bad value '<redacted>' for <redacted> at pane 12"
    """
    return _PHONE.sub("<redacted>", _EMAIL.sub("<redacted>", text))

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

IDENTIFYING_LOGGERS = ("twilio", "urllib3", "requests")
"""Loggers (and their children, e.g. twilio.http_client, urllib3.connectionpool) that echo request
URLs, headers or bodies carrying account SIDs, phone numbers or message text."""


def quiet_third_party_loggers() -> None:
    """Hold the identifying loggers at WARNING: their warnings and errors still show, their requests do not."""
    for name in IDENTIFYING_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))

