"""Issue 9: every edge is checked before the flow starts, against real servers, and a failure names
the setting to fix (never a traceback): Redis, the broker, Twilio (the stand-in), SMTP.

Since issue 11 the flow (`forewarn run`) and the delivery workers (`forewarn deliver`) check what each
uses: the flow the broker, Redis and the templates; a worker Redis and the senders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from forewarn.connectors.email import SmtpSender
from forewarn.connectors.health import check_redis
from forewarn.connectors.sms import TwilioSender
from forewarn.flows.offline import redis_connection
from forewarn.flows.startup import preflight
from forewarn.settings import ConfigError, Secrets, Settings
from tests.integration.helpers import make_settings, secrets_for, topic_names
from tests.servers.kafka_broker import create_topics
from tests.servers.ports import free_port
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin

SENDER_PHONE = "+15125550199"


def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"



@pytest.fixture
def redis_user(redis_url: str) -> Iterator[str]:
    """An ACL user `forewarn` with password `right` on the session's Redis."""
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("forewarn", enabled=True, passwords=["+right"], commands=["+@all"], keys=["*"])
    yield redis_url.replace("redis://", "redis://forewarn:{}@")
    admin.acl_deluser("forewarn")
    admin.close()


# --- Redis ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_redis_check_passes_and_names_the_setting_when_down_silent_or_refusing(
    redis_user: str, silent_port: int
) -> None:
    def check(url: str, setting: str = "redis.url") -> None:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        check_redis(client, setting, "here")

    check(redis_user.format("right"))
    with pytest.raises(ConfigError, match=r"Redis at here did not answer .*start Redis or fix redis\.url"):
        check(closed_port_url())
    with pytest.raises(ConfigError, match=r"did not answer .*fix redis\.url"):
        check(f"redis://127.0.0.1:{silent_port}/0")
    with pytest.raises(ConfigError, match=r"refused the credentials in FOREWARN_REDIS_URL") as caught:
        check(redis_user.format("wrong"), "FOREWARN_REDIS_URL")
    assert "wrong" not in str(caught.value)


