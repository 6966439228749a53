"""Detection state never raises on a timestamp, however extreme (years 1 and 9999, a reset clock).

The time bounds keep such records out of the flow; these tests are the second line: with the
bounds misconfigured, one record must still not raise inside a stateful step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from forewarn.detectors.baseline import RegionShares, SeasonalBaseline
from forewarn.detectors.fleet import FleetAcc, FleetStep
from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.records import PaneCases

SLIDE = timedelta(minutes=15)
NORMAL = pane_index(datetime(2026, 11, 16, tzinfo=UTC), SLIDE)
EXTREMES = [datetime(1, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, tzinfo=UTC)]


def _detector() -> TopicDetector:
    return TopicDetector("no_internet", window=timedelta(hours=1), slide=SLIDE, warmup=timedelta(hours=2))


def _quiet(n: int = 3) -> dict[str, PaneCases]:
    return {"TX-453": PaneCases(n), "CA-037": PaneCases(1)}


@pytest.mark.parametrize("extreme", EXTREMES, ids=lambda t: str(t.year))
def test_a_topics_first_pane_at_an_extreme_date_then_normal_ones(extreme: datetime) -> None:
    detector = _detector()
    verdicts = detector.process(pane_index(extreme, SLIDE), _quiet())
    for offset in range(40):
        verdicts += detector.process(NORMAL + offset, _quiet())
    if extreme.year > 2026:  # later panes are stragglers of a window already emitted: dropped, counted
        assert detector.stale_panes == 40
    else:
        assert verdicts[-1].pane_start == detector.pane_start(NORMAL + 39)


@pytest.mark.parametrize("extreme", EXTREMES, ids=lambda t: str(t.year))
def test_an_extreme_pane_after_normal_ones_and_its_neighbours(extreme: datetime) -> None:
    detector = _detector()
    for offset in range(40):
        detector.process(NORMAL + offset, _quiet())
    index = pane_index(extreme, SLIDE)
    for neighbour in (index, index + 1, index + 2):
        detector.process(neighbour, _quiet())


def test_pane_times_saturate_at_the_ends_of_the_calendar() -> None:
    detector = _detector()
    last = pane_index(datetime(9999, 12, 31, 23, 59, tzinfo=UTC), SLIDE)
    assert detector.pane_start(last + 1) == datetime.max.replace(tzinfo=UTC)
    first = pane_index(datetime(1, 1, 1, tzinfo=UTC), SLIDE)
    assert detector.pane_start(first - 1) == datetime.min.replace(tzinfo=UTC)
    assert detector.pane_start(NORMAL) == datetime(2026, 11, 16, tzinfo=UTC)


def test_region_shares_learn_a_pane_before_the_epoch_first() -> None:
    shares = RegionShares()
    shares.learn(pane_index(datetime(1, 1, 1, tzinfo=UTC), SLIDE), {"A": 3})
    shares.learn(NORMAL, {"A": 1, "B": 1})
    assert 0.0 < shares.share("A") < 1.0


@pytest.mark.parametrize("extreme", EXTREMES, ids=lambda t: str(t.year))
def test_the_seasonal_baseline_learns_and_predicts_any_time(extreme: datetime) -> None:
    baseline = SeasonalBaseline()
    baseline.learn_one(extreme, 5.0)
    assert baseline.predict_one(extreme) > 0.0


@pytest.mark.parametrize("extreme", EXTREMES, ids=lambda t: str(t.year))
def test_a_device_groups_pane_at_an_extreme_date(extreme: datetime) -> None:
    step = FleetStep(warmup=timedelta(hours=1))
    acc = FleetAcc(reporting={"D-1", "D-2"}, faulty={"wan_down": {"D-1"}})
    state, _ = step(None, ("model=R7000,firmware=2.1.7", NORMAL, acc))
    for index in (pane_index(extreme, SLIDE), pane_index(extreme, SLIDE) + 1):
        state, verdicts = step(state, ("model=R7000,firmware=2.1.7", index, acc))
    fresh, verdicts = step(None, ("region=TX-453", pane_index(extreme, SLIDE) + 1, acc))
    assert verdicts and fresh is not None
