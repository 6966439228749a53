"""TopicDetector on hand-made panes, then directly (no Bytewax) over the default scenario."""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from forewarn.demo.scenario import Scenario, generate
from forewarn.detectors.panes import Event, add_to_pane, freeze_pane
from forewarn.detectors.scoring import NegativeBinomialScorer, PoissonScorer, SpikeRule
from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.records import NATIONAL, PaneCases, Spike, WindowVerdict
from tests.unit.detector_helpers import DAY0, PER_DAY, REGIONS, SLIDE, feed, spikes_of, steady, warmed, with_

WINDOW = timedelta(hours=1)


# --- sparse keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scorer", [NegativeBinomialScorer(), PoissonScorer()], ids=repr)
def test_rule_two_where_point_three_expected_does_not_fire_forty_where_four_does(scorer) -> None:
    rule = SpikeRule()
    p_small = scorer.p_value(2, 0.3)
    assert p_small == pytest.approx(0.037, abs=0.004)  # improbable-ish, but only 2 cases
    assert not rule.fires(2, 0.3, p_small)
    p_big = scorer.p_value(40, 4.0)
    assert p_big < 1e-12
    assert rule.fires(40, 4.0, p_big)


def test_sparse_region_two_cases_where_point_three_expected_do_not_fire() -> None:
    # R00..R19 carry 1 case per pane; "SPARSE" one case every 13 panes: about 0.3 per 1-hour window.
    def pane(index: int) -> dict[str, PaneCases]:
        counts = dict.fromkeys(REGIONS, 1)
        counts["SPARSE"] = 1 if index % 13 == 0 else 0
        return steady(counts)

    det = TopicDetector("no_internet")
    assert not spikes_of(feed(det, DAY0, DAY0 + 2 * PER_DAY, pane))
    probe = DAY0 + 2 * PER_DAY
    before = sum(1 for k in range(1, 4) if (probe - k) % 13 == 0)  # SPARSE cases earlier in the window

    two = copy.deepcopy(det).process(probe, with_(SPARSE=2))
    assert [v.spikes for v in two] == [()]

    forty = copy.deepcopy(det).process(probe, with_(SPARSE=40))
    [spike] = forty[0].spikes
    assert (spike.region, spike.observed) == ("SPARSE", 40 + before)
    assert 0.2 < spike.expected < 0.45  # the expectation the 2 cases were judged against

    four = copy.deepcopy(det).process(probe, with_(R03=40))
    [spike] = four[0].spikes
    assert spike.region == "R03"
    assert spike.observed == 40 + 3  # the burst plus the 3 steady panes before it in the window
    assert spike.expected == pytest.approx(4.0, rel=0.1)
    assert spike.p_value < 1e-12


# --- national vs regional -----------------------------------------------------------------------------


def test_thin_national_surge_over_all_regions_is_one_national_spike() -> None:
    # 50 regions with about 0.4 cases per pane each; a surge that triples every region for 3 hours
    # (like a firmware defect): each region stays small, the country is far above its baseline.
    regions = [f"N{i:02d}" for i in range(50)]
    rng = random.Random(5)

    def pane(index: int) -> dict[str, PaneCases]:
        surge = DAY0 + 2 * PER_DAY + 40 <= index < DAY0 + 2 * PER_DAY + 52
        rate = 1.2 if surge else 0.4
        return steady({r: int(rng.random() < rate) + int(rng.random() < rate - 1) for r in regions})

    det = TopicDetector("wifi_drops")
    before = feed(det, DAY0, DAY0 + 2 * PER_DAY + 40, pane)
    assert not spikes_of(before)
    during = feed(det, DAY0 + 2 * PER_DAY + 40, DAY0 + 2 * PER_DAY + 52, pane)
    firing = [v for v in during if v.spikes]
    assert len(firing) >= 6
    for verdict in firing:
        assert [s.region for s in verdict.spikes] == [NATIONAL]
        assert verdict.spikes[0].observed > 2 * verdict.spikes[0].expected


