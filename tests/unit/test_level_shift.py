"""A sustained step up is reported, then becomes the new normal; a short surge never does."""

from __future__ import annotations

from datetime import timedelta

from forewarn.outreach.incidents import IncidentTracker
from tests.unit.detector_helpers import DAY0, PER_DAY, feed, spikes_of, warmed, with_


def test_a_level_shift_is_one_incident_and_then_the_new_normal() -> None:
    det = warmed(days=3, adapt_after=timedelta(hours=6))
    start = DAY0 + 3 * PER_DAY
    verdicts = feed(det, start, start + 4 * PER_DAY, lambda _: with_(R07=4))  # R07 steps from 1 to 4 per pane
    firing = [v for v in verdicts if v.spikes]
    assert firing, "the step must be reported"
    assert {s.region for s in spikes_of(verdicts)} == {"R07"}
    last = max(v.pane_end for v in firing)
    assert last - verdicts[0].pane_start < timedelta(days=2), "the new level must stop firing"
    quiet_tail = [v for v in verdicts if v.pane_start >= last]
    assert len(quiet_tail) > PER_DAY and not spikes_of(quiet_tail)
    tracker = IncidentTracker(resolve_after=4)
    opened = [i for v in verdicts for i in tracker.observe(v) if i.status == "opened"]
    assert len(opened) == 1, "a level shift is reported once"


def test_without_adaptation_a_level_shift_keeps_firing() -> None:
    det = warmed(days=3, adapt_after=None)
    start = DAY0 + 3 * PER_DAY
    verdicts = feed(det, start, start + 4 * PER_DAY, lambda _: with_(R07=4))
    assert spikes_of(verdicts[-PER_DAY:]), "flagged panes are never learned, so the step never becomes normal"
