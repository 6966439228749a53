"""The customer index in Redis: a hash per customer and a set per attribute value.

Layout (every key starts with `prefix`, "fw" by default):

- `{prefix}:cust:{id}`: hash; field `doc` is the customer JSON, plus flat fields read often
  (region, preferred_channel, phone, email, timezone, language, opt_out_sms, opt_out_email);
  a field whose value is missing is absent.
- `{prefix}:idx:{attribute}:{value}`: set of customer ids, for region, model, firmware and lot.
- `{prefix}:all`: set of every customer id.
- `{prefix}:geo`: GEO set of the customers with lat/lon (Redis GEO covers latitudes within
  ±85.05112878; customers beyond that are kept in the index but not in the GEO set).

Writes are read-then-write pipelines (no MULTI): the old docs of a batch are read in one
round trip, then one round trip moves each customer between the value sets. This assumes one
writer per customer at a time (customer upserts are keyed by id, e.g. a Kafka partition per
id); two concurrent writers of the same id could leave it in a stale value set.

Segments use SINTER, so on Redis Cluster all keys of one prefix must live in one slot
(use a hash-tagged prefix such as "{fw}").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

import orjson
import redis

from forewarn.interfaces import Segment
from forewarn.records import INDEXED_ATTRIBUTES, Customer, OptOut, Product, install_quarter

BATCH_SIZE = 1_000
GEO_MAX_LAT = 85.05112878
"""Redis GEO cannot store latitudes beyond this (the Web Mercator limit)."""

_FLAT_FIELDS = ("region", "preferred_channel", "phone", "email", "timezone", "language",
                "opt_out_sms", "opt_out_email")


def check_segment(segment: Segment) -> None:
    """Raise ValueError for an attribute the index does not hold.

    >>> check_segment({"colour": "red"})
    Traceback (most recent call last):
    ...
    ValueError: unknown attribute 'colour': the index holds region, model, firmware, lot, installed
    """
    for attribute in segment:
        if attribute not in INDEXED_ATTRIBUTES:
            raise ValueError(
                f"unknown attribute {attribute!r}: the index holds {', '.join(INDEXED_ATTRIBUTES)}"
            )


def doc_attributes(doc: dict[str, Any]) -> dict[str, set[str]]:
    """`Customer.attributes()` computed from a stored JSON doc, without building the model."""
    attrs: dict[str, set[str]] = {"region": {doc["region"]}, "model": set(), "firmware": set(), "lot": set(),
                                  "installed": set()}
    for product in doc.get("products") or ():
        attrs["model"].add(product["model"])
        attrs["firmware"].add(product["firmware"])
        if product.get("lot"):
            attrs["lot"].add(product["lot"])
        if product.get("installed"):
            attrs["installed"].add(install_quarter(product["installed"]))
    return attrs


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
        built = []
        for product in doc["products"]:
            if product.get("installed") is not None:
                product["installed"] = date.fromisoformat(product["installed"])
            built.append(Product.model_construct(**product))
        doc["products"] = tuple(built)
    if doc.get("opt_out") is not None:
        doc["opt_out"] = OptOut.model_construct(**doc["opt_out"])
    return Customer.model_construct(**doc)


def _flat_fields(customer: Customer) -> dict[str, str]:
    values: dict[str, str | None] = {
        "region": customer.region,
        "preferred_channel": customer.preferred_channel,
        "phone": customer.phone,
        "email": customer.email,
        "timezone": customer.timezone,
        "language": customer.language,
        "opt_out_sms": "1" if customer.opt_out.sms else "0",
        "opt_out_email": "1" if customer.opt_out.email else "0",
    }
    return {k: v for k, v in values.items() if v is not None}


def _geo_point(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if lat is None or lon is None or abs(lat) > GEO_MAX_LAT:
        return None
    return (lon, lat)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisCustomerIndex:
    """`CustomerIndex` over Redis sets and hashes (see the module doc for the key layout)."""

    def __init__(self, client: redis.Redis, prefix: str = "fw", *, batch_size: int = BATCH_SIZE,
                 trust_stored: bool = True) -> None:
        self.client = client
        self.prefix = prefix
        self.batch_size = batch_size
        self.trust_stored = trust_stored
        self._all = f"{prefix}:all"
        self._geo = f"{prefix}:geo"

    def _cust_key(self, customer_id: str) -> str:
        return f"{self.prefix}:cust:{customer_id}"

    def _idx_key(self, attribute: str, value: str) -> str:
        return f"{self.prefix}:idx:{attribute}:{value}"

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
        """The stored docs of a batch in one round trip; one EXISTS first spares a fresh load it."""
        keys = [self._cust_key(c.id) for c in batch]
        if not self.client.exists(*keys):
            return [None] * len(keys)
        read = self.client.pipeline(transaction=False)
        for key in keys:
            read.hget(key, "doc")
        return read.execute()

    def _upsert_batch(self, batch: list[Customer]) -> None:
        old_docs = self._old_docs(batch)

        adds: dict[str, list[str]] = defaultdict(list)
        removes: dict[str, list[str]] = defaultdict(list)
        geo: list[Any] = []
        geo_removes: list[str] = []
        write = self.client.pipeline(transaction=False)
        for customer, old_raw in zip(batch, old_docs, strict=True):
            new_attrs = customer.attributes()
            old = orjson.loads(old_raw) if old_raw is not None else None
            old_attrs = doc_attributes(old) if old is not None else {}
            for attribute in INDEXED_ATTRIBUTES:
                before = old_attrs.get(attribute, set())
                after = new_attrs[attribute]
                for value in after - before:
                    adds[self._idx_key(attribute, value)].append(customer.id)
                for value in before - after:
                    removes[self._idx_key(attribute, value)].append(customer.id)
            key = self._cust_key(customer.id)
            flat = _flat_fields(customer)
            if old is not None:
                gone = [f for f in _FLAT_FIELDS if f not in flat]
                if gone:
                    write.hdel(key, *gone)
            write.hset(key, mapping={"doc": customer.to_json(), **flat})
            point = _geo_point(customer.lat, customer.lon)
            if point is not None:
                geo.extend((*point, customer.id))
            elif old is not None and _geo_point(old.get("lat"), old.get("lon")) is not None:
                geo_removes.append(customer.id)
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

    # -- reads ----------------------------------------------------------------------------

    def get_many(self, ids: Sequence[str]) -> list[Customer | None]:
        """The customers with these ids, None where unknown, in the same order."""
        pipe = self.client.pipeline(transaction=False)
        for customer_id in ids:
            pipe.hget(self._cust_key(customer_id), "doc")
        return [None if raw is None else self._decode(raw) for raw in pipe.execute()]

    def size(self) -> int:
        return int(self.client.scard(self._all))  # type: ignore[arg-type]

    def value_counts(self, attribute: str, values: Iterable[str]) -> dict[str, int]:
        """How many customers carry each value of `attribute`: one SCARD per value, one round trip."""
        check_segment({attribute: ""})
        wanted = list(dict.fromkeys(values))
        pipe = self.client.pipeline(transaction=False)
        for value in wanted:
            pipe.scard(self._idx_key(attribute, value))
        return {value: int(n) for value, n in zip(wanted, pipe.execute(), strict=True)}

    def attribute_counts(self, attribute: str) -> dict[str, int]:
        """Every value of `attribute` with its set size: a SCAN of its set keys, then SCARDs."""
        check_segment({attribute: ""})
        prefix = self._idx_key(attribute, "")
        keys = [k.decode() if isinstance(k, bytes) else k
                for k in self.client.scan_iter(match=prefix.replace("*", r"\*") + "*", count=1000)]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.scard(key)
        counts = {key.removeprefix(prefix): int(n) for key, n in zip(keys, pipe.execute(), strict=True)}
        return {value: n for value, n in counts.items() if n}

    def segment(self, segment: Segment) -> Iterator[Customer]:
        """Every customer matching all of `segment` (all customers when it is empty), in batches.

        An unknown attribute raises ValueError here, before any customer is read.
        """
        check_segment(segment)
        return self._segment(segment)

    def _segment(self, segment: Segment) -> Iterator[Customer]:
        keys = [self._idx_key(a, v) for a, v in segment.items()] or [self._all]
        # One set is scanned in pages; an intersection is computed by Redis in one call.
        ids: Iterable[bytes | str] = (
            self.client.sscan_iter(keys[0], count=self.batch_size) if len(keys) == 1
            else self.client.sinter(keys)  # type: ignore[assignment]
        )
        seen: set[str] = set()  # SSCAN may return a member more than once
        batch: list[str] = []
        for member in ids:
            customer_id = _text(member)
            if customer_id in seen:
                continue
            seen.add(customer_id)
            batch.append(customer_id)
            if len(batch) >= self.batch_size:
                yield from self._present(batch)
                batch = []
        if batch:
            yield from self._present(batch)

    def _present(self, ids: list[str]) -> Iterator[Customer]:
        for customer in self.get_many(ids):
            if customer is not None:  # removed since the set was read
                yield customer