def _strong_national_surge() -> list[WindowVerdict]:
    det = warmed()
    start = DAY0 + 2 * PER_DAY
    return feed(det, start, start + 8, lambda _: steady(dict.fromkeys(REGIONS, 4)))


def test_strong_national_surge_starts_as_one_national_spike() -> None:
    firing = [v for v in _strong_national_surge()[:3] if v.spikes]
    assert firing
    for verdict in firing:
        assert [s.region for s in verdict.spikes] == [NATIONAL]


def test_strong_national_surge_stays_one_national_spike() -> None:
    firing = [v for v in _strong_national_surge() if v.spikes]
    assert len(firing) >= 6
    for verdict in firing:
        assert [s.region for s in verdict.spikes] == [NATIONAL]


def test_surge_in_one_region_is_that_regions_spike_only() -> None:
    det = warmed()
    start = DAY0 + 2 * PER_DAY
    during = feed(det, start, start + 6, lambda _: with_(R07=12))
    spikes = spikes_of(during)
    assert len(spikes) >= 5
    assert {s.region for s in spikes} == {"R07"}
    first = spikes[0]
    # The steady warm-up stream is Poisson-like, so the learned dispersion is small and the first
    # window (3 steady + 12) already fires against 4 expected.
    assert first.window_end == det.pane_start(start + 1)
    assert first.observed == 1 + 1 + 1 + 12
    assert first.expected == pytest.approx(4.0, rel=0.1)
    assert set(first.reporters) >= {f"CU-R07-{i}" for i in range(12)}
    assert 0 < len(first.example_case_ids) <= 5


# --- warm-up, gaps, stragglers ----------------------------------------------------------------------


def test_no_spikes_before_warm_up() -> None:
    det = TopicDetector("no_internet", warmup=timedelta(days=1))
    burst = lambda _: with_(R01=60)  # noqa: E731
    early = feed(det, DAY0, DAY0 + 20) + feed(det, DAY0 + 20, DAY0 + 24, burst)
    early += feed(det, DAY0 + 24, DAY0 + PER_DAY - 8)
    assert len(early) == PER_DAY - 8
    assert not spikes_of(early)
    # The same burst after a day of learning fires: the silence above was the warm-up, not blindness.
    feed(det, DAY0 + PER_DAY - 8, DAY0 + PER_DAY + 8)
    assert spikes_of(feed(det, DAY0 + PER_DAY + 8, DAY0 + PER_DAY + 12, burst))


def test_gap_panes_are_quiet_verdicts_and_stragglers_are_dropped() -> None:
    det = warmed(days=1)
    last = DAY0 + PER_DAY - 1
    verdicts = det.process(last + 6, steady())
    assert len(verdicts) == 6
    assert [v.pane_start for v in verdicts] == [det.pane_start(last + k) for k in range(1, 7)]
    assert [v.pane_end for v in verdicts] == [det.pane_start(last + k) for k in range(2, 8)]
    for gap in verdicts[:5]:
        assert gap.cases == {}
        assert gap.spikes == ()
    assert verdicts[-1].cases == steady()
    assert det.stale_panes == 0

    assert det.process(last + 3, with_(R01=80)) == []  # a straggler inside the gap
    assert det.process(last + 6, with_(R01=80)) == []  # the last pane again
    assert det.stale_panes == 2
    # Stragglers leave no trace: the next pane sees only the steady traffic.
    nxt = det.process(last + 7, steady())
    assert len(nxt) == 1 and nxt[0].spikes == ()


# --- flagged windows are not learned --------------------------------------------------------------


SURGE_START = DAY0 + 2 * PER_DAY + 40  # day 3, 10:00
PROBE = DAY0 + 3 * PER_DAY + 44  # day 4, 11:00: a window over the same hours of day as the surge


def _probe_expected(rule: SpikeRule | None, surge: dict[str, int] | None) -> float:
    det = TopicDetector("no_internet", rule=rule)
    feed(det, DAY0, SURGE_START)
    if surge:
        flagged = spikes_of(feed(det, SURGE_START, SURGE_START + 8, lambda _: with_(**surge)))
        assert bool(flagged) == (rule is None)
    else:
        feed(det, SURGE_START, SURGE_START + 8)
    feed(det, SURGE_START + 8, PROBE)
    [spike] = spikes_of(det.process(PROBE, with_(R05=200)))
    assert spike.region == "R05"
    return spike.expected


