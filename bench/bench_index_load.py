"""Benchmark: bulk load of the Redis customer index, pipelined versus one command per round trip.

    python -m bench.bench_index_load [--n 100000] [--naive 5000] [--batch 1000]

Spawns its own redis-server on a free loopback port (never the machine's 6379), generates N
synthetic valid customers in-process, then prints:
- the naive load of the first `--naive` customers (same index code, batch of 1, every command
  its own round trip), extrapolated to N;
- the pipelined `upsert` of all N (customers/s) and the ratio;
- a re-upsert of all N with 10% of firmwares changed (the update path: old docs read, sets moved);
- Redis `used_memory` per customer, and the time to read one segment.

The load is bound by the client's CPU (RESP packing and reply parsing in redis-py), not by
Redis: with the `hiredis` package installed redis-py packs and parses in C (see the header line).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from redis.utils import HIREDIS_AVAILABLE

from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.records import Customer
from tests.servers.redis_server import spawned_redis


def synthetic_customers(n: int, seed: int = 7) -> list[Customer]:
    """`n` valid customers over 2,000 regions, 20 models x 5 firmwares and 200 lots."""
    rng = random.Random(seed)
    customers = []
    for i in range(n):
        model = f"M{rng.randrange(20):02d}"
        products = [{"model": model, "firmware": f"{rng.randrange(1, 3)}.{rng.randrange(5)}.0",
                     "lot": f"L-{rng.randrange(200)}", "installed": "2025-03-01"}]
        if rng.random() < 0.2:
            products.append({"model": "EXT1", "firmware": "1.0.0"})
        customers.append(Customer.model_validate({
            "id": f"CU-{i}",
            "phone": f"+1512555{i % 10_000:04d}",
            "email": f"user{i}@example.com",
            "preferred_channel": "sms" if rng.random() < 0.7 else "email",
            "region": f"R-{rng.randrange(2_000)}",
            "lat": round(rng.uniform(25, 49), 5),
            "lon": round(rng.uniform(-124, -67), 5),
            "timezone": rng.choice(["America/Chicago", "America/New_York", "America/Denver"]),
            "products": products,
        }))
    return customers


class _Immediate:
    """A 'pipeline' that sends each command at once: one round trip per command."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._results: list[Any] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        command = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> None:
            self._results.append(command(*args, **kwargs))

        return call

    def execute(self) -> list[Any]:
        results, self._results = self._results, []
        return results


class Unpipelined:
    """Wraps a client so that the index's pipelines become single round trips."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def pipeline(self, transaction: bool = True) -> _Immediate:
        return _Immediate(self._client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])  # type: ignore[index]


def run(n: int, naive_n: int, batch: int, url: str) -> None:
    client = redis.Redis.from_url(url)
    t0 = time.perf_counter()
    customers = synthetic_customers(n)
    print(f"generated {n:,} valid customers in {time.perf_counter() - t0:.1f}s (not part of the load)")

    naive_n = min(naive_n, n)
    naive = RedisCustomerIndex(cast(redis.Redis, Unpipelined(client)), prefix="naive", batch_size=1)
    t0 = time.perf_counter()
    naive.upsert(customers[:naive_n])
    naive_s = time.perf_counter() - t0
    naive_rate = naive_n / naive_s
    print(f"naive, one command per round trip: {naive_n:,} in {naive_s:.2f}s = {naive_rate:,.0f} customers/s"
          f" -> {n:,} extrapolated: {n / naive_rate:.1f}s")
    client.flushall()

    index = RedisCustomerIndex(client, prefix="fw", batch_size=batch)
    mem0 = used_memory(client)
    t0 = time.perf_counter()
    index.upsert(customers)
    load_s = time.perf_counter() - t0
    mem1 = used_memory(client)
    rate = n / load_s
    print(f"pipelined upsert (batch {batch:,}, transaction=False): {n:,} in {load_s:.2f}s"
          f" = {rate:,.0f} customers/s; {rate / naive_rate:.0f}x the naive rate")
    assert index.size() == n
    per_customer = (mem1 - mem0) / n
    print(f"redis used_memory: {(mem1 - mem0) / 2**20:.1f} MiB for {n:,}"
          f" = {per_customer:,.0f} bytes/customer")

    rng = random.Random(11)
    changed = []
    for c in customers:
        if rng.random() < 0.1:
            products = [p.model_copy(update={"firmware": "9.9.9"}) for p in c.products]
            c = c.model_copy(update={"products": tuple(products)})
        changed.append(c)
    t0 = time.perf_counter()
    index.upsert(changed)
    update_s = time.perf_counter() - t0
    print(f"re-upsert of {n:,} with ~10% firmware changed: {update_s:.2f}s = {n / update_s:,.0f} customers/s")
    expected = sum(1 for c in changed if "9.9.9" in c.attributes()["firmware"])
    assert index.value_counts("firmware", ["9.9.9"]) == {"9.9.9": expected}

    for segment in ({"model": "M03"}, {"model": "M03", "firmware": "1.2.0"}):
        t0 = time.perf_counter()
        found = sum(1 for _ in index.segment(segment))
        seg_s = time.perf_counter() - t0
        print(f"segment {segment}: {found:,} customers read in {seg_s * 1000:.0f} ms")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="customers to load (default 100,000)")
    parser.add_argument("--naive", type=int, default=5_000, help="customers for the naive reference run")
    parser.add_argument("--batch", type=int, default=1_000, help="customers per pipeline batch")
    args = parser.parse_args()

    with spawned_redis() as url:
        version = cast(dict[str, Any], redis.Redis.from_url(url).info())["redis_version"]
        print(f"redis-server {version} at {url}; redis-py {redis.__version__}, "
              f"hiredis {'in use' if HIREDIS_AVAILABLE else 'not installed (pure-Python protocol)'}")
        run(args.n, args.naive, args.batch, url)

if __name__ == "__main__":
    main()
