"""Trait isolation over the scenario's customer base, with the default TraitRule."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from forewarn.connectors.memory import InMemoryCustomerIndex
from forewarn.demo.scenario import Scenario, generate
from forewarn.outreach.targeting import TraitRule, incident_segment, isolate_traits
from forewarn.records import NATIONAL, Customer, Incident


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate()


@pytest.fixture(scope="module")
def index(scenario: Scenario) -> InMemoryCustomerIndex:
    idx = InMemoryCustomerIndex()
    assert idx.upsert(scenario.customers) == len(scenario.customers)
    return idx


def reporters(index: InMemoryCustomerIndex, ids) -> list[Customer]:
    found = index.get_many(sorted(ids))
    assert None not in found
    return [c for c in found if c is not None]


def _incident(region: str) -> Incident:
    t = datetime(2026, 11, 17, 14, tzinfo=UTC)
    return Incident("INC-x", "wifi_drops", region, "opened", t, t, t, 30, 4.0, 1, 30)


def test_firmware_defect_reporters_isolate_model_and_firmware(scenario: Scenario,
                                                              index: InMemoryCustomerIndex) -> None:
    truth = scenario.truth("firmware_defect")
    traits = isolate_traits(reporters(index, truth.affected_customer_ids), index, TraitRule())
    assert {t.attribute: t.value for t in traits} == {"model": "R7000", "firmware": "2.1.7"} == truth.segment
    n = len(truth.affected_customer_ids)
    for trait in traits:
        assert trait.affected == n  # every one of them has the defective device
        assert trait.affected_share == 1.0
        base = index.value_counts(trait.attribute, [trait.value])[trait.value] / index.size()
        assert trait.base_share == pytest.approx(base)
        assert trait.lift == pytest.approx(1.0 / base)
        assert trait.lift >= 2.0
        assert 0.0 <= trait.p_value <= 1e-6
    # Firmware 2.1.7 is rarer in the base than R7000, so it is the stronger trait.
    by_attr = {t.attribute: t for t in traits}
    assert by_attr["firmware"].lift > by_attr["model"].lift
    assert by_attr["firmware"].p_value < by_attr["model"].p_value
    segment = incident_segment(_incident(NATIONAL), traits)
    assert segment == {"model": "R7000", "firmware": "2.1.7"}


def test_regional_outage_reporters_isolate_the_region_only(scenario: Scenario,
                                                          index: InMemoryCustomerIndex) -> None:
    truth = scenario.truth("regional_outage")
    traits = isolate_traits(reporters(index, truth.affected_customer_ids), index, TraitRule())
    assert [(t.attribute, t.value) for t in traits] == [("region", truth.region)]
    [trait] = traits
    assert trait.affected == len(truth.affected_customer_ids)
    assert trait.lift > 10
    assert 0.0 <= trait.p_value <= 1e-6
    assert incident_segment(_incident(truth.region), traits) == {"region": truth.region}


@pytest.mark.parametrize("seed", range(5))
def test_random_scatter_has_no_traits(scenario: Scenario, index: InMemoryCustomerIndex, seed: int) -> None:
    rng = random.Random(seed)
    scatter = rng.sample([c.id for c in scenario.customers], 40)
    assert isolate_traits(reporters(index, scatter), index, TraitRule()) == ()


def test_too_few_reporters_or_an_empty_index_yield_nothing(scenario: Scenario,
                                                           index: InMemoryCustomerIndex) -> None:
    truth = scenario.truth("firmware_defect")
    few = reporters(index, sorted(truth.affected_customer_ids)[:4])
    assert isolate_traits(few, index, TraitRule()) == ()  # below min_support = 5
    # Four alike are not improbable enough for the default p-value bound either (0.09**4 > 1e-6).
    assert isolate_traits(few, index, TraitRule(min_support=4)) == ()
    assert isolate_traits(few, index, TraitRule(min_support=4, max_p_value=1e-3)) != ()
    assert isolate_traits(reporters(index, truth.affected_customer_ids), InMemoryCustomerIndex(), TraitRule()) == ()


def test_coverage_rule_ignores_a_minority_value(scenario: Scenario, index: InMemoryCustomerIndex) -> None:
    # 25 defect reporters diluted by 40 random customers: R7000/2.1.7 cover under 60% of them.
    truth = scenario.truth("firmware_defect")
    rng = random.Random(1)
    noise = rng.sample([c.id for c in scenario.customers if c.id not in truth.affected_customer_ids], 40)
    mixed = reporters(index, [*sorted(truth.affected_customer_ids)[:25], *noise])
    assert isolate_traits(mixed, index, TraitRule()) == ()
    loose = isolate_traits(mixed, index, TraitRule(min_coverage=0.3))
    assert ("firmware", "2.1.7") in {(t.attribute, t.value) for t in loose}


def test_a_configured_extra_trait_defines_the_segment() -> None:
    # 200 customers on one model; the 30 who report all run the "beta" plan, 10% of the base.
    def made(i: int) -> Customer:
        return Customer.model_validate({"id": f"CU-{i}", "region": f"R{i % 7}", "plan": "beta" if i < 20 or i >= 190
                                        else "standard", "products": [{"model": "M", "firmware": "1"}]})

    index = InMemoryCustomerIndex(extra_traits=("plan",))
    index.upsert(made(i) for i in range(200))
    hit = reporters(index, [f"CU-{i}" for i in (*range(20), *range(190, 200))])
    traits = isolate_traits(hit, index, TraitRule())
    assert [(t.attribute, t.value) for t in traits] == [("plan", "beta")]
    assert traits[0].lift == pytest.approx(200 / 30) and traits[0].p_value <= 1e-6
    # the same reporters against an index that does not hold the field: nothing to isolate
    plain = InMemoryCustomerIndex()
    plain.upsert(made(i) for i in range(200))
    assert isolate_traits(hit, plain, TraitRule()) == ()
