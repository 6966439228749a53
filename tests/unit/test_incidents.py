"""IncidentTracker: spikes of consecutive windows become one incident, quiet resolves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from forewarn.outreach.incidents import IncidentTracker, incident_id
from forewarn.records import NATIONAL, Incident, PaneCases, Spike, WindowVerdict

STEP = timedelta(minutes=15)
T0 = datetime(2026, 11, 17, 14, tzinfo=UTC)
TOPIC = "no_internet"


def pane(k: int) -> tuple[datetime, datetime]:
    return T0 + k * STEP, T0 + (k + 1) * STEP


def spike(k: int, region: str = "TX-453", observed: int = 20, expected: float = 2.0,
          reporters: tuple[str, ...] = ()) -> Spike:
    """The spike of the 1-hour window ending with pane k."""
    start, end = pane(k)
    return Spike(TOPIC, region, start - 3 * STEP, end, observed, expected, 1e-10, 10.0, "test",
                 (f"C-{k}",), reporters)


def verdict(k: int, *spikes: Spike, cases: dict[str, PaneCases] | None = None) -> WindowVerdict:
    start, end = pane(k)
    return WindowVerdict(TOPIC, start, end, tuple(spikes), cases or {})


def run(tracker: IncidentTracker, verdicts: list[WindowVerdict]) -> list[Incident]:
    return [event for v in verdicts for event in tracker.observe(v)]


def outage(resolve_after: int = 4) -> list[WindowVerdict]:
    """Three spiking panes in TX-453, then quiet panes; each verdict carries its pane's cases."""
    return [
        verdict(0, spike(0, observed=12, reporters=("CU-1", "CU-2")),
                cases={"TX-453": PaneCases(11, (), ("CU-1", "CU-2"))}),
        verdict(1, spike(1, observed=30, expected=2.5, reporters=("CU-1", "CU-2", "CU-3")),
                cases={"TX-453": PaneCases(18, (), ("CU-3",))}),
        verdict(2, spike(2, observed=25, reporters=("CU-1", "CU-2", "CU-3")),
                cases={"TX-453": PaneCases(0)}),
        *[verdict(k) for k in range(3, 3 + resolve_after)],
    ]


def test_consecutive_spikes_are_one_incident_with_a_stable_id() -> None:
    events = run(IncidentTracker(resolve_after=4), outage())
    assert [e.status for e in events] == ["opened", "updated", "updated", "resolved"]
    assert len({e.id for e in events}) == 1
    first = events[0]
    assert first.id == incident_id(TOPIC, "TX-453", T0 - 3 * STEP)
    assert first.id.startswith("INC-20261117T1315Z-no_internet-TX-453-")
    assert (first.topic, first.region) == (TOPIC, "TX-453")
    assert first.opened_at == pane(0)[1]
    assert first.first_window_start == T0 - 3 * STEP
    assert first.reporters == frozenset({"CU-1", "CU-2"})
    last_update = events[2]
    assert last_update.spikes == 3
    assert last_update.last_spike_end == pane(2)[1]
    assert (last_update.observed, last_update.expected) == (30, 2.5)  # the peak window

    # Same input, a fresh tracker: the very same ids and events (replays dedup on them).
    again = run(IncidentTracker(resolve_after=4), outage())
    assert again == events
    # Another region or another first window gives another id.
    assert incident_id(TOPIC, "TX-201", T0 - 3 * STEP) != first.id
    assert incident_id(TOPIC, "TX-453", T0) != first.id
    assert "-ALL-" in incident_id(TOPIC, NATIONAL, T0)


@pytest.mark.parametrize("resolve_after", [1, 2, 4])
def test_resolves_after_resolve_after_quiet_panes(resolve_after: int) -> None:
    tracker = IncidentTracker(resolve_after=resolve_after)
    verdicts = outage(resolve_after)
    events = run(tracker, verdicts[:3])
    assert tracker.open_incidents()
    # One quiet pane short of resolution: still open, nothing emitted.
    assert run(tracker, verdicts[3:-1]) == []
    assert len(tracker.open_incidents()) == 1
    [resolved] = tracker.observe(verdicts[-1])
    assert resolved.status == "resolved"
    assert resolved.id == events[0].id
    assert resolved.resolved_at == verdicts[-1].pane_end
    assert resolved.reporters == frozenset({"CU-1", "CU-2", "CU-3"})
    assert tracker.open_incidents() == []


