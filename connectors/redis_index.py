"""The customer index in Redis: a JSON string per customer and a set per trait value.

Layout (`forewarn.connectors.redis_keys`), shown for the default prefix "fw":

- `fw:cust:{id}`: string, the customer JSON (read in batches with one MGET; on Redis
  Cluster the docs spread over the shards and are read with one MGET per slot).
- `{fw:idx}:{attribute}:{value}`: set of customer ids, for region, model, firmware, lot,
  installed (the install quarter) and each configured extra trait.
- `{fw:idx}:model+firmware:{pair}`: set of the customers owning that model on that
  firmware (see `forewarn.connectors.segments`).
- `{fw:idx}:all`: set of every customer id.
- `{fw:idx}:phone:{E.164}`: set of the customers with that phone number (an inbound STOP opts
  every one of them out; `ids_by_phone`). Never a trait: `phone` is a built-in field.
- `{fw:idx}:geo`: GEO set of the customers with lat/lon (Redis GEO covers latitudes within
  ±85.05112878; customers beyond that are kept in the index but not in the GEO set). It
  pre-filters area searches (`in_area`, see `forewarn.connectors.redis_geo`).

The sets share the hash tag `fw:idx`, so a segment's SINTER or SINTERCARD stays in one
slot of a Redis Cluster, whatever traits it combines.

Writes are read-then-write pipelines (no MULTI): the old docs of a batch are read in one
round trip, then one round trip moves each customer between the value sets. This assumes one
writer per customer at a time (customer upserts are keyed by id, e.g. a Kafka partition per
id); two concurrent writers of the same id could leave it in a stale value set. Every set a
customer belongs in is re-added on each upsert (SADD is idempotent), so re-loading the
customers after adding an extra trait to the configuration fills its sets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from functools import lru_cache
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster

from forewarn.connectors import redis_keys as keys_of
from forewarn.connectors.redis_geo import geo_candidates
from forewarn.connectors.redis_keys import RedisClient
from forewarn.connectors.segments import Entry, check_segment, customer_entries, matches, segment_sets
from forewarn.geo import GEO_MAX_LAT, Area
from forewarn.interfaces import Segment
from forewarn.records import INDEXED_ATTRIBUTES, Channel, ContactCard, Customer, OptOut, Product, normalize_phone

BATCH_SIZE = 1_000


def customer_from_doc(raw: bytes | str) -> Customer:
    """Rebuild a Customer from JSON this index wrote, skipping re-validation (~7x faster).

    Only for docs that were validated before they were stored.

    >>> c = Customer.model_validate({"id": "CU-1", "region": "R", "tier": "gold",
    ...     "products": [{"model": "M", "firmware": "1", "installed": "2025-03-01"}]})
    >>> customer_from_doc(c.to_json()) == c
    True
    >>> bare = Customer.model_validate({"id": "CU-2", "region": "R"})
    >>> customer_from_doc(bare.to_json()) == bare
    True
    """
    doc = orjson.loads(raw)
    if "products" in doc:
        doc["products"] = tuple(_product(p) for p in doc["products"])
    if doc.get("opt_out") is not None:
        doc["opt_out"] = _opt_out(bool(doc["opt_out"].get("sms")), bool(doc["opt_out"].get("email")))
    return Customer.model_construct(**doc)


def _product(doc: dict[str, Any]) -> Product:
    """Products are frozen and often alike (one model, firmware, lot and day for many customers),
    so equal ones are built once and shared; building a pydantic model is most of a decode."""
    try:
        return _shared_product(tuple(doc.items()))
    except TypeError:  # an unhashable extra field: build this one on its own
        return _build_product(doc)


@lru_cache(maxsize=16_384)
def _shared_product(items: tuple[tuple[str, Any], ...]) -> Product:
    return _build_product(dict(items))


def _build_product(doc: dict[str, Any]) -> Product:
    if doc.get("installed") is not None:
        doc = {**doc, "installed": date.fromisoformat(doc["installed"])}
    return Product.model_construct(**doc)


@lru_cache(maxsize=4)
def _opt_out(sms: bool, email: bool) -> OptOut:
    return OptOut.model_construct(sms=sms, email=email)


def _geo_point(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if lat is None or lon is None or abs(lat) > GEO_MAX_LAT:
        return None
    return (lon, lat)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisCustomerIndex:
    """`CustomerIndex` over Redis sets and JSON strings (see the module doc for the key layout).

    `extra_traits` names customer or product fields indexed as traits beside the built-in ones.
    """

    def __init__(self, client: RedisClient, prefix: str = "fw", *, batch_size: int = BATCH_SIZE,
                 trust_stored: bool = True, extra_traits: Sequence[str] = ()) -> None:
        self.client = client
        self.prefix = prefix
        self.batch_size = batch_size
        self.trust_stored = trust_stored
        self.extra_traits = tuple(extra_traits)
        self.traits = INDEXED_ATTRIBUTES + self.extra_traits
        self._all = keys_of.all_key(prefix)
        self._geo = keys_of.geo_key(prefix)

    def _cust_key(self, customer_id: str) -> str:
        return keys_of.doc_key(self.prefix, customer_id)

    def _idx_key(self, attribute: str, value: str) -> str:
        return keys_of.set_key(self.prefix, attribute, value)

    def _set_key(self, entry: Entry) -> str:
        return self._idx_key(*entry)

    def _phone_key(self, phone: str) -> str:
        return self._idx_key("phone", phone)

    def segment_keys(self, segment: Segment) -> list[str]:
        """The keys of the sets whose intersection is `segment` (the set of everyone when it is empty):
        one slot on a cluster, so Redis intersects them in one call."""
        return [self._set_key(e) for e in segment_sets(segment)] or [self._all]

    def _decode(self, raw: bytes | str) -> Customer:
        return customer_from_doc(raw) if self.trust_stored else Customer.model_validate_json(raw)

    # -- writes ---------------------------------------------------------------------------

    def upsert(self, customers: Iterable[Customer]) -> int:
        """Insert or replace customers in batches, moving them between value sets; return how many."""
        count = 0
        batch: dict[str, Customer] = {}
        for customer in customers:
            batch[customer.id] = customer  # the last version of an id within a batch wins
            count += 1
            if len(batch) >= self.batch_size:
                self._upsert_batch(list(batch.values()))
                batch = {}
        if batch:
            self._upsert_batch(list(batch.values()))
        return count

    def _old_docs(self, batch: list[Customer]) -> list[bytes | str | None]:
        """The stored docs of a batch in one round trip; one EXISTS first spares a fresh load the read."""
        keys = [self._cust_key(c.id) for c in batch]
        if not self.client.exists(*keys):
            return [None] * len(keys)
        return keys_of.mget(self.client, keys)

    def _upsert_batch(self, batch: list[Customer]) -> None:
        old_docs = self._old_docs(batch)
        adds: dict[str, list[str]] = defaultdict(list)
        removes: dict[str, list[str]] = defaultdict(list)
        geo: list[Any] = []
        geo_removes: list[str] = []
        for customer, old_raw in zip(batch, old_docs, strict=True):
            entries = customer_entries(customer, self.extra_traits)
            for entry in entries:
                adds[self._set_key(entry)].append(customer.id)
            old = customer_from_doc(old_raw) if old_raw is not None else None
            if old is not None:
                for entry in customer_entries(old, self.extra_traits) - entries:
                    removes[self._set_key(entry)].append(customer.id)
            if customer.phone:
                adds[self._phone_key(customer.phone)].append(customer.id)
            if old is not None and old.phone and old.phone != customer.phone:
                removes[self._phone_key(old.phone)].append(customer.id)
            point = _geo_point(customer.lat, customer.lon)
            if point is not None:
                geo.extend((*point, customer.id))
            elif old is not None and _geo_point(old.lat, old.lon) is not None:
                geo_removes.append(customer.id)
        write = self.client.pipeline(transaction=False)
        keys_of.set_many(write, {self._cust_key(c.id): c.to_json() for c in batch})
        for set_key, ids in removes.items():
            write.srem(set_key, *ids)
        for set_key, ids in adds.items():
            write.sadd(set_key, *ids)
        write.sadd(self._all, *(c.id for c in batch))
        if geo:
            write.geoadd(self._geo, geo)
        if geo_removes:
            write.zrem(self._geo, *geo_removes)
        write.execute()

    def record_opt_out(self, customer_id: str, channel: Channel) -> bool:
        """Rewrite the customer's doc opted out of `channel`; False when unknown or already so."""
        return self._rewrite(customer_id, lambda c: c.opting_out(channel) if not c.opted_out(channel) else None)

    def record_opt_in(self, customer_id: str, channel: Channel) -> bool:
        """Rewrite the customer's doc opted back in to `channel` (an inbound START); False when unknown or
        not opted out."""
        return self._rewrite(customer_id, lambda c: c.opting_in(channel) if c.opted_out(channel) else None)

    def _rewrite(self, customer_id: str, change: Callable[[Customer], Customer | None]) -> bool:
        """Replace the customer's doc with `change(customer)` (None: leave it); WATCH makes a concurrent
        upsert win or retry."""
        key = self._cust_key(customer_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    changed = None if raw is None else change(customer_from_doc(raw))  # type: ignore[arg-type]
                    if changed is None:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.set(key, changed.to_json())
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue  # the doc changed between GET and SET: read it again

    def ids_by_phone(self, phone: str) -> list[str]:
        """The ids of the customers whose phone is `phone` (any spelling of the number), sorted."""
        try:
            number = normalize_phone(phone)
        except ValueError:
            return []
        members = self.client.smembers(self._phone_key(number))
        return sorted(_text(m) for m in members)  # type: ignore[union-attr]

    def get_many(self, ids: Sequence[str]) -> list[Customer | None]:
        """The customers with these ids, None where unknown, in the same order (one MGET)."""
        return [None if raw is None else self._decode(raw) for raw in self._docs([self._cust_key(i) for i in ids])]

    def _docs(self, keys: Sequence[bytes | str]) -> list[bytes | str | None]:
        return keys_of.mget(self.client, keys)

    def size(self) -> int:
        return int(self.client.scard(self._all))  # type: ignore[arg-type]

    def count(self, segment: Segment) -> int:
        """How many customers match `segment` (all when it is empty), counted by Redis from the sets."""
        check_segment(segment, self.traits)
        keys = self.segment_keys(segment)
        if len(keys) == 1:
            return int(self.client.scard(keys[0]))  # type: ignore[arg-type]
        try:
            return int(self.client.sintercard(len(keys), keys))  # type: ignore[arg-type]
        except redis.ResponseError:  # before Redis 7: no SINTERCARD
            return len(self.client.sinter(keys))  # type: ignore[arg-type]

    def value_counts(self, attribute: str, values: Iterable[str]) -> dict[str, int]:
        """How many customers carry each value of `attribute`: one SCARD per value, one round trip."""
        check_segment({attribute: ""}, self.traits)
        wanted = list(dict.fromkeys(values))
        pipe = self.client.pipeline(transaction=False)
        for value in wanted:
            pipe.scard(self._idx_key(attribute, value))
        return {value: int(n) for value, n in zip(wanted, pipe.execute(), strict=True)}

    def attribute_counts(self, attribute: str) -> dict[str, int]:
        """Every value of `attribute` with its set size: a SCAN of its set keys, then SCARDs."""
        check_segment({attribute: ""}, self.traits)
        prefix = self._idx_key(attribute, "")
        keys = [_text(k) for k in self._scan(prefix.replace("*", r"\*") + "*")]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.scard(key)
        counts = {key.removeprefix(prefix): int(n) for key, n in zip(keys, pipe.execute(), strict=True)}
        return {value: n for value, n in counts.items() if n}

    def _scan(self, match: str) -> Iterator[bytes | str]:
        """SCAN for set keys; on a cluster only on the shard holding the index's sets."""
        if isinstance(self.client, RedisCluster):
            node = self.client.get_node_from_key(self._all)
            return self.client.scan_iter(match=match, count=1000, target_nodes=node)
        return self.client.scan_iter(match=match, count=1000)

    def segment(self, segment: Segment) -> Iterator[Customer]:
        """Every customer matching all of `segment` (all customers when it is empty), in batches.

        An unknown attribute raises ValueError here, before any customer is read.
        """
        check_segment(segment, self.traits)
        return (self._decode(raw) for keys in self._key_batches(segment) for raw in self._docs(keys) if raw is not None)

    def contacts(self, segment: Segment) -> Iterator[ContactCard]:
        """How to reach every customer of `segment`: one MGET per batch, each doc read as a `ContactCard`."""
        check_segment(segment, self.traits)
        return (ContactCard.from_doc(orjson.loads(raw)) for keys in self._key_batches(segment)
                for raw in self._docs(keys) if raw is not None)  # None: removed since its set was read

    def in_area(self, area: Area, segment: Segment | None = None, *, batch_size: int = 1_000) -> Iterator[Customer]:
        """Every customer in `area` (and in `segment`, when given), each once: the GEO pre-filter's
        candidates (`candidate_ids`), their docs fetched `batch_size` at a time (one MGET each),
        then the exact test of `Area` on each doc's own lat/lon.

        An unknown attribute in `segment` raises ValueError here, before any customer is read.
        """
        wanted = dict(segment or {})
        check_segment(wanted, self.traits)
        if area.is_empty:
            return iter(())
        return self._in_area(area, wanted, batch_size)

    def _in_area(self, area: Area, segment: Segment, batch_size: int) -> Iterator[Customer]:
        ids = sorted(self.candidate_ids(area))
        for start in range(0, len(ids), batch_size):
            found = [c for c in self.get_many(ids[start:start + batch_size]) if c is not None]
            yield from (c for c in area.filter(found) if not segment or matches(c, segment, self.extra_traits))

    def candidate_ids(self, area: Area) -> set[str]:
        """The ids the GEO pre-filter returns for `area`: a superset of the customers in it."""
        return geo_candidates(self.client, self._geo, area)

    def _key_batches(self, segment: Segment) -> Iterator[list[bytes | str]]:
        """The doc keys of the customers of `segment`, a batch at a time."""
        sets = self.segment_keys(segment)
        if len(sets) > 1:  # an intersection is computed by Redis in one call
            members: list[bytes | str] = list(self.client.sinter(sets))  # type: ignore[arg-type]
            for start in range(0, len(members), self.batch_size):
                yield self._doc_keys(members[start:start + self.batch_size])
            return
        seen: set[bytes | str] = set()  # SSCAN may return a member more than once
        cursor = 0
        while True:  # one set is read in pages, so a large one never arrives as one reply
            cursor, page = self.client.sscan(sets[0], cursor, count=self.batch_size)  # type: ignore[misc]
            fresh = [m for m in page if m not in seen]
            seen.update(fresh)
            if fresh:
                yield self._doc_keys(fresh)
            if cursor == 0:
                return

    def _doc_keys(self, members: list[bytes | str]) -> list[bytes | str]:
        prefix = self._cust_key("")
        if members and isinstance(members[0], bytes):  # the client does not decode replies
            encoded = prefix.encode()
            return [encoded + m for m in members]  # type: ignore[operator]
        return [prefix + m for m in members]  # type: ignore[operator]
