"""The contacts warnings save: a holdout of each audience, and warned against held-out call rates.

A share of each messaging incident's audience is held out, chosen by a hash of the incident and the
customer (so a replay, an approval or a later stage holds out the same customers), recorded and never
messaged. Afterwards the customers who called about the incident (its linked reporters) give two rates,
warned and held out; their difference, with a 95 % interval, times the warned audience is the estimate of
contacts saved.

>>> effect = Effect("INC-1", warned=1_000, warned_calls=30, held_out=120, held_out_calls=9)
>>> round(effect.difference, 3), round(effect.contacts_saved), round(effect.relative_reduction, 2)
(0.045, 45, 0.6)
>>> low, high = effect.difference_interval
>>> low < effect.difference < high
True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

from forewarn.decisions import MESSAGING_TIERS, Decision
from forewarn.interfaces import IncidentStore, Outbox

Z95 = 1.959963984540054


def in_holdout(incident_id: str, customer_id: str, share: float) -> bool:
    """Whether the customer is in the incident's holdout (deterministic; about `share` of any audience).

    >>> sum(in_holdout("INC-1", f"CU-{i}", 0.1) for i in range(10_000))
    1023
    """
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{incident_id}|{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


@dataclass(frozen=True)
class Effect:
    """Calls among the warned and the held-out customers of one incident (or of many, pooled)."""

    incident_id: str | None
    warned: int
    warned_calls: int
    held_out: int
    held_out_calls: int

    @property
    def warned_rate(self) -> float:
        return self.warned_calls / self.warned if self.warned else 0.0

    @property
    def held_out_rate(self) -> float:
        return self.held_out_calls / self.held_out if self.held_out else 0.0

    @property
    def difference(self) -> float:
        """Calls avoided per warned customer: the held-out rate less the warned one."""
        return self.held_out_rate - self.warned_rate

    @property
    def difference_interval(self) -> tuple[float, float]:
        """95 % Wald interval of the difference, each rate shrunk a little (Agresti–Caffo: one call and one
        quiet customer added to each group), so a group with no call still has a width."""
        pw = (self.warned_calls + 1) / (self.warned + 2)
        ph = (self.held_out_calls + 1) / (self.held_out + 2)
        se = math.sqrt(pw * (1 - pw) / (self.warned + 2) + ph * (1 - ph) / (self.held_out + 2))
        centre = ph - pw
        return centre - Z95 * se, centre + Z95 * se

    @property
    def contacts_saved(self) -> float:
        return self.difference * self.warned

    @property
    def contacts_saved_interval(self) -> tuple[float, float]:
        low, high = self.difference_interval
        return low * self.warned, high * self.warned

    @property
    def relative_reduction(self) -> float:
        """The share of calls warnings avoided: 1 − warned rate / held-out rate (0 when nobody held out called)."""
        return 1 - self.warned_rate / self.held_out_rate if self.held_out_rate else 0.0

    @property
    def relative_interval(self) -> tuple[float, float]:
        """95 % interval of the relative reduction, from the log of the rate ratio (half a call added to
        each group when one has none)."""
        cw, ch = float(self.warned_calls), float(self.held_out_calls)
        if cw == 0 or ch == 0:
            cw, ch = cw + 0.5, ch + 0.5
        if not self.warned or not self.held_out:
            return (-math.inf, 1.0)
        log_ratio = math.log((cw / self.warned) / (ch / self.held_out))
        se = math.sqrt(max(1 / cw - 1 / self.warned, 0) + max(1 / ch - 1 / self.held_out, 0))
        return 1 - math.exp(log_ratio + Z95 * se), 1 - math.exp(log_ratio - Z95 * se)


def effect_of(incident_id: str, warned: set[str], held_out: set[str], callers: set[str]) -> Effect:
    """One incident: `callers` are the customers who called about it (its linked reporters)."""
    return Effect(incident_id, len(warned), len(warned & callers), len(held_out), len(held_out & callers))


def pooled(effects: Iterable[Effect]) -> Effect:
    """Every incident's groups added together (their rates weighted by their sizes)."""
    effects = list(effects)
    return Effect(None, sum(e.warned for e in effects), sum(e.warned_calls for e in effects),
                  sum(e.held_out for e in effects), sum(e.held_out_calls for e in effects))


def measured(decisions: Iterable[Decision], outbox: Outbox, store: IncidentStore) -> list[Effect]:
    """The effect of each decided incident that held customers out: its warned customers (the provider took
    their warning), its holdout, and the customers who called about it (the stored incident's reporters)."""
    effects = []
    for decision in decisions:
        held = outbox.held_out(decision.incident_id) if decision.tier in MESSAGING_TIERS else set()
        if not held:
            continue
        incident = store.load(decision.incident_id)
        callers = set(incident.reporters) if incident is not None else set()
        effects.append(effect_of(decision.incident_id, outbox.accepted(decision.incident_id, "warning"), held,
                                 callers))
    return effects


def describe(effect: Effect) -> str:
    """One line for a person: both rates, the relative reduction and the contacts saved, with intervals."""
    saved_low, saved_high = effect.contacts_saved_interval
    return (f"warned customers called {effect.warned_rate:.1%} ({effect.warned_calls}/{effect.warned}), held-out "
            f"{effect.held_out_rate:.1%} ({effect.held_out_calls}/{effect.held_out}): {fewer_calls(effect)}, about "
            f"{effect.contacts_saved:.0f} contacts saved (95% CI {saved_low:.0f} to {saved_high:.0f})")


def fewer_calls(effect: Effect) -> str:
    """The relative reduction with its interval: `52% fewer calls (95% CI 2% to 76%)`."""
    low, high = effect.relative_interval
    return f"{effect.relative_reduction:.0%} fewer calls (95% CI {max(low, -9.99):.0%} to {high:.0%})"
