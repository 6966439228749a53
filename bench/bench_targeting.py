"""Benchmark: audience queries on the Redis customer index versus a plain scan of the hashes.

    python -m bench.bench_targeting [--n 1000000] [--scan-sample 50000]

Spawns its own redis-server on a free loopback port (never the machine's 6379), loads N
synthetic customers (lat/lon spread over the continental US) with `RedisCustomerIndex.upsert`
and prints, for each query, the index's time and the time of the same query answered by a
plain scan (SCAN over `fw:cust:*`, MGET of the docs, filtering in Python):

- loading time, customers/s, Redis used_memory per customer;
- counting a two-attribute segment (model AND firmware): `index.count`, one SCARD of the pair
  set, beside SINTERCARD of the two attribute sets (what the pair set saves), median of 20;
- streaming 100,000 recipients of a segment with their contact fields (`index.contacts`: MGET
  of the JSON docs read as `ContactCard`s), and as full `Customer`s (`index.segment`);
- polygon targeting of a ~40x40 km county (GEO box pre-filter + exact shapely test), median of 5.

The scan reads at most `--scan-sample` customers and extrapolates linearly to N (its cost is
one doc fetch + decode per customer, whatever the query): the output says when it does.
No phone number or email is printed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson
import redis
import shapely

from bench.bench_index_load import synthetic_customers, used_memory
from forewarn.connectors.redis_index import RedisCustomerIndex
from forewarn.connectors.redis_keys import set_key
from forewarn.geo import Area
from tests.servers.redis_server import spawned_redis

PREFIX = "fw"
SEGMENT = {"model": "M03", "firmware": "1.2.0"}
STREAM_SEGMENT = {"model": "EXT1"}
STREAM_N = 100_000
# A county-sized pentagon in eastern Kansas (lat, lon), about 40 x 40 km.
COUNTY = [(38.80, -95.45), (39.16, -95.45), (39.17, -95.15), (38.98, -94.99), (38.79, -95.08)]


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, result


def intersection_count(client: redis.Redis, segment: dict[str, str]) -> int:
    """The count without the pair set: SINTERCARD of the model and the firmware sets (any product)."""
    keys = [set_key(PREFIX, a, v) for a, v in segment.items()]
    return int(client.sintercard(len(keys), keys))  # type: ignore[arg-type]


def stream_source(index: RedisCustomerIndex, n: int) -> dict[str, str]:
    """The segment to stream recipients from: STREAM_SEGMENT, or every customer when it is too small."""
    return STREAM_SEGMENT if index.count(STREAM_SEGMENT) >= n else {}


def stream_contacts(index: RedisCustomerIndex, segment: dict[str, str], n: int) -> int:
    """Stream `n` recipients of `segment` with their contact fields (`contacts`); return how many."""
    return sum(1 for card in itertools.islice(index.contacts(segment), n) if card.phone or card.email)


def stream_customers(index: RedisCustomerIndex, segment: dict[str, str], n: int) -> int:
    """Stream `n` recipients of `segment` as full customers (`segment`); return how many."""
    return sum(1 for _ in itertools.islice(index.segment(segment), n))


def scan_docs(client: redis.Redis, limit: int, batch: int = 1_000) -> Iterator[dict[str, Any]]:
    """The plain scan: SCAN the customer keys, MGET their docs, decode; at most `limit`."""
    keys = itertools.islice(client.scan_iter(match=f"{PREFIX}:cust:*", count=batch), limit)
    while chunk := list(itertools.islice(keys, batch)):
        yield from (orjson.loads(raw) for raw in cast(list[bytes | None], client.mget(chunk)) if raw is not None)


def has(doc: dict[str, Any], segment: dict[str, str]) -> bool:
    """Whether a product-attribute segment matches a doc (each attribute on any product, like the index)."""
    products = doc.get("products") or ()
    return all(any(p.get(a) == v for p in products) for a, v in segment.items())


def scan_query(client: redis.Redis, n: int, sample: int, keep: Callable[[list[dict[str, Any]]], int],
               want: int | None = None) -> tuple[float, int, str]:
    """Time a scan over `sample` customers: (seconds extrapolated to the query, hits, note)."""
    limit = min(n, sample)
    t0 = time.perf_counter()
    hits, batch, scanned = 0, [], 0
    for doc in scan_docs(client, limit):
        batch.append(doc)
        scanned += 1
        if len(batch) >= 1_000:
            hits += keep(batch)
            batch = []
    hits += keep(batch)
    seconds = time.perf_counter() - t0
    needed = n if want is None else (min(n, round(want * scanned / hits)) if hits else n)
    if scanned >= needed:
        return seconds, hits, f"scanned all {scanned:,}"
    return (seconds * needed / scanned, round(hits * needed / scanned),
            f"extrapolated from a scan of {scanned:,} to {needed:,}")


def run(n: int, batch: int, sample: int, url: str) -> None:
    client = redis.Redis.from_url(url)
    t0 = time.perf_counter()
    customers = synthetic_customers(n)
    print(f"generated {n:,} customers in {time.perf_counter() - t0:.1f}s (not part of the load)")

    index = RedisCustomerIndex(client, prefix=PREFIX, batch_size=batch)
    mem0 = used_memory(client)
    t0 = time.perf_counter()
    index.upsert(customers)
    load_s = time.perf_counter() - t0
    del customers
    mem = used_memory(client) - mem0
    print(f"load: {n:,} in {load_s:.1f}s = {n / load_s:,.0f} customers/s;"
          f" redis used_memory {mem / 2**20:,.0f} MiB = {mem / n:,.0f} bytes/customer")
    print(f"{'query':<86} {'index':>10} {'scan':>11} {'ratio':>8}  scan note")

    def row(name: str, index_ms: float, scan_s: float, note: str) -> None:
        print(f"{name:<86} {index_ms:>7.1f} ms {scan_s:>9.2f} s {scan_s * 1000 / index_ms:>7,.1f}x  {note}")

    seg_ms, count = median_ms(lambda: index.count(SEGMENT), 20)
    inter_ms, inter = median_ms(lambda: intersection_count(client, SEGMENT), 20)
    scan_s, scan_hits, note = scan_query(client, n, sample, lambda b: sum(has(d, SEGMENT) for d in b))
    named = " AND ".join(f"{a}={v}" for a, v in SEGMENT.items())
    row(f"count {named}: index.count = SCARD of the pair set (median/20) = {count:,}", seg_ms, scan_s, note)
    row(f"  the same as SINTERCARD of the model and firmware sets (median/20) = {inter:,}", inter_ms, scan_s, note)
    assert abs(scan_hits - cast(int, count)) <= max(50, 0.2 * cast(int, count)), (scan_hits, count)

    want = min(STREAM_N, n)
    stream_segment = stream_source(index, want)
    contacts_ms, streamed = median_ms(lambda: stream_contacts(index, stream_segment, want), 3)
    docs_ms, streamed_docs = median_ms(lambda: stream_customers(index, stream_segment, want), 3)
    assert streamed == streamed_docs == want, (streamed, streamed_docs)
    scan_s, _, note = scan_query(client, n, sample, lambda b: sum(has(d, stream_segment) for d in b), want)
    what = f"stream {want:,} of {stream_segment or 'all'}"
    row(f"{what}: contact fields, index.contacts (median/3)", contacts_ms, scan_s, note)
    row(f"{what}: full customers, index.segment (median/3)", docs_ms, scan_s, note)

    area = Area([COUNTY])
    polygon_ms, found = median_ms(lambda: sum(1 for _ in index.in_area(area)), 5)
    scan_s, scan_hits, note = scan_query(
        client, n, sample, lambda b: int(area.contains([d.get("lat") for d in b], [d.get("lon") for d in b]).sum()))
    minx, miny, maxx, maxy = area.polygons[0].bounds
    km2 = shapely.area(area.polygons[0]) * 111.2**2 * math.cos(math.radians((miny + maxy) / 2))
    row(f"polygon ~{km2:,.0f} km² (bounds {maxy - miny:.2f}° x {maxx - minx:.2f}°, median/5) = {found:,}",
        polygon_ms, scan_s, note)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="customers to load (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="customers per pipeline batch")
    parser.add_argument("--scan-sample", type=int, default=50_000,
                        help="customers the plain scan reads before extrapolating to N (default 50,000)")
    args = parser.parse_args()
    with spawned_redis() as url:
        version = cast(dict[str, Any], redis.Redis.from_url(url).info())["redis_version"]
        print(f"redis-server {version}; redis-py {redis.__version__}")
        run(args.n, args.batch, args.scan_sample, url)


if __name__ == "__main__":
    main()
