"""Install-date ranges are traits too: a batch installed in one quarter can be what the affected share."""

from __future__ import annotations

import random
from datetime import date

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.outreach.targeting import TraitRule, isolate_traits
from forewarn.records import Customer


def _customer(i: int, installed: date, model: str) -> Customer:
    return Customer.model_validate({"id": f"CU-{i}", "region": f"R{i % 7}",
                                    "products": [{"model": model, "firmware": f"{model}-1",
                                                  "installed": installed.isoformat()}]})


def test_a_bad_install_quarter_is_isolated_across_models_and_regions() -> None:
    rng = random.Random(4)
    customers = [_customer(i, date(rng.randint(2021, 2025), rng.randint(1, 12), 15), rng.choice("ABCD"))
                 for i in range(2_000)]
    index = InMemoryCustomerIndex()
    index.upsert(customers)
    batch = [c for c in customers if c.attributes()["installed"] == {"2024Q3"}]
    assert 50 < len(batch) < 200
    traits = isolate_traits(batch[:40], index, TraitRule())
    assert [(t.attribute, t.value) for t in traits] == [("installed", "2024Q3")]
    assert index.value_counts("installed", ["2024Q3"]) == {"2024Q3": len(batch)}
