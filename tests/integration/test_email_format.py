"""The email a customer receives, read back from a real SMTP server (aiosmtpd): multipart text + HTML from
the templates, RFC 8058 one-click unsubscribe headers whose link works against the web app, and a
Message-ID that stays the same across re-sends."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from forewarn.connectors.email import SmtpSender
from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.connectors.memory_suppressions import InMemorySuppressions
from forewarn.connectors.templates import JinjaRenderer
from forewarn.interfaces import Sender
from forewarn.localtime import LocalTime
from forewarn.records import Customer, Message, MessageKey
from forewarn.settings import BUNDLED_CONFIG
from forewarn.unsubscribe import read_token
from forewarn.web import create_app, serve
from tests.servers.smtp_server import SmtpServer

pytestmark = pytest.mark.integration

SECRET = b"unsubscribe-secret-for-tests-0123456789"
PUBLIC = "https://alerts.example.com"
EMAIL = "ana@example.com"
SINCE = LocalTime(datetime(2026, 11, 20, 14, 5, tzinfo=UTC), "America/Chicago", "en")
CONTEXT = {"topic_label": "no internet", "region": "TX-453", "since_local": SINCE, "incident_id": "INC-1",
           "segment": {"model": "R7000", "firmware": "2.1.7"}, "language": "en"}


def sender(server: SmtpServer, base: str | None = PUBLIC, secret: bytes | None = SECRET) -> SmtpSender:
    return SmtpSender(server.host, server.port, "alerts@forewarn.test", starttls=False, timeout=5,
                      unsubscribe_base=base, unsubscribe_secret=secret)


def rendered(customer: str = "CU-42", renderer: JinjaRenderer | None = None,
             context: dict[str, object] | None = None) -> tuple[Message, str]:
    renderer = renderer or JinjaRenderer(BUNDLED_CONFIG / "templates")
    context = context or CONTEXT
    text = renderer.render("no_internet", "warning", "email", context)
    html = renderer.render_html("no_internet", "warning", context, text=text.body)
    return Message(MessageKey("INC-1", customer, "warning"), "email", EMAIL, text.body, text.subject), html


def parts(mail: EmailMessage) -> dict[str, str]:
    """Each part's content by type, with the line ends SMTP carried (CRLF) read back as Python's."""
    return {part.get_content_type(): part.get_content().replace("\r\n", "\n") for part in mail.iter_parts()}


def test_the_email_is_text_and_html_with_one_click_unsubscribe(smtp_server: SmtpServer) -> None:
    smtp = sender(smtp_server)
    assert isinstance(smtp, Sender)
    message, html = rendered()
    result = smtp.send(message, html=html)
    assert result.ok
    [received] = smtp_server.messages
    mail = received.message
    assert mail.get_content_type() == "multipart/alternative"
    body = parts(mail)
    assert list(body) == ["text/plain", "text/html"], "plain first: the last part is the one clients prefer"
    assert body["text/plain"].strip() == message.body
    assert "<p>Hello,</p>" in body["text/html"] and "no internet problems in your area" in body["text/html"]
    assert mail["Subject"] == message.subject

    raw = dict(mail.raw_items())
    assert "=?" not in raw["List-Unsubscribe"], "the link is one plain <URL>, never encoded words"
    link = str(mail["List-Unsubscribe"])
    assert link.startswith(f"<{PUBLIC}/unsubscribe?t=") and link.endswith(">")
    assert read_token(link[1:-1].split("?t=", 1)[1], SECRET) == ("CU-42", "email")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"] == result.provider_id


def test_a_resend_carries_the_same_message_id_and_link(smtp_server: SmtpServer) -> None:
    smtp = sender(smtp_server)
    first = smtp.send(*rendered())
    again = sender(smtp_server).send(*rendered())  # another worker, same message
    other = smtp.send(*rendered("CU-43"))
    assert first.ok and again.ok and other.ok
    assert first.provider_id == again.provider_id != other.provider_id
    one, two, three = (m.message for m in smtp_server.messages)
    assert one["List-Unsubscribe"] == two["List-Unsubscribe"] != three["List-Unsubscribe"]


def test_html_from_a_sibling_template_escaped_and_never_mismatched(tmp_path: Path, smtp_server: SmtpServer) -> None:
    (tmp_path / "default.warning.email.j2").write_text("Subject: About {{ topic_label }}\n\nHello,\n\n"
                                                       "{{ topic_label }} is down.")
    (tmp_path / "default.warning.email.html.j2").write_text("<h1>{{ topic_label }}</h1><p>is down.</p>")
    (tmp_path / "wifi.warning.email.j2").write_text("Subject: Wi-Fi\n\nYour Wi-Fi & {{ topic_label }}.")
    for kind in ("warning", "resolved"):
        (tmp_path / f"default.{kind}.sms.j2").write_text("{{ topic_label }}")
    (tmp_path / "default.resolved.email.j2").write_text("Subject: Fixed\n\nFixed.")
    renderer = JinjaRenderer(tmp_path)
    context = {**CONTEXT, "topic_label": "<b>TV</b>"}
    renderer.check(["wifi"])

    html = renderer.render_html("no_internet", "warning", context)  # the family's text, and its HTML sibling
    assert html == "<h1>&lt;b&gt;TV&lt;/b&gt;</h1><p>is down.</p>", "autoescaped"
    # The topic's own text has no HTML sibling: its text escaped, never the family's HTML (another text).
    wifi = renderer.render_html("wifi", "warning", context)
    assert "<p>Your Wi-Fi &amp; &lt;b&gt;TV&lt;/b&gt;.</p>" in wifi and "<h1>" not in wifi

    message, html = rendered(renderer=renderer, context=context)
    assert sender(smtp_server).send(message, html=html).ok
    assert parts(smtp_server.messages[0].message)["text/html"].strip() == html


def test_an_html_sibling_in_the_customers_language(tmp_path: Path) -> None:
    (tmp_path / "default.warning.email.j2").write_text("Subject: S\n\nEnglish {{ since_local }}")
    (tmp_path / "default.warning.email.es.j2").write_text("Subject: S\n\nEspañol {{ since_local }}")
    (tmp_path / "default.warning.email.es.html.j2").write_text("<p>Español {{ since_local }}</p>")
    renderer = JinjaRenderer(tmp_path)
    assert renderer.render_html("x", "warning", {**CONTEXT, "language": "es"}).startswith("<p>Español ")
    english = renderer.render_html("x", "warning", CONTEXT)
    assert '<html lang="en">' in english and "<p>English 8:05 AM CST, Nov 20</p>" in english


def test_without_unsubscribe_settings_or_html_the_email_is_as_before(smtp_server: SmtpServer) -> None:
    smtp = sender(smtp_server, base=None, secret=None)
    message, _ = rendered()
    assert smtp.send(message).ok
    mail = smtp_server.messages[0].message
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().replace("\r\n", "\n").strip() == message.body
    assert mail["List-Unsubscribe"] is None and mail["List-Unsubscribe-Post"] is None


def test_the_senders_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="both unsubscribe_base and unsubscribe_secret"):
        SmtpSender("h", 25, "a@b.example", unsubscribe_base=PUBLIC)
    with pytest.raises(ValueError, match="16 bytes"):
        SmtpSender("h", 25, "a@b.example", unsubscribe_base=PUBLIC, unsubscribe_secret=b"short")
    with pytest.raises(ValueError, match="public http"):
        SmtpSender("h", 25, "a@b.example", unsubscribe_base="alerts.example.com", unsubscribe_secret=SECRET)
    assert SmtpSender("smtp.example.com", 587, "a@b.example").identity == "smtp:smtp.example.com:587:a@b.example"


def test_smtp_replies_are_classified_with_html_too(smtp_server: SmtpServer) -> None:
    smtp_server.fail_temporarily(EMAIL)
    later = sender(smtp_server).send(*rendered())
    assert (later.ok, later.retryable) == (False, True)
    smtp_server.reset()
    smtp_server.refuse(EMAIL)
    never = sender(smtp_server).send(*rendered())
    assert (never.ok, never.retryable, never.reason) == (False, False, "smtp 550: recipient refused")


def test_one_sender_shared_by_threads(smtp_server: SmtpServer) -> None:
    smtp = sender(smtp_server)
    results: dict[str, bool] = {}
    lock = threading.Lock()

    def send(i: int) -> None:
        result = smtp.send(*rendered(f"CU-{i}"))
        with lock:
            results[f"CU-{i}"] = result.ok

    threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 24 and all(results.values())
    tokens = {read_token(str(m.message["List-Unsubscribe"])[1:-1].split("?t=")[1], SECRET)
              for m in smtp_server.messages}
    assert tokens == {(f"CU-{i}", "email") for i in range(24)}, "each email links to its own customer"
    assert len({m.message["Message-ID"] for m in smtp_server.messages}) == 24


def test_the_link_in_the_email_unsubscribes_in_one_click(smtp_server: SmtpServer) -> None:
    """What a mail client does with RFC 8058 headers: POST `List-Unsubscribe=One-Click` to the link."""
    index = InMemoryCustomerIndex()
    index.upsert([Customer.model_validate({"id": "CU-42", "email": EMAIL, "region": "TX-453"})])
    suppressions = InMemorySuppressions()
    app = create_app(queue=None, suppressions=suppressions, index=index,  # type: ignore[arg-type]
                     public_url="http://127.0.0.1", twilio_auth_token=None, unsubscribe_secret=SECRET,
                     help_text="")
    with serve(app) as web:
        smtp = sender(smtp_server, base=web.url)
        assert smtp.send(*rendered()).ok
        mail = smtp_server.messages[0].message
        link = str(mail["List-Unsubscribe"]).strip("<>")
        assert link.startswith(web.url)
        answer = requests.post(link, data=mail["List-Unsubscribe-Post"],
                               headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert answer.status_code == 200
    assert suppressions.is_suppressed("email", EMAIL)
    [customer] = index.get_many(["CU-42"])
    assert customer is not None and customer.opted_out("email")


def test_logs_carry_no_address_or_body(smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="forewarn")
    smtp_server.refuse(EMAIL)
    message, html = rendered()
    sender(smtp_server).send(message, html=html)
    assert caplog.records
    assert EMAIL not in caplog.text and "in your area" not in caplog.text


def test_a_broken_html_template_fails_the_start_up_check(tmp_path: Path) -> None:
    for kind in ("warning", "resolved"):
        for channel in ("sms", "email"):
            (tmp_path / f"default.{kind}.{channel}.j2").write_text("Subject: S\n\nText.")
    JinjaRenderer(tmp_path).check([])
    (tmp_path / "default.resolved.email.html.j2").write_text("<p>{% if %}</p>")
    with pytest.raises(Exception, match="Expected an expression"):
        JinjaRenderer(tmp_path).check([])
