"""The seeded demo scenario: customers, cases, telemetry and a storm with their ground truth.

Demo data, not vocabulary: `forewarn demo`, the tests and the benchmarks generate it.
"""
