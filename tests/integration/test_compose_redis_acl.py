"""The compose stack's Redis command, run by a real redis-server: the passwordless default user is
refused, and the `forewarn` user's ACL allows every Redis part Forewarn uses."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml

from forewarn.connectors.rate_limit import RedisRateLimiter
from forewarn.connectors.redis_contact_log import RedisContactLog
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_outbox import RedisOutbox
from forewarn.connectors.redis_suppressions import RedisSuppressions
from forewarn.envelopes import Envelope
from forewarn.records import Customer, Message, MessageKey, SendResult
from tests.servers.ports import free_port, wait_until
from tests.servers.redis_server import INSTALL_HINT

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_VAR = re.compile(r"\$\{REDIS_PASSWORD:\?[^}]+\}")


@pytest.fixture
def compose_redis(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """redis-server with docker-compose.yml's arguments (password substituted, as compose does), on a
    free loopback port without persistence; yields the unauthenticated and the Forewarn URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(INSTALL_HINT)
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    password = secrets.token_hex(16)
    args = [PASSWORD_VAR.sub(password, a) for a in services["redis"]["command"][1:]]
    port = free_port()
    proc = subprocess.Popen([binary, *args, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = PASSWORD_VAR.sub(password, services["forewarn"]["environment"]["FOREWARN_REDIS_URL"])
    url = url.replace("@redis:6379", f"@127.0.0.1:{port}")
    try:
        wait_until(lambda: bool(redis.Redis.from_url(url).ping()), f"compose redis-server on port {port}")
        yield f"redis://127.0.0.1:{port}/0", url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.integration
def test_the_default_user_is_refused(compose_redis: tuple[str, str]) -> None:
    anonymous, _ = compose_redis
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(anonymous).set("fw:probe", "1")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(anonymous.replace("redis://", "redis://forewarn:wrong@")).ping()


@pytest.mark.integration
def test_forewarns_parts_work_as_the_forewarn_user(compose_redis: tuple[str, str]) -> None:
    _, url = compose_redis
    client = redis.Redis.from_url(url)
    index = RedisCustomerIndex(client)
    customers = [Customer.model_validate({"id": f"CU-{i}", "phone": f"+1512555010{i}", "region": "TX-453",
                                          "lat": 30.27, "lon": -97.74,
                                          "products": [{"model": "R7000", "firmware": "2.1.7"}]}) for i in range(3)]
    assert index.upsert(customers) == 3
    assert index.count({"region": "TX-453"}) == 3 and index.attribute_counts("model") == {"R7000": 3}
    assert {c.id for c in index.segment({"model": "R7000"})} == {"CU-0", "CU-1", "CU-2"}
    # The outbox: streams and consumer groups, the schedule, and every Lua script of a message's life.
    outbox = RedisOutbox(client, shards=2)
    t = datetime(2026, 11, 17, 14, tzinfo=UTC)
    key = MessageKey("INC-1", "CU-0", "warning")
    email = Envelope(Message(key, "email", "c0@example.com", "Outage", "Outage"), t, t + timedelta(hours=6))
    sms = Envelope(Message(key, "sms", "+15125550100", "Outage"), t, t + timedelta(hours=6), fallback=email)
    later = Envelope(Message(MessageKey("INC-1", "CU-1", "warning"), "sms", "+15125550101", "Outage"), t,
                     t + timedelta(hours=6), not_before=t + timedelta(hours=1))
    assert outbox.enqueue([sms, later], t) == [sms.id, later.id] and outbox.enqueue([sms], t) == []
    [lease] = outbox.take("sms", "w1", 10, 0.01)
    assert outbox.begin(lease, t).verdict == "send"
    outbox.retry(lease, t, t, SendResult(ok=False, retryable=True, reason="429"))
    assert outbox.promote_due(t + timedelta(hours=1)) == 2
    leases = outbox.take("sms", "w1", 10, 0.01)
    assert {lease.message_id for lease in outbox.reclaim("sms", "w2", 0, 10)} == {sms.id, later.id}  # XAUTOCLAIM
    for lease in leases:
        assert outbox.begin(lease, t).verdict == "send"  # neither was ever sending
        outbox.settle(lease, "sent", t, SendResult(ok=True, provider_id="SM1"))
    assert outbox.record_status(sms.id, "undelivered", t, "error 30003")  # queues the email fallback
    [fallback] = outbox.take("email", "w1", 10, 0.01)
    outbox.release(fallback, t, t, "email paused")
    assert outbox.accepted("INC-1", "warning") == {"CU-0", "CU-1"} and outbox.backlog("sms") == 0
    assert [e["state"] for e in outbox.history("INC-1", "CU-0")[sms.id]][-1] == "undelivered"
    suppressions = RedisSuppressions(client)
    assert suppressions.suppress("sms", "+15125550100") and suppressions.is_suppressed("sms", "+15125550100")
    assert suppressions.allow("sms", "+15125550100")
    limiter = RedisRateLimiter(client)
    assert limiter.acquire("+15125550199", 1.0, 1_000.0) == 0 and limiter.acquire("+15125550199", 1.0, 1_000.0) > 0
    log = RedisContactLog(client)
    log.add("CU-0", datetime(2026, 11, 17, 14, tzinfo=UTC), "INC-1")
    assert log.count_since("CU-0", datetime(2026, 11, 17, tzinfo=UTC)) == 1
    # What the ACL withholds: commands no Forewarn part runs.
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()