@pytest.mark.integration
def test_commands_using_redis_report_a_bad_or_unreachable_url_naming_it(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOREWARN_REDIS_URL", raising=False)
    settings = Settings.model_validate({"redis": {"url": closed_port_url()}})
    with pytest.raises(ConfigError, match=r"did not answer .*fix redis\.url"):
        redis_connection(settings, None, timeout=0.5)
    with pytest.raises(ConfigError, match=r"--redis-url: 'http://x:1' is not a Redis URL: use redis://"):
        redis_connection(settings, "http://x:1")
    monkeypatch.setenv("FOREWARN_REDIS_URL", "http://forewarn:s3cret@x:1")
    with pytest.raises(ConfigError, match="FOREWARN_REDIS_URL is not a Redis URL") as caught:
        redis_connection(settings, None)
    assert "s3cret" not in str(caught.value)
    monkeypatch.setenv("FOREWARN_REDIS_URL", redis_url)
    client, _ = redis_connection(settings, None)
    assert client.ping()


# --- Twilio ---------------------------------------------------------------------------------


def twilio(standin: TwilioStandin, sid: str | None = None, token: str | None = None,
           base_url: str | None = None) -> TwilioSender:
    return TwilioSender.from_settings(sid or standin.account_sid, token or standin.auth_token,
                                      from_number=SENDER_PHONE, base_url=base_url or standin.base_url)


@pytest.mark.integration
def test_twilio_check_fetches_the_account_and_names_the_credentials_when_refused(
    twilio_standin: TwilioStandin, silent_port: int
) -> None:
    twilio(twilio_standin).check(timeout=1)
    with pytest.raises(ConfigError, match=r"Twilio refused the credentials \(HTTP 401, error 20003\): set "
                                          r"TWILIO_ACCOUNT_SID .* TWILIO_AUTH_TOKEN"):
        twilio(twilio_standin, token="wrong-token").check(timeout=1)
    with pytest.raises(ConfigError, match=r"HTTP 401.*TWILIO_ACCOUNT_SID"):
        twilio(twilio_standin, sid="AC" + "0" * 32).check(timeout=1)
    with pytest.raises(ConfigError, match=r"did not answer .*check sms\.base_url"):
        twilio(twilio_standin, base_url=f"http://127.0.0.1:{silent_port}").check(timeout=0.3)
    twilio_standin.account_status = "suspended"
    with pytest.raises(ConfigError, match="account in TWILIO_ACCOUNT_SID is suspended"):
        twilio(twilio_standin).check(timeout=1)
    assert twilio_standin.messages == []  # a check never sends


# --- SMTP -----------------------------------------------------------------------------------


def smtp(server: SmtpServer, port: int | None = None, password: str | None = None,
         starttls: bool = False) -> SmtpSender:
    login = {"username": server.username, "password": password} if password else {}
    return SmtpSender(server.host, port or server.port, "alerts@forewarn.example.com", starttls=starttls,
                      **login)  # type: ignore[arg-type]


@pytest.mark.integration
def test_smtp_check_logs_in_and_names_the_setting_to_fix(smtp_server: SmtpServer, silent_port: int) -> None:
    smtp(smtp_server).check(timeout=1)
    smtp(smtp_server, password=smtp_server.password).check(timeout=1)
    with pytest.raises(ConfigError, match=r"refused the login of email\.username \(535\): fix email\.username "
                                          r"/ SMTP_PASSWORD"):
        smtp(smtp_server, password="wrong").check(timeout=1)
    with pytest.raises(ConfigError, match=r"did not answer as SMTP .*fix email\.host / email\.port"):
        smtp(smtp_server, port=free_port()).check(timeout=1)
    with pytest.raises(ConfigError, match=r"did not answer as SMTP .*fix email\.host / email\.port"):
        smtp(smtp_server, port=silent_port).check(timeout=0.3)
    with pytest.raises(ConfigError, match=r"does not offer STARTTLS: set email\.starttls"):
        smtp(smtp_server, starttls=True).check(timeout=1)
    assert smtp_server.messages == []


# --- the whole start-up ---------------------------------------------------------------------


@pytest.mark.integration
def test_preflight_passes_on_healthy_edges_and_lists_every_broken_one(
    kafka_broker: str, redis_url: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FOREWARN_REDIS_URL", raising=False)
    topics = topic_names("preflight")
    create_topics(kafka_broker, topics.values())
    settings = make_settings(topics, kafka_broker, redis_url, twilio_standin, smtp_server)
    preflight(settings, secrets_for(twilio_standin), timeout=1)

    broken = Settings.model_validate({
        **settings.model_dump(exclude_none=True),
        "kafka": {"brokers": [f"127.0.0.1:{free_port()}"], "topics": topics, "connect_timeout": "1s"},
        "redis": {"url": closed_port_url()},
        "email": {"host": smtp_server.host, "port": free_port(), "from_addr": "a@example.com",
                  "starttls": False},
    })
    wrong = Secrets(twilio_account_sid=twilio_standin.account_sid, twilio_auth_token="wrong-token")
    with pytest.raises(ConfigError) as caught:
        preflight(broken, wrong, timeout=1)
    message = str(caught.value)
    for named in ("kafka.brokers", "fix redis.url", "TWILIO_AUTH_TOKEN", "email.port"):
        assert named in message, message
    assert "wrong-token" not in message

    # The flow alone (`forewarn run`): it never sends, so it does not check the senders.
    with pytest.raises(ConfigError) as caught:
        preflight(broken, wrong, timeout=1, senders=False)
    assert "kafka.brokers" in str(caught.value) and "fix redis.url" in str(caught.value)
    assert "TWILIO_AUTH_TOKEN" not in str(caught.value) and "email.port" not in str(caught.value)
    preflight(settings, wrong, timeout=1, senders=False)  # a wrong token is no concern of the flow's
    # A delivery worker (`forewarn deliver`): Redis and the senders; no broker needed, none checked.
    with pytest.raises(ConfigError) as caught:
        preflight(broken, wrong, timeout=1, flow=False)
    for named in ("fix redis.url", "TWILIO_AUTH_TOKEN", "email.port"):
        assert named in str(caught.value), str(caught.value)
    assert "kafka" not in str(caught.value) and "forewarn deliver" not in str(caught.value)
    worker_only = settings.model_copy(update={"kafka": None})
    preflight(worker_only, secrets_for(twilio_standin), timeout=1, flow=False)
    with pytest.raises(ConfigError, match=r"incomplete for `forewarn run`:\n  kafka: missing"):
        preflight(worker_only, secrets_for(twilio_standin), timeout=1)
    no_redis = worker_only.model_copy(update={"redis": None})
    with pytest.raises(ConfigError, match=r"incomplete for `forewarn deliver`:\n  redis: missing"):
        preflight(no_redis, secrets_for(twilio_standin), timeout=1, flow=False)


@pytest.fixture
def login_required_smtp() -> Iterator[tuple[str, int]]:
    """A real aiosmtpd server that refuses MAIL FROM until the client logs in (530)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink
    from aiosmtpd.smtp import AuthResult

    def refuse_all(*_: object) -> AuthResult:
        return AuthResult(success=False, handled=False)

    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port(), authenticator=refuse_all,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        yield "127.0.0.1", controller.port
    finally:
        controller.stop()


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # a loopback test server
def test_a_relay_that_requires_a_login_is_caught_at_start_and_halts_email_during_a_run(
    login_required_smtp: tuple[str, int],
) -> None:
    from forewarn.records import Message, MessageKey

    host, port = login_required_smtp
    sender = SmtpSender(host, port, "alerts@forewarn.example.com", starttls=False, timeout=2)
    with pytest.raises(ConfigError, match=r"requires a login: set email\.username, and SMTP_PASSWORD"):
        sender.check(timeout=1)
    result = sender.send(Message(MessageKey("INC-1", "CU-1", "warning"), "email", "c1@example.com", "Outage."))
    assert (result.ok, result.retryable, result.halts_channel) == (False, True, True)
    assert result.reason.startswith("smtp 530: channel halted")
