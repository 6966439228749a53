"""Closed by default (issue 9, item 6): the compose stack as written, parsed (Docker cannot run here).

Kafka and Redis are reachable only on the stack's own network unless the ports override is
added, Redis refuses the passwordless default user, and no password is committed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_VAR = re.compile(r"\$\{REDIS_PASSWORD:\?[^}]+\}")
"""Compose's required-variable form: `up` stops with the message when REDIS_PASSWORD is unset."""


def _services(name: str = "docker-compose.yml") -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / name).read_text())["services"])


def test_kafka_and_redis_are_not_published_to_the_host() -> None:
    services = _services()
    assert "ports" not in services["kafka"] and "ports" not in services["redis"]
    # Whatever else is published listens on loopback only.
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert all(str(p).startswith("127.0.0.1:") for p in published), published


def test_redis_requires_the_forewarn_users_password_from_the_environment() -> None:
    services = _services()
    command = services["redis"]["command"]
    assert command[0] == "redis-server"
    args = " ".join(command[1:])
    assert "--user default off" in args  # no passwordless access
    assert re.search(r"--user forewarn on >\$\{REDIS_PASSWORD:\?[^}]+\} ", args), args
    assert "nopass" not in args and "requirepass" not in args
    url = services["forewarn"]["environment"]["FOREWARN_REDIS_URL"]
    assert re.fullmatch(r"redis://forewarn:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/0", url), url


def test_the_ports_override_publishes_kafka_and_redis_on_loopback_only() -> None:
    services = _services("docker-compose.ports.yml")
    assert set(services) >= {"kafka", "redis"}
    for service in services.values():
        assert service["ports"] and all(str(p).startswith("127.0.0.1:") for p in service["ports"])
    listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in listeners and "EXTERNAL://localhost:9094" in listeners


def test_no_secret_is_committed_in_the_stack() -> None:
    for name in ("docker-compose.yml", "docker-compose.ports.yml"):
        text = PASSWORD_VAR.sub("", (ROOT / name).read_text())
        assert "REDIS_PASSWORD}" not in text and not re.search(r">[A-Za-z0-9]{8,}", text)
