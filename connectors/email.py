"""Email through any SMTP relay, one connection per message.

Permanent SMTP replies (5xx) are final; temporary replies (4xx), a dropped connection,
refused connections and timeouts are retryable; a refused login halts the channel (it is
ours, not the message's: the message waits for the fix). Reasons carry the reply code only: SMTP
reply texts often quote the recipient's address.

Each message has a Message-ID derived from its ledger key, so a re-send of the same
message (at-least-once delivery) carries the same id and receivers can fold duplicates.

With an HTML part (`send(message, html)`) the email is multipart/alternative: the text, then the
HTML (see `JinjaRenderer.render_html`); without one it is plain text. A sender built with
`unsubscribe_base` (the web app's public URL) and `unsubscribe_secret` adds `List-Unsubscribe`
with a signed link (`forewarn.unsubscribe`) and RFC 8058's `List-Unsubscribe-Post: List-Unsubscribe=One-Click`,
so mail clients show an unsubscribe button that works in one click (a relay that DKIM-signs should
cover both headers, as RFC 8058 asks). Headers are folded at 998 characters, not 78, so the link
stays one plain `<URL>` (folding it would turn it into encoded words, which clients do not read).

A sender keeps no connection or other state between sends (one SMTP session per message), so
any number of threads may share one.

>>> from forewarn.records import MessageKey
>>> sender = SmtpSender("smtp.example.com", 587, "alerts@example.com")
>>> mail = sender.build(Message(MessageKey("INC-1", "CU-42", "warning"), "email", "ana@example.com",
...                             "Outage in your area."))
>>> mail["Subject"], mail["X-Forewarn-Key"], mail.get_content_type(), sender.identity
('Service notice', 'INC-1|CU-42|warning', 'text/plain', 'smtp:smtp.example.com:587:alerts@example.com')
>>> SmtpSender("smtp.example.com", 587, "alerts@example.com", username="u")
Traceback (most recent call last):
...
ValueError: SmtpSender needs both username and password, or neither
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from forewarn.records import Channel, Message, SendResult
from forewarn.settings import ConfigError
from forewarn.unsubscribe import check_secret, unsubscribe_url

log = logging.getLogger(__name__)

_LOGIN_FIX = "fix email.username / SMTP_PASSWORD and restart"
_AUTH_REQUIRED = 530
_POLICY = policy.default.clone(max_line_length=998)
"""RFC 5322's hard line limit: a long `List-Unsubscribe: <URL>` is never folded into encoded words."""
ONE_CLICK = "List-Unsubscribe=One-Click"


def classify_smtp_code(code: int, what: str) -> SendResult:
    """4xx is temporary (retry), anything else is final.

    >>> classify_smtp_code(451, "recipient refused").retryable
    True
    >>> classify_smtp_code(550, "recipient refused").reason
    'smtp 550: recipient refused'
    """
    return SendResult(ok=False, retryable=400 <= code < 500, reason=f"smtp {code}: {what}")


