"""A real SMTP server (aiosmtpd) on a free port that keeps what it receives.

Recipients can be made to fail on RCPT TO, permanently ("550 5.1.1 mailbox unavailable")
or temporarily ("451 4.3.0 try again"), to test how senders classify failures. AUTH
PLAIN/LOGIN is offered without TLS and accepts only `SmtpServer.username`/`password`;
clients that do not authenticate are served too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cached_property
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.ports import free_port

REFUSED = "550 5.1.1 mailbox unavailable"
TRY_AGAIN = "451 4.3.0 try again"


@dataclass(frozen=True)
class Received:
    """One delivered envelope; its message is parsed when a test first reads it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes = field(repr=False)
    login: str | None = None

    @cached_property
    def message(self) -> EmailMessage:
        """The parsed message. Parsing here, not in `handle_DATA`, keeps it off the server's event loop, which
        serves every session: parsing thousands of emails there made the server, not the sender, the bottleneck
        of a test that delivers them (a quarter of the loop's time)."""
        return cast(EmailMessage, message_from_bytes(self.content, policy=policy.default))


@dataclass
class SmtpServer:
    """The state the handler serves from; reset before each test."""

    host: str
    port: int
    username: str = "forewarn"
    password: str = "s3cret"
    messages: list[Received] = field(default_factory=list)
    _refused: set[str] = field(default_factory=set)
    _temporary: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, *addresses: str) -> None:
        """Answer RCPT TO for these addresses with a permanent 550."""
        with self._lock:
            self._refused.update(a.lower() for a in addresses)

    def fail_temporarily(self, *addresses: str) -> None:
        """Answer RCPT TO for these addresses with a temporary 451."""
        with self._lock:
            self._temporary.update(a.lower() for a in addresses)

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self._refused.clear()
            self._temporary.clear()

    # aiosmtpd handler hooks (run on the controller's event-loop thread)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            if address.lower() in self._refused:
                return REFUSED
            if address.lower() in self._temporary:
                return TRY_AGAIN
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        with self._lock:
            self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content, login))
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.username.encode()
            and auth_data.password == self.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@pytest.fixture(scope="session")
def _smtp_session() -> Iterator[SmtpServer]:
    state = SmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(
        state,
        hostname=state.host,
        port=state.port,
        authenticator=state.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield state
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(_smtp_session: SmtpServer) -> Iterator[SmtpServer]:
    """The session's SMTP server with no messages and no failing recipients."""
    _smtp_session.reset()
    yield _smtp_session
    _smtp_session.reset()