@pytest.mark.parametrize("surge", [dict.fromkeys(REGIONS, 6), {"R05": 10}], ids=["national", "regional"])
def test_flagged_surge_is_not_learned(surge: dict[str, int]) -> None:
    control = _probe_expected(None, None)  # the same days without the surge
    after = _probe_expected(None, surge)
    assert control == pytest.approx(4.0, rel=0.1)
    assert after == pytest.approx(control, rel=0.1)
    # A detector that does not flag the surge (ratio threshold 12x) learns it: the check has teeth.
    leaky = _probe_expected(SpikeRule(min_ratio=12.0), surge)
    assert leaky > 1.3 * control


# --- the default scenario, run directly through the detector -------------------------------------------


def run_scenario(scenario: Scenario) -> list[Spike]:
    panes: dict[str, dict[int, dict]] = defaultdict(dict)
    for e in scenario.events:
        ts = datetime.fromisoformat(e["ts"])
        event = Event(ts, e["topic"], e["region"], e["id"], e["customer_id"])
        add_to_pane(panes[e["topic"]].setdefault(pane_index(ts, SLIDE), {}), event)
    spikes: list[Spike] = []
    for topic, by_index in sorted(panes.items()):
        det = TopicDetector(topic, window=WINDOW, slide=SLIDE)
        for index in sorted(by_index):
            spikes.extend(spikes_of(det.process(index, freeze_pane(by_index[index]))))
    return spikes


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate()


@pytest.fixture(scope="module")
def scenario_spikes(scenario: Scenario) -> list[Spike]:
    return run_scenario(scenario)


def _overlaps(spike: Spike, start: datetime, end: datetime) -> bool:
    return spike.window_start < end and spike.window_end > start


def test_scenario_outage_fires_in_its_region_within_30_minutes(scenario: Scenario, scenario_spikes) -> None:
    truth = scenario.truth("regional_outage")
    hits = [s for s in scenario_spikes if s.topic == "no_internet" and _overlaps(s, truth.start, truth.end)]
    assert hits
    assert {s.region for s in hits} == {truth.region}
    first = min(s.window_end for s in hits)
    assert truth.start < first <= truth.start + timedelta(minutes=30)
    assert max(s.observed for s in hits) >= 20


def test_scenario_firmware_defect_fires_nationally_in_its_window(scenario: Scenario, scenario_spikes) -> None:
    truth = scenario.truth("firmware_defect")
    hits = [s for s in scenario_spikes if s.topic == "wifi_drops" and _overlaps(s, truth.start, truth.end)]
    national = [s for s in hits if s.region == NATIONAL]
    assert national
    first = min(s.window_end for s in national)
    assert truth.start < first <= truth.end
    assert all(s.region == NATIONAL for s in hits)  # spread thin: no region on its own


def test_scenario_quiet_control_is_quiet(scenario: Scenario, scenario_spikes) -> None:
    truth = scenario.truth("quiet_control")
    assert [s for s in scenario_spikes if _overlaps(s, truth.start, truth.end)] == []


def test_scenario_few_false_alarms(scenario: Scenario, scenario_spikes) -> None:
    injected = [t for t in scenario.truths if t.topic]
    # Windows reaching back one window length before an injection can already hold its cases.
    false_alarms = [s for s in scenario_spikes
                    if not any(s.topic == t.topic and _overlaps(s, t.start, t.end + WINDOW) for t in injected)]
    assert len(false_alarms) <= 2, [(s.topic, s.region, s.window_start.isoformat(), s.observed,
                                     round(s.expected, 2)) for s in false_alarms]
    first_day_end = scenario.start + timedelta(days=1)
    assert not [s for s in scenario_spikes if s.window_end <= first_day_end]  # still warming up
