"""Trait isolation: which attribute values the customers already hit have in common.

For every attribute value among the reporters, compare its share among them with its
share in the whole base (from the index's own set sizes, not a scan). A value that
nearly all reporters share, that is strongly over-represented and that chance cannot
explain becomes part of the incident's segment; several such values combine with AND.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from forewarn.interfaces import CustomerIndex
from forewarn.records import INDEXED_ATTRIBUTES, NATIONAL, Customer, Incident, Trait
from forewarn.stats import binomial_sf


@dataclass(frozen=True)
class TraitRule:
    """How strong a trait must be to define a segment.

    `min_coverage` is the share of reporters that must carry the value: a segment is
    what the affected have in common, not a value some of them happen to share.
    """

    min_support: int = 5
    min_coverage: float = 0.6
    min_lift: float = 2.0
    max_p_value: float = 1e-6
    attributes: tuple[str, ...] | None = None
    """The attributes to test; None: every trait the index holds."""


def isolate_traits(reporters: Iterable[Customer], index: CustomerIndex, rule: TraitRule) -> tuple[Trait, ...]:
    """The traits shared by the reporters far beyond their share of the base.

    >>> from forewarn.connectors.memory import InMemoryCustomerIndex
    >>> def cust(i, model, region="R1"):
    ...     return Customer(id=f"CU-{i}", region=region,
    ...                     products=({"model": model, "firmware": model + "-1"},))
    >>> index = InMemoryCustomerIndex()
    >>> _ = index.upsert([cust(i, "R7000" if i < 10 else "X20") for i in range(100)])
    >>> [(t.attribute, t.value) for t in isolate_traits(index.get_many([f"CU-{i}" for i in range(8)]),
    ...                                                  index, TraitRule())]
    [('model', 'R7000'), ('firmware', 'R7000-1')]
    """
    affected = [c for c in reporters if c is not None]
    n = len(affected)
    if n < rule.min_support:
        return ()
    base_size = index.size()
    extra = tuple(a for a in index.traits if a not in INDEXED_ATTRIBUTES)
    carried = [c.attributes(extra) for c in affected]
    traits = []
    for attribute in index.traits if rule.attributes is None else rule.attributes:
        seen = Counter(value for attrs in carried for value in attrs.get(attribute, ()))
        candidates = {v: k for v, k in seen.items() if k >= rule.min_support and k / n >= rule.min_coverage}
        if not candidates or base_size == 0:
            continue
        base_counts = index.value_counts(attribute, candidates)
        for value, k in candidates.items():
            base_share = base_counts.get(value, 0) / base_size
            if base_share <= 0:
                continue
            lift = (k / n) / base_share
            p_value = binomial_sf(k, n, base_share)
            if lift >= rule.min_lift and p_value <= rule.max_p_value:
                traits.append(Trait(attribute, value, k, k / n, base_share, lift, p_value))
    return tuple(traits)


def incident_segment(incident: Incident, traits: tuple[Trait, ...]) -> dict[str, str]:
    """The segment to target: the incident's own region, then every isolated trait."""
    segment = {t.attribute: t.value for t in traits}
    if incident.region != NATIONAL:
        segment["region"] = incident.region
    return segment


def warning_segment(incident: Incident) -> dict[str, str]:
    """Who an incident's warning goes to: a device group's known traits (straight from telemetry),
    narrowed by the incident's region and the traits isolated among its reporters (`incident.segment`).

    The planner sends to it and `forewarn audience INC-...` previews it: one rule for both.
    """
    return dict(incident.known_segment) | incident_segment(incident, incident.segment)
