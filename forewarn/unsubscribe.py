"""Signed unsubscribe links: a token names a customer and a channel, and only we can make one.

An email carries `List-Unsubscribe: <{public_url}/unsubscribe?t=TOKEN>` (and RFC 8058's one-click
`List-Unsubscribe-Post`); the web app opts the customer out when the token verifies. A token is
`{payload}.{mac}`, both base64url without padding: the payload is the channel and the customer id,
the MAC an HMAC-SHA256 over it with the secret (`FOREWARN_UNSUBSCRIBE_SECRET`). Tokens never expire:
a link in a months-old email must still work. Rotating the secret voids every link already sent.

The customer id is readable in the token (it is signed, not encrypted); ids are not contact details.

>>> secret = b"a long random secret, 32 bytes at least"
>>> token = make_token("CU-42", "email", secret)
>>> read_token(token, secret)
('CU-42', 'email')
>>> read_token(token, b"another secret of enough length.."), read_token(token[:-2], secret)
(None, None)
>>> unsubscribe_url("https://alerts.example.com/", "CU-42", "email", secret) == (
...     "https://alerts.example.com/unsubscribe?t=" + token)
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import cast, get_args

from forewarn.records import Channel

UNSUBSCRIBE_PATH = "/unsubscribe"
"""Where the web app serves unsubscribe links (GET: a confirmation page; POST: opt out)."""

MIN_SECRET_BYTES = 16
"""Shorter secrets are refused: a guessable secret lets anyone unsubscribe anyone."""

_DOMAIN = b"forewarn/unsubscribe/v1\n"
"""Bound into every MAC, so a MAC made with the same secret for another purpose never verifies here."""
_MAX_TOKEN = 1_024
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")
"""base64url without padding: the payload, a dot, the 32 bytes of the MAC."""


def check_secret(secret: bytes) -> bytes:
    """`secret`, or ValueError when it is too short to sign with.

    >>> check_secret(b"short")
    Traceback (most recent call last):
    ...
    ValueError: the unsubscribe secret must be 16 bytes or more: set FOREWARN_UNSUBSCRIBE_SECRET to a long random string
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the unsubscribe secret must be {MIN_SECRET_BYTES} bytes or more: set "
                         "FOREWARN_UNSUBSCRIBE_SECRET to a long random string")
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(payload: str, secret: bytes) -> bytes:
    return hmac.new(secret, _DOMAIN + payload.encode("ascii"), hashlib.sha256).digest()


def make_token(customer_id: str, channel: Channel, secret: bytes) -> str:
    """A URL-safe token naming `customer_id` and `channel`, signed with `secret`."""
    if channel not in get_args(Channel):
        raise ValueError(f"not a channel: {channel!r}")
    if not customer_id:
        raise ValueError("an unsubscribe token needs a customer id")
    payload = _b64(f"{channel}\n{customer_id}".encode())
    return f"{payload}.{_b64(_mac(payload, check_secret(secret)))}"


def read_token(token: str, secret: bytes) -> tuple[str, Channel] | None:
    """(customer id, channel) of a token signed with `secret`; None for anything else (forged,
    tampered, truncated, signed with another secret). The MAC is compared in constant time."""
    if len(token) > _MAX_TOKEN or not _TOKEN.fullmatch(token):
        return None
    payload, _, mac = token.partition(".")
    try:
        expected = _b64(_mac(payload, check_secret(secret)))
    except ValueError:
        return None
    if not hmac.compare_digest(mac, expected):  # as text: a MAC spelled another way (spare low bits) is refused
        return None
    try:
        channel, _, customer_id = _unb64(payload).decode("utf-8").partition("\n")
    except (binascii.Error, ValueError):
        return None
    if channel not in get_args(Channel) or not customer_id:
        return None
    return customer_id, cast(Channel, channel)


def unsubscribe_url(public_url: str, customer_id: str, channel: Channel, secret: bytes) -> str:
    """The link that opts `customer_id` out of `channel`, on the web app at `public_url`."""
    return f"{public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t={make_token(customer_id, channel, secret)}"
