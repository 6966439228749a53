import os

from hypothesis import settings

pytest_plugins = [
    "tests.servers.redis_server",
    "tests.servers.kafka_broker",
    "tests.servers.smtp_server",
    "tests.servers.twilio_standin",
]

# CI replays the same examples every run (a red CI then always names a real, repeatable input);
# on a developer's machine Hypothesis explores new ones and keeps the failures it finds.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
