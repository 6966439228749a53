"""Real servers for integration tests, each spawned on a free loopback port."""