class SmtpSender:
    """Sends email messages over SMTP; implements `Sender`."""

    channel: Channel = "email"

    def __init__(
        self,
        host: str,
        port: int,
        from_addr: str,
        *,
        starttls: bool = True,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        default_subject: str = "Service notice",
        tls_context: ssl.SSLContext | None = None,
        unsubscribe_base: str | None = None,
        unsubscribe_secret: bytes | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("SmtpSender needs both username and password, or neither")
        if (unsubscribe_base is None) != (unsubscribe_secret is None):
            raise ValueError("SmtpSender needs both unsubscribe_base and unsubscribe_secret, or neither")
        if unsubscribe_base is not None and not unsubscribe_base.startswith(("https://", "http://")):
            raise ValueError("unsubscribe_base must be the web app's public http(s) URL")
        if "@" not in from_addr:
            raise ValueError("from_addr must be an email address")
        self.host = host
        self.port = port
        self.from_addr = from_addr
        self.starttls = starttls
        self.timeout = timeout
        self.default_subject = default_subject
        self._credentials = (username, password) if username is not None and password is not None else None
        self._tls_context = tls_context
        self._domain = from_addr.rpartition("@")[2].strip(">") or "forewarn.invalid"
        self.unsubscribe_base = unsubscribe_base
        self._unsubscribe_secret = check_secret(unsubscribe_secret) if unsubscribe_secret is not None else None

    @property
    def identity(self) -> str:
        """What a shared rate limit is kept per: one relay and one sending address."""
        return f"smtp:{self.host}:{self.port}:{self.from_addr}"

    def unsubscribe_url(self, message: Message) -> str | None:
        """The signed link that opts the message's customer out of email; None without unsubscribe settings."""
        if self.unsubscribe_base is None or self._unsubscribe_secret is None:
            return None
        return unsubscribe_url(self.unsubscribe_base, message.key.customer_id, "email", self._unsubscribe_secret)

    def check(self, timeout: float = 2.0) -> None:
        """Open a session as a send would (STARTTLS, login) and close it: raise ConfigError naming the
        setting to fix, so a wrong host or password stops the start instead of every email."""
        where = f"SMTP server {self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self._tls_context or ssl.create_default_context())
                if self._credentials is not None:
                    smtp.login(*self._credentials)
                smtp.ehlo_or_helo_if_needed()
                code, _ = smtp.mail(self.from_addr)  # the relay's verdict on our sender, with nothing sent
                smtp.rset()
        except smtplib.SMTPAuthenticationError as exc:
            raise ConfigError(f"{where} refused the login of email.username ({exc.smtp_code}): "
                              f"{_LOGIN_FIX}") from None
        except smtplib.SMTPNotSupportedError:
            raise ConfigError(f"{where} does not offer {'STARTTLS' if self.starttls else 'AUTH'}: set email.starttls: "
                              "false only for a relay on a trusted network, or remove email.username") from None
        except ssl.SSLError as exc:
            raise ConfigError(f"{where}: TLS failed ({type(exc).__name__}): fix the server's certificate, or "
                              "email.host to the name on it") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ConfigError(f"{where} did not answer as SMTP ({type(exc).__name__}): start it or fix email.host "
                              "/ email.port") from None
        if code == _AUTH_REQUIRED:
            raise ConfigError(f"{where} requires a login: set email.username, and SMTP_PASSWORD in the environment")
        if code >= 400:
            raise ConfigError(f"{where} refused email.from_addr as the sender ({code}): use an address the relay "
                              "may send from")

    def build(self, message: Message, html: str | None = None) -> EmailMessage:
        """The email for `message` (multipart/alternative with `html`); raises ValueError for a header that
        cannot be sent."""
        digest = hashlib.sha256(str(message.key).encode()).hexdigest()[:32]
        mail = EmailMessage(policy=_POLICY)
        mail["Subject"] = message.subject or self.default_subject
        mail["From"] = self.from_addr
        mail["To"] = message.to
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = f"<forewarn.{digest}@{self._domain}>"
        mail["X-Forewarn-Key"] = str(message.key)
        link = self.unsubscribe_url(message)
        if link is not None:
            mail["List-Unsubscribe"] = f"<{link}>"
            mail["List-Unsubscribe-Post"] = ONE_CLICK
        mail.set_content(message.body)
        if html is not None:
            mail.add_alternative(html, subtype="html")
        return mail

    def send(self, message: Message, html: str | None = None, *, status_callback: str | None = None) -> SendResult:
        """Send one email (with an HTML part when `html` is given); classify any failure instead of raising.
        `status_callback` is for SMS providers: SMTP reports nothing back."""
        if message.channel != self.channel:
            return SendResult(ok=False, reason=f"not an email message (channel {message.channel})")
        try:
            mail = self.build(message, html)
        except (ValueError, TypeError):
            result = SendResult(ok=False, reason="email: invalid address or header")
        else:
            result = self._transmit(mail, message.to)
        if result.ok:
            log.debug("email sent key=%s", message.key)
        else:
            log.warning("email not sent key=%s reason=%s retryable=%s", message.key, result.reason,
                        result.retryable)
        return result

    def _transmit(self, mail: EmailMessage, to: str) -> SendResult:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self._tls_context or ssl.create_default_context())
                if self._credentials is not None:
                    smtp.login(*self._credentials)
                refused = smtp.send_message(mail, from_addr=self.from_addr, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0] if exc.recipients else 550
            return classify_smtp_code(code, "recipient refused")
        except smtplib.SMTPAuthenticationError as exc:
            return SendResult(ok=False, retryable=True, halts_channel=True,
                              reason=f"smtp {exc.smtp_code}: channel halted: authentication failed; {_LOGIN_FIX}")
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code == _AUTH_REQUIRED:  # our configuration, not this message: halt, keep it for later
                return SendResult(ok=False, retryable=True, halts_channel=True,
                                  reason=f"smtp 530: channel halted: authentication required; {_LOGIN_FIX}")
            return classify_smtp_code(exc.smtp_code, "sender refused")
        except smtplib.SMTPDataError as exc:
            return classify_smtp_code(exc.smtp_code, "message refused")
        except smtplib.SMTPResponseException as exc:
            return classify_smtp_code(exc.smtp_code, "server refused the session")
        except smtplib.SMTPServerDisconnected:
            return SendResult(ok=False, retryable=True, reason="smtp: server disconnected")
        except smtplib.SMTPNotSupportedError:
            return SendResult(ok=False, reason="smtp: server lacks a required extension (STARTTLS, SMTPUTF8)")
        except smtplib.SMTPException as exc:
            return SendResult(ok=False, reason=f"smtp: {type(exc).__name__}")
        except ssl.SSLCertVerificationError:
            return SendResult(ok=False, reason="smtp: TLS certificate not trusted")
        except TimeoutError:
            return SendResult(ok=False, retryable=True, reason="smtp: timeout")
        except OSError as exc:
            reason = f"smtp: connection failed ({type(exc).__name__})"
            return SendResult(ok=False, retryable=True, reason=reason)
        if refused:
            code = next(iter(refused.values()))[0]
            return classify_smtp_code(code, "recipient refused")
        return SendResult(ok=True, provider_id=str(mail["Message-ID"]))
