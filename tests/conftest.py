pytest_plugins = [
    "tests.servers.redis_server",
    "tests.servers.kafka_broker",
    "tests.servers.smtp_server",
    "tests.servers.twilio_standin",
]
