"""Property-based tests of the clock and of detection: arbitrary timestamps, in any order.

The time bounds and a partition's `StreamGate` must take any sequence of record times without
raising and decide on every record exactly once (counted or dead-lettered, never both, never
neither); a `TopicDetector` must close any sequence of panes, however far apart or out of
order, without raising, and never emit a window twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forewarn.detectors.baseline import SeasonalBaseline
from forewarn.detectors.time_bounds import TimeBounds
from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.records import PaneCases

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLIDE = timedelta(minutes=15)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)

any_time = st.datetimes(timezones=st.just(UTC))
"""Anywhere from year 1 to year 9999."""
near_time = st.integers(min_value=-3 * 24 * 60, max_value=3 * 24 * 60).map(lambda m: NOW + timedelta(minutes=m))
"""Within three days of NOW: where a stream mostly lives."""
record_times = st.lists(st.one_of(near_time, near_time, near_time, any_time), max_size=60)


@FUZZ
@given(times=record_times, live=st.booleans(), jump_after=st.integers(min_value=1, max_value=6),
       ahead_minutes=st.integers(min_value=1, max_value=24 * 60))
def test_every_record_time_is_counted_or_dead_lettered_exactly_once(times: list[datetime], live: bool,
                                                                    jump_after: int, ahead_minutes: int) -> None:
    bounds = TimeBounds(max_ahead=timedelta(minutes=ahead_minutes), max_stream_ahead=timedelta(minutes=ahead_minutes),
                        jump_after=jump_after)
    gate = bounds.gate()
    counted: list[int] = []
    refused: dict[int, str] = {}
    for n, ts in enumerate(times):
        reason = bounds.check(ts, NOW, live)
        if reason is not None:
            refused[n] = reason
        elif live:
            counted.append(n)
        else:
            accepted, dropped = gate.offer(ts, n)
            counted.extend(accepted)
            refused.update(dropped)
    if not live:
        accepted, dropped = gate.end()
        counted.extend(accepted)
        refused.update(dropped)
    assert sorted(counted + list(refused)) == list(range(len(times))), "a record was lost or decided twice"
    assert all(reason.startswith("time: ") for reason in refused.values())
    for n in counted:
        # What is counted can be windowed: its pane and the panes around it are representable.
        assert bounds.check(times[n], NOW, live) is None
        TopicDetector("t", slide=SLIDE).pane_start(pane_index(times[n], SLIDE) + 8 * 24 * 4)


@settings(FUZZ, max_examples=50)
@given(panes=st.lists(st.tuples(st.one_of(st.integers(-50, 5_000), st.integers(-(10**6), 10**8)),
                                st.dictionaries(st.sampled_from(["R1", "R2", "R3"]), st.integers(0, 500),
                                                max_size=3)),
                      max_size=25))
def test_a_detector_closes_any_sequence_of_panes_and_never_repeats_a_window(
        panes: list[tuple[int, dict[str, int]]]) -> None:
    detector = TopicDetector("t", window=timedelta(hours=1), slide=SLIDE, warmup=timedelta(hours=2),
                             baseline=SeasonalBaseline())
    emitted: list[datetime] = []
    for index, counts in panes:
        verdicts = detector.process(index, {r: PaneCases(n, (f"C-{r}",), ()) for r, n in counts.items() if n})
        emitted.extend(v.pane_start for v in verdicts)
    assert emitted == sorted(emitted) and len(set(emitted)) == len(emitted), "a pane was closed twice"
    highest = max((index for index, _ in panes), default=None)
    assert detector.stale_panes == sum(1 for k, (index, _) in enumerate(panes)
                                       if any(earlier >= index for earlier, _ in panes[:k]))
    if highest is not None:
        assert emitted[-1] == detector.pane_start(highest)
