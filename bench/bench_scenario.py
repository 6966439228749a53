"""Time to generate the demo scenario, beside a plain-loop reference measured in the same process.

    python -m bench.bench_scenario [--seed 7] [--customers 20000] [--regions 50] [--days 3] [--repeat 3]

The defaults are `forewarn.demo.scenario.generate()`'s, the scenario the demo and the tests
use (tests/unit/test_scenario.py once asserted it took under 5 s; tests assert no timings).
Prints the best of `--repeat` runs of:

- **reference: plain dicts**: a plain Python loop that builds as many customer dicts and
  case dicts as the generated scenario holds, with the same fields, each value drawn from a
  seeded `random.Random` (one draw per field, products included), the case timestamps
  formatted as RFC 3339, then sorted by time and numbered like the generator's cases. No
  models, no time zones, no Poisson counts, no injected incidents, no storm: the floor of
  producing that many records in Python, so the ratio is what the generator's modelling costs.
- **small scenario**: `generate(customers=2,000, regions=10)`, the tests' small fixture, to
  show how the time scales with the population.
- **default scenario**: `generate()` with the arguments above.

Each row gives the records made (customers + cases + alerts), records per second and its time over
the reference's (x reference).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from forewarn.demo.scenario import Scenario, generate
from forewarn.records import rfc3339

START = datetime(2026, 11, 16, tzinfo=UTC)
CHANNELS = ("phone", "chat", "email", "app")
TOPICS = ("no_internet", "wifi_drops", "slow_speed", "billing", "tv_signal", "account_access")


def reference(customers: int, cases: int, regions: int, days: int, seed: int = 7) -> int:
    """Build `customers` customer dicts and `cases` case dicts in a plain loop; return how many."""
    rng = random.Random(seed)
    codes = [f"TX-{100 + r:03d}" for r in range(regions)]
    people: list[dict[str, Any]] = []
    for i in range(1, customers + 1):
        people.append({
            "id": f"CU-{i:05d}", "phone": f"+1512555{rng.randrange(10_000):04d}", "email": f"c{i:05d}@example.com",
            "preferred_channel": "sms" if rng.random() < 0.65 else "email", "region": rng.choice(codes),
            "lat": round(30.0 + rng.gauss(0, 0.12), 4), "lon": round(-97.0 + rng.gauss(0, 0.12), 4),
            "timezone": "America/Chicago", "language": "es" if rng.random() < 0.1 else "en",
            "products": [{"model": "R7000", "firmware": f"2.1.{rng.randrange(9)}", "lot": f"L-{rng.randrange(200)}",
                          "installed": (START - timedelta(days=rng.randint(30, 1400))).date().isoformat()}],
            "opt_out": {"sms": rng.random() < 0.03, "email": rng.random() < 0.02},
        })  # fmt: skip
    span = days * 86_400
    raws = []
    for _ in range(cases):
        customer = rng.choice(people)
        raws.append((START + timedelta(seconds=rng.randrange(span)), customer, rng.choice(TOPICS)))
    raws.sort(key=lambda raw: raw[0])
    events = [{
        "type": "case", "id": f"C-{n:06d}", "ts": rfc3339(ts), "customer_id": c["id"], "topic": topic,
        "region": c["region"], "text": "no internet since this morning", "channel": rng.choice(CHANNELS),
        "attachments": 1 if rng.random() < 0.15 else 0,
    } for n, (ts, c, topic) in enumerate(raws, start=1)]  # fmt: skip
    return len(people) + len(events)


def records(scenario: Scenario) -> int:
    return len(scenario.customers) + len(scenario.events) + len(scenario.alerts)


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The shortest of `repeat` wall-clock times of `fn()`, and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--regions", type=int, default=50)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best is shown (default 3)")
    args = parser.parse_args(argv)

    default_s, scenario = best_of(args.repeat, lambda: generate(seed=args.seed, customers=args.customers,
                                                                 regions=args.regions, days=args.days))
    n = records(scenario)
    ref_s, ref_n = best_of(args.repeat, lambda: reference(len(scenario.customers), len(scenario.events),
                                                          args.regions, args.days, args.seed))
    small_s, small = best_of(args.repeat, lambda: generate(seed=args.seed, customers=2_000, regions=10,
                                                           days=args.days))
    print(f"default scenario: seed {args.seed}, {len(scenario.customers):,} customers, {args.regions} regions, "
          f"{args.days} days -> {len(scenario.events):,} cases, {len(scenario.alerts)} alerts; "
          f"best of {args.repeat}")
    print(f"{'run':<28}{'best s':>9}{'records':>10}{'records/s':>12}{'x reference':>13}")
    for name, seconds, made in (("reference: plain dicts", ref_s, ref_n),
                                ("small scenario (2,000 cust.)", small_s, records(small)),
                                ("default scenario", default_s, n)):
        print(f"{name:<28}{seconds:>9.3f}{made:>10,}{made / seconds:>12,.0f}{seconds / ref_s:>13.1f}")


if __name__ == "__main__":
    main()