def test_a_spike_breaks_the_quiet_count() -> None:
    tracker = IncidentTracker(resolve_after=3)
    run(tracker, [verdict(0, spike(0)), verdict(1), verdict(2)])
    [update] = tracker.observe(verdict(3, spike(3)))
    assert update.status == "updated"
    assert run(tracker, [verdict(4), verdict(5)]) == []
    [resolved] = tracker.observe(verdict(6))
    assert resolved.status == "resolved"
    assert resolved.resolved_at == pane(6)[1]


def test_new_spike_after_resolution_opens_a_new_incident() -> None:
    tracker = IncidentTracker(resolve_after=2)
    first = run(tracker, [verdict(0, spike(0)), verdict(1), verdict(2)])
    assert [e.status for e in first] == ["opened", "resolved"]
    [reopened] = tracker.observe(verdict(10, spike(10)))
    assert reopened.status == "opened"
    assert reopened.id != first[0].id
    assert reopened.spikes == 1
    assert reopened.first_window_start == pane(10)[0] - 3 * STEP


def test_regional_spike_joins_an_open_national_incident() -> None:
    tracker = IncidentTracker(resolve_after=4)
    [national] = tracker.observe(verdict(0, spike(0, region=NATIONAL, observed=200, expected=60.0)))
    assert (national.status, national.region) == ("opened", NATIONAL)
    [joined] = tracker.observe(verdict(1, spike(1, region="TX-453", reporters=("CU-9",))))
    assert joined.id == national.id
    assert joined.status == "updated"
    assert joined.region == NATIONAL
    assert joined.spikes == 2
    assert [i.id for i in tracker.open_incidents()] == [national.id]


def test_regional_incidents_of_other_regions_stay_apart() -> None:
    tracker = IncidentTracker(resolve_after=4)
    events = tracker.observe(verdict(0, spike(0, region="TX-453"), spike(0, region="CA-037")))
    assert sorted(e.region for e in events) == ["CA-037", "TX-453"]
    assert len({e.id for e in events}) == 2


def test_later_cases_of_the_key_are_linked() -> None:
    tracker = IncidentTracker(resolve_after=4)
    [opened] = tracker.observe(verdict(0, spike(0, observed=12, reporters=("CU-1", "CU-2"))))
    assert opened.linked_cases == 12
    # A quiet pane with 3 more cases in the region and 5 elsewhere: only the region's 3 are linked.
    tracker.observe(verdict(1, cases={"TX-453": PaneCases(3, ("C-a",), ("CU-3", "CU-4", "CU-1")),
                                      "CA-037": PaneCases(5, ("C-b",), ("CU-50",))}))
    [current] = tracker.open_incidents()
    assert current.linked_cases == 15
    assert current.reporters == frozenset({"CU-1", "CU-2", "CU-3", "CU-4"})
    # A spiking pane links its cases too, and reports the incident as updated.
    [update] = tracker.observe(verdict(2, spike(2, observed=14), cases={"TX-453": PaneCases(2, (), ("CU-5",))}))
    assert update.linked_cases == 17
    assert update.reporters == frozenset({"CU-1", "CU-2", "CU-3", "CU-4", "CU-5"})
    events = run(tracker, [verdict(k) for k in range(3, 7)])
    [resolved] = events
    assert resolved.linked_cases == 17
    assert resolved.reporters == update.reporters


def test_a_pane_that_counted_nothing_still_makes_its_reporters_the_incidents() -> None:
    """A customer's repeat (`detection.repeat_horizon`) is not counted but is a reporter: outreach reads the
    incident's reporters, so they must not be warned of what they told us."""
    tracker = IncidentTracker(resolve_after=4)
    tracker.observe(verdict(0, spike(0, observed=12, reporters=("CU-1",))))
    assert tracker.observe(verdict(1, cases={"TX-453": PaneCases(0, (), ("CU-9",))})) == [], "nothing to report yet"
    [current] = tracker.open_incidents()
    assert (current.linked_cases, current.reporters) == (12, frozenset({"CU-1", "CU-9"}))


def test_a_national_incident_links_cases_of_every_region() -> None:
    tracker = IncidentTracker(resolve_after=4)
    tracker.observe(verdict(0, spike(0, region=NATIONAL, observed=100, expected=30.0)))
    tracker.observe(verdict(1, cases={"TX-453": PaneCases(3, (), ("CU-1",)),
                                      "CA-037": PaneCases(4, (), ("CU-2",))}))
    [current] = tracker.open_incidents()
    assert current.linked_cases == 107
    assert current.reporters >= {"CU-1", "CU-2"}


def test_resolve_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="resolve_after"):
        IncidentTracker(resolve_after=0)
