import os
import socket
from collections.abc import Iterator

import pytest
from hypothesis import settings

pytest_plugins = [
    "tests.servers.redis_server",
    "tests.servers.redis_cluster",
    "tests.servers.kafka_broker",
    "tests.servers.smtp_server",
    "tests.servers.twilio_standin",
    "tests.servers.pagerduty_standin",
    "tests.servers.slack_standin",
]

# CI replays the same examples every run (a red CI then always names a real, repeatable input);
# on a developer's machine Hypothesis explores new ones and keeps the failures it finds.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections (kernel backlog) but never answers: a hung server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
