"""Counting cases into tumbling panes: what a windowing operator folds per topic.

A case counts as an `Event` under its topic (cases without one under `UNCLASSIFIED`,
until topic discovery gives them one). While a pane of a topic fills, each region keeps
a `RegionAcc`: how many cases, the first few case ids (for a spike's examples) and who
reported (so those customers are not warned of what they told us). `freeze_pane` turns
the pane into the `PaneCases` a `TopicDetector` closes.

These are per-record hot paths and per-key windowing state (deep-copied at snapshots,
pickled by recovery): plain slotted data, no closures.

>>> from datetime import UTC, datetime
>>> t = datetime(2026, 11, 20, 14, 3, tzinfo=UTC)
>>> pane = new_pane()
>>> for n in range(3):
...     pane = add_to_pane(pane, Event(t, "no_internet", "TX-453", f"C-{n}", "CU-42"))
>>> freeze_pane(pane)
{'TX-453': PaneCases(count=3, case_ids=('C-0', 'C-1', 'C-2'), reporters=('CU-42',))}
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from forewarn.records import Case, Origin, PaneCases, Telemetry

UNCLASSIFIED = "unclassified"
"""The topic cases count under until topic discovery assigns them one."""

MAX_EXAMPLES = 5
"""Case ids a region keeps per pane, as a spike's examples."""


class Event(NamedTuple):
    """The slim form of a record that detection counts."""

    ts: datetime
    topic: str
    region: str
    case_id: str | None
    customer_id: str | None
    origin: Origin | None = None


def to_event(record: Case | Telemetry, origin: Origin | None = None) -> Event | None:
    """A case counts under its topic; cases without one count as "unclassified" until
    topic discovery assigns one. Telemetry goes to fleet detection instead."""
    if isinstance(record, Case):
        return Event(record.ts, record.topic or UNCLASSIFIED, record.region, record.id, record.customer_id, origin)
    return None


@dataclass(slots=True, init=False)
class RegionAcc:
    """One region's cases in a filling pane: how many, the first few ids, and who reported (repeats kept
    until the pane is frozen)."""

    count: int
    case_ids: list[str]
    reporters: list[str]

    def __init__(self, count: int = 0, case_ids: list[str] | None = None, reporters: list[str] | None = None):
        # Written out: a sparse key makes one of these per case, and a generated __init__ with default
        # factories costs more than the counting.
        self.count = count
        self.case_ids = [] if case_ids is None else case_ids
        self.reporters = [] if reporters is None else reporters

    def __deepcopy__(self, memo: dict[int, Any]) -> RegionAcc:
        # Strings are immutable: copying the lists is a deep copy, at a fraction of copy.deepcopy's cost.
        return RegionAcc(self.count, self.case_ids.copy(), self.reporters.copy())

    def __reduce__(self) -> tuple[Any, ...]:
        return RegionAcc, (self.count, self.case_ids, self.reporters)  # compact: no per-object field names

    def add(self, case_id: str | None, customer_id: str | None, max_examples: int = MAX_EXAMPLES) -> None:
        self.count += 1
        if case_id:
            _keep_example(self.case_ids, case_id, max_examples)
        if customer_id:
            self.reporters.append(customer_id)

    def freeze(self) -> PaneCases:
        """Examples and reporters sorted: a pane's record does not depend on the order its cases arrived in
        (two input partitions interleave differently on one process and on two)."""
        return PaneCases(self.count, tuple(self.case_ids), tuple(sorted(set(self.reporters))))


def _keep_example(ids: list[str], case_id: str, most: int) -> None:
    """Keep the `most` smallest ids seen, sorted: which ones survive does not depend on arrival order."""
    if len(ids) < most:
        insort(ids, case_id)
    elif case_id < ids[-1]:
        ids.pop()
        insort(ids, case_id)


Pane = dict[str, RegionAcc]
"""Fold state of one topic's pane: region -> its cases so far."""


def new_pane() -> Pane:
    return {}


def add_to_pane(pane: Pane, event: Event, max_examples: int = MAX_EXAMPLES) -> Pane:
    acc = pane.get(event.region)
    if acc is None:
        acc = pane[event.region] = RegionAcc()
    acc.add(event.case_id, event.customer_id, max_examples)
    return pane


def merge_panes(a: Pane, b: Pane, max_examples: int = MAX_EXAMPLES) -> Pane:
    """`b`'s cases after `a`'s: the same pane as adding them one by one."""
    for region, theirs in b.items():
        mine = a.get(region)
        if mine is None:
            mine = a[region] = RegionAcc()
        mine.count += theirs.count
        for case_id in theirs.case_ids:
            _keep_example(mine.case_ids, case_id, max_examples)
        mine.reporters.extend(theirs.reporters)
    return a


def freeze_pane(pane: Pane) -> dict[str, PaneCases]:
    return {region: acc.freeze() for region, acc in pane.items()}
