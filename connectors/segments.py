"""What a customer index keeps a set for, and which sets answer a segment.

Both indexes (Redis and in-process) keep one set per (attribute, value) a customer carries,
plus one set per (model, firmware) pair of a product. A segment naming both a model and a
firmware reads the pair set: the customers owning that model *on* that firmware (not a model
on one product and the firmware on another), and one set instead of an intersection of two
large ones, which is what makes counting a product segment cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

from forewarn.interfaces import Segment
from forewarn.records import INDEXED_ATTRIBUTES, Customer

PAIR = "model+firmware"
"""The pseudo-attribute of the (model, firmware) pair sets; not valid in a segment."""

Entry = tuple[str, str]
"""(attribute, value): one set of the index."""


def pair_value(model: str, firmware: str) -> str:
    """The value naming a (model, firmware) pair; the length prefix keeps every pair distinct.

    >>> pair_value("R7000", "2.1.7")
    '5:R7000:2.1.7'
    """
    return f"{len(model)}:{model}:{firmware}"


def customer_entries(customer: Customer, extra_traits: tuple[str, ...] = ()) -> set[Entry]:
    """Every set `customer` belongs in.

    >>> c = Customer.model_validate({"id": "CU-1", "region": "R", "products": [{"model": "M", "firmware": "1"}]})
    >>> sorted(customer_entries(c))
    [('firmware', '1'), ('model', 'M'), ('model+firmware', '1:M:1'), ('region', 'R')]
    """
    entries = {(a, v) for a, values in customer.attributes(extra_traits).items() for v in values}
    entries.update((PAIR, pair_value(p.model, p.firmware)) for p in customer.products)
    return entries


def check_segment(segment: Segment, traits: Sequence[str] = INDEXED_ATTRIBUTES) -> None:
    """Raise ValueError for an attribute the index does not hold.

    >>> check_segment({"colour": "red"})
    Traceback (most recent call last):
    ...
    ValueError: unknown attribute 'colour': the index holds region, model, firmware, lot, installed
    """
    for attribute in segment:
        if attribute not in traits:
            raise ValueError(f"unknown attribute {attribute!r}: the index holds {', '.join(traits)}")


def segment_sets(segment: Segment) -> list[Entry]:
    """The sets whose intersection is `segment` (empty for the empty segment: everyone).

    >>> segment_sets({"region": "TX-453", "firmware": "2.1.7", "model": "R7000"})
    [('model+firmware', '5:R7000:2.1.7'), ('region', 'TX-453')]
    """
    rest = dict(segment)
    entries = []
    if "model" in rest and "firmware" in rest:
        entries.append((PAIR, pair_value(rest.pop("model"), rest.pop("firmware"))))
    entries.extend(rest.items())
    return entries


def matches(customer: Customer, segment: Segment, extra_traits: tuple[str, ...] = ()) -> bool:
    """Whether `customer` is in `segment`, as the indexes decide it (for customers found another way).

    >>> c = Customer.model_validate({"id": "CU-1", "region": "R", "products": [
    ...     {"model": "M", "firmware": "1"}, {"model": "N", "firmware": "2"}]})
    >>> matches(c, {"model": "M", "firmware": "1"}), matches(c, {"model": "M", "firmware": "2"})
    (True, False)
    """
    entries = customer_entries(customer, extra_traits)
    return all(entry in entries for entry in segment_sets(segment))
