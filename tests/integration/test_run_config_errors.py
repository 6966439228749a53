"""Issue 9, the eight broken configurations that `forewarn run` printed as a traceback or accepted and
failed on later: each is now refused at start with a sentence naming the key (or environment variable)
to fix, and nothing is sent. Every other edge is healthy: the real broker, Redis, SMTP server and
the Twilio stand-in.

Since issue 11 the flow only decides and `forewarn deliver` sends: a delivery worker (`deliver`, or the
one `run --deliver` starts in-process) refuses all eight, and `run` alone refuses all but the Twilio
token, which only a sender uses (the flow never talks to Twilio).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from forewarn.cli import app
from tests.integration.helpers import EMAIL_FROM, SMS_FROM, TEMPLATES, topic_names
from tests.servers.kafka_broker import create_topics
from tests.servers.ports import free_port
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin


@pytest.fixture(scope="module")
def topics(kafka_broker: str) -> dict[str, str]:
    names = topic_names("run-config")
    create_topics(kafka_broker, names.values())
    return names


def config_text(kafka_broker: str, topics: dict[str, str], redis: str, twilio: TwilioStandin,
                smtp: SmtpServer, broken: dict[str, str]) -> str:
    values = {"redis_url": f'"{redis}"', "from_number": f'"{SMS_FROM}"', "base_url": f'"{twilio.base_url}"',
              "port": str(smtp.port), "from_addr": EMAIL_FROM, "templates": f'"{TEMPLATES}"', **broken}
    listed = ", ".join(f"{kind}: {name}" for kind, name in topics.items())
    return f"""
kafka: {{brokers: ["{kafka_broker}"], topics: {{{listed}}}, tail: false}}
redis: {{url: {values['redis_url']}}}
sms: {{from_number: {values['from_number']}, base_url: {values['base_url']}}}
email: {{host: {smtp.host}, port: {values['port']}, from_addr: {values['from_addr']}, starttls: false}}
outreach: {{templates: {values['templates']}}}
"""


BROKEN = [
    # (what is broken, the YAML values or environment that break it, what the message must name)
    ("a Redis URL scheme", {"redis_url": '"http://127.0.0.1:6379/0"'}, "redis.url: 'http://"),
    ("Redis unreachable", {"redis_url": "CLOSED"}, "fix redis.url"),
    ("a from_addr that is no address", {"from_addr": "alerts"}, "email.from_addr: 'alerts' is not an email"),
    ("a missing templates folder", {"templates": '"no/such/templates"'}, "outreach.templates: folder"),
    ("sms.base_url not a url", {"base_url": '"not a url"'}, "sms.base_url: 'not a url' is not an http(s) URL"),
    ("from_number hello", {"from_number": "hello"}, "sms.from_number: 'hello' is not a phone number"),
    ("email.port 70000", {"port": "70000"}, "email.port: 70000 is not a TCP port"),
    ("a wrong Twilio auth token", {"token": "wrong-token"}, "TWILIO_AUTH_TOKEN"),
]


COMMANDS = {"run": ["run"], "run --deliver": ["run", "--deliver"], "deliver": ["deliver"]}
SENDERS_ONLY = {"a wrong Twilio auth token"}
CASES = [pytest.param(what, broken, named, command, id=f"{command}: {what}")
         for what, broken, named in BROKEN for command in COMMANDS
         if not (command == "run" and what in SENDERS_ONLY)]


def invoke(args: list[str], env: dict[str, str], timeout: float = 60.0) -> Result:
    """`forewarn ARGS` in-process; a command that is not refused would run until stopped, so it gets a
    thread of its own and the test fails, instead of hanging, when it has not ended in `timeout`."""
    done: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: done.setdefault("result", CliRunner().invoke(app, args, env=env)),
                              daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"forewarn {' '.join(args)} was not refused: it is still running"
    return done["result"]


@pytest.mark.integration
@pytest.mark.parametrize(("what", "broken", "named", "command"), CASES)
def test_run_and_deliver_refuse_a_broken_configuration_at_start_naming_the_fix(
    what: str, broken: dict[str, str], named: str, command: str, kafka_broker: str, topics: dict[str, str],
    redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FOREWARN_REDIS_URL", raising=False)
    broken = dict(broken)
    token = broken.pop("token", twilio_standin.auth_token)
    if broken.get("redis_url") == "CLOSED":
        broken["redis_url"] = f'"redis://127.0.0.1:{free_port()}/0"'
    config = tmp_path / "config.yaml"
    config.write_text(config_text(kafka_broker, topics, redis_url, twilio_standin, smtp_server, broken))
    env = {"TWILIO_ACCOUNT_SID": twilio_standin.account_sid, "TWILIO_AUTH_TOKEN": token}
    result = invoke([*COMMANDS[command], "-c", str(config)], env)
    assert isinstance(result.exception, SystemExit), f"{what}: {result.exception!r}"  # not a traceback
    assert result.exit_code in (1, 2), result.output
    flat = " ".join(result.output.split())  # rich wraps long lines
    assert named in flat, flat
    assert "wrong-token" not in flat
    assert twilio_standin.messages == [] and smtp_server.messages == []


@pytest.mark.integration
def test_the_flow_alone_never_talks_to_twilio_so_a_wrong_token_does_not_stop_it(
    kafka_broker: str, topics: dict[str, str], redis_url: str, twilio_standin: TwilioStandin,
    smtp_server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FOREWARN_REDIS_URL", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(config_text(kafka_broker, topics, redis_url, twilio_standin, smtp_server, {}))
    env = {"TWILIO_ACCOUNT_SID": twilio_standin.account_sid, "TWILIO_AUTH_TOKEN": "wrong-token"}
    result = invoke(["run", "-c", str(config)], env)  # tail: false, so it reads its (empty) topics and ends
    assert result.exit_code == 0, result.output
    assert twilio_standin.requests == 0 and smtp_server.messages == []
