"""Quiet by default (issue 9, item 6): a send through the official Twilio client, with logging
set up the Forewarn way, leaves no account SID, phone number or message body in the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from forewarn.cli.app import _main
from forewarn.connectors.sms import TwilioSender
from forewarn.logs import IDENTIFYING_LOGGERS, quiet_third_party_loggers
from forewarn.records import Message, MessageKey
from tests.servers.twilio_standin import TwilioStandin

TO = "+15125550100"
FROM = "+15125550199"
BODY = "Forewarn notice: internet problems in your area since 8:15 AM. Reply STOP to opt out."


@pytest.fixture
def third_party_levels() -> Iterator[None]:
    """Logger levels are process-wide: put back what the test changed."""
    loggers = [logging.getLogger(name) for name in IDENTIFYING_LOGGERS]
    saved = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, saved, strict=True):
        logger.setLevel(level)


def _send(standin: TwilioStandin) -> None:
    sender = TwilioSender.from_settings(standin.account_sid, standin.auth_token, from_number=FROM,
                                        base_url=standin.base_url)
    result = sender.send(Message(MessageKey("INC-1", "CU-42", "warning"), "sms", TO, BODY))
    assert result.ok, result


def _leaks(caplog: pytest.LogCaptureFixture, standin: TwilioStandin) -> list[str]:
    secrets = (standin.account_sid, TO, FROM, BODY)
    return [r.getMessage() for r in caplog.records if any(s in r.getMessage() for s in secrets)]


@pytest.mark.integration
@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_a_twilio_send_logs_no_account_sid_with_forewarn_logging(
        level: int, twilio_standin: TwilioStandin, caplog: pytest.LogCaptureFixture, third_party_levels: None) -> None:
    # Control: unquieted, the client does log the SID, so this capture would see a leak.
    for name in IDENTIFYING_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    caplog.set_level(level)
    _send(twilio_standin)
    assert any(twilio_standin.account_sid in r.getMessage() for r in caplog.records)
    caplog.clear()

    _main(verbose=True)  # the CLI's own logging set-up (`forewarn -v ...`)
    caplog.set_level(level)
    _send(twilio_standin)
    assert _leaks(caplog, twilio_standin) == []
    assert len(twilio_standin.messages) == 2  # both sends reached the stand-in


def test_quieting_keeps_a_stricter_level_an_embedder_chose(third_party_levels: None) -> None:
    logging.getLogger("twilio").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    quiet_third_party_loggers()
    assert logging.getLogger("twilio").level == logging.ERROR
    assert logging.getLogger("urllib3").level == logging.WARNING
    assert logging.getLogger("twilio.http_client").getEffectiveLevel() == logging.ERROR
