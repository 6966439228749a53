"""The holdout is never messaged, is the same customers whatever path decides them, never applies to safety
messages; the effect estimate's interval covers the true effect about as often as it says."""

from __future__ import annotations

import random

from forewarn.outreach.effect import Effect, effect_of, in_holdout, pooled
from forewarn.outreach.lifecycle import Lifecycle
from forewarn.settings import PlaybookSettings
from tests.unit.test_decision_gate import parts
from tests.unit.test_lifecycle import delivered
from tests.unit.test_outreach import _opened


def test_the_holdout_is_recorded_and_never_messaged_at_any_stage() -> None:
    p = parts(holdout=0.3)
    incident = _opened()
    report = p.outreach.handle(incident)
    held = p.outbox.held_out(incident.id)
    assert held and report.outcomes["held_out"] == len(held)
    assert report.outcomes["enqueued"] + len(held) == 13
    assert held == {c for c in p.outbox.decided(incident.id, "warning") | held if in_holdout(incident.id, c, 0.3)}
    delivered(p)
    life = Lifecycle(p.outreach)
    life.ack(incident.id, "ana")
    life.update(incident.id, "ana")
    life.resolve(incident.id, "ana")
    messaged = set().union(*(p.outbox.decided(incident.id, k) for k in ("warning", "ack", "update-1", "resolved")))
    assert messaged and not messaged & held
    assert p.outbox.held_out(incident.id) == held  # the later stages held out the very same customers


def test_safety_messages_hold_nobody_out() -> None:
    p = parts(PlaybookSettings(topic_criticality={"no_internet": "critical"}, approval_from=None), holdout=0.5)
    report = p.outreach.handle(_opened())
    assert report.decision is not None and report.decision.severity == "critical"
    assert "held_out" not in report.outcomes and p.outbox.held_out(_opened().id) == set()


def test_the_interval_covers_the_true_difference_about_95_times_in_100() -> None:
    rng = random.Random(11)
    covered = 0
    for _ in range(400):
        warned, held = 1_500, 170
        base, avoided = 0.06, 0.6
        w_calls = sum(rng.random() < base * (1 - avoided) for _ in range(warned))
        h_calls = sum(rng.random() < base for _ in range(held))
        low, high = Effect("INC", warned, w_calls, held, h_calls).difference_interval
        covered += low <= base * avoided <= high
    assert 0.91 <= covered / 400 <= 0.99, covered


def test_pooled_effects_add_the_groups() -> None:
    one = effect_of("A", {"w1", "w2"}, {"h1"}, {"w1", "h1", "other"})
    two = effect_of("B", {"w3"}, {"h2", "h3"}, set())
    both = pooled([one, two])
    assert (both.warned, both.warned_calls, both.held_out, both.held_out_calls) == (3, 1, 3, 1)
    assert both.incident_id is None and both.difference == 0.0
