"""The rarity gate: a key that fires often by its detector's rule opens an alarm only with a window it rarely
reaches; a key its model fits is never held back; an admitted alarm goes on; memory is bounded."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

import pytest

from forewarn.detectors.fleet import FaultShareDetector, FleetAcc, FleetState, FleetStep, Sum
from forewarn.detectors.rarity import RarityGate
from forewarn.detectors.topic import TopicDetector
from forewarn.flows.steps import DetectorFactory, fleet_step, rarity_gate
from forewarn.records import NATIONAL, PaneCases
from forewarn.settings import DetectionSettings


def _quiet(gate: RarityGate, key: str, indices: range) -> None:
    for index in indices:
        assert gate.admit(key, index, 1.0, fires=False) is False


def test_a_key_its_model_fits_is_never_held_back() -> None:
    """Firing in 0.2% of its windows (well under 1%), every firing window opens an alarm, however weak."""
    gate = RarityGate(rarity=0.01, memory=1000)
    rng = random.Random(3)
    verdicts = []
    for index in range(20_000):
        fires = index >= 200 and rng.random() < 0.002
        admitted = gate.admit("TX", index, 5.0 + rng.random(), fires)
        if fires:
            verdicts.append(admitted)
    assert len(verdicts) > 20 and all(verdicts)


def test_a_key_that_fires_often_is_held_back_unless_stronger_than_its_top_share() -> None:
    gate = RarityGate(rarity=0.01, memory=1000)
    _quiet(gate, "TX", range(100))
    # fires every 10th window (10%) at strength 6: the first ones are rare, then it is its noise
    held = [gate.admit("TX", index, 6.0, fires=index % 10 == 0) for index in range(100, 1000)]
    firing = held[::10]
    assert firing[0] is True and firing[-1] is False
    first_held = firing.index(False)
    # at most ~1% of the windows so far fired as strongly when the last one was admitted
    assert first_held <= 0.01 * (100 + 10 * first_held) + 1
    assert gate.p_value("TX", 1000, 6.0) > 0.05
    # a window stronger than every remembered one is rare again; one as strong is not
    assert gate.admit("TX", 1000, 6.0, fires=True) is False
    assert gate.admit("TX", 1001, 9.0, fires=True) is True


def test_an_admitted_alarm_goes_on_and_a_held_back_one_is_judged_again() -> None:
    gate = RarityGate(rarity=0.05, memory=100)
    _quiet(gate, "TX", range(100))
    assert [gate.admit("TX", i, 8.0, fires=True) for i in range(100, 130)] == [True] * 30  # one run, open
    assert gate.admit("TX", 130, 1.0, fires=False) is False  # the run ends
    # 30 of the last 100 windows fired at 8: a new run at 8 is held back, window after window...
    assert [gate.admit("TX", i, 8.0, fires=True) for i in range(131, 134)] == [False] * 3
    # ...until one of its windows is stronger than all but 5%; the run then goes on at any strength
    assert gate.admit("TX", 134, 20.0, fires=True) is True
    assert gate.admit("TX", 135, 7.0, fires=True) is True


def test_memory_forgets_and_keys_are_apart() -> None:
    gate = RarityGate(rarity=0.01, memory=500)
    _quiet(gate, "TX", range(500))
    for index in range(500, 560):  # a flood: every other window of 60 fires
        gate.admit("TX", index, 7.0, fires=index % 2 == 0)
    assert gate.rare("TX", 600, 7.0) is False
    assert gate.rare("CA", 600, 7.0) is True  # another key: its own history, none of TX's
    _quiet(gate, "TX", range(560, 1060))
    assert gate.rare("TX", 1060, 7.0) is True  # the flood left memory
    assert "TX" not in gate._fired  # and so did its state


def test_rarity_one_admits_everything_and_bad_arguments_fail() -> None:
    gate = RarityGate(rarity=1.0, memory=10)
    assert all(gate.admit("TX", i, 5.0, fires=True) for i in range(50))
    for rarity, memory in ((0.0, 10), (1.5, 10), (0.01, 0), (0.01, 99)):  # 99 windows cannot tell 1%
        with pytest.raises(ValueError, match="rarity"):
            RarityGate(rarity=rarity, memory=memory)
    assert RarityGate(rarity=0.01, memory=100).rare("TX", 0, 5.0)  # the shortest memory still admits


def test_a_key_is_rare_from_its_first_window_and_a_gap_ends_a_run() -> None:
    """No deaf warm-up: a fresh gate (a new device group, a restored state) admits a key's first firing window;
    an alarm goes on only window after window, so a run broken by silence is judged again."""
    gate = RarityGate(rarity=0.01, memory=1000)
    assert gate.admit("TX", 5000, 6.0, fires=True) is True
    for index in range(5001, 5020):
        gate.admit("TX", index, 6.0, fires=True)  # a long run, admitted as one alarm
    assert gate.admit("TX", 5300, 6.0, fires=True) is False  # no window in between: a new run, held back
    assert gate.admit("TX", 5301, 6.0, fires=True) is False


def test_p_value_changes_nothing() -> None:
    """Early firing asks ahead of the next close: asking must not forget what the close will count."""
    gate = RarityGate(rarity=0.05, memory=100)
    for index in range(100):
        gate.admit("TX", index, 7.0, fires=index % 4 == 0)
    before = pickle.dumps(gate)
    assert gate.p_value("TX", 150, 7.0) < gate.p_value("TX", 100, 7.0)  # half of them out of memory at 150
    assert pickle.dumps(gate) == before


def test_state_round_trips_and_stays_bounded() -> None:
    gate = RarityGate(rarity=0.01, memory=200)
    for index in range(10_000):
        gate.admit(f"K-{index % 3}", index, float(index % 7), fires=index % 5 == 0)
    assert max(len(fired) for fired in gate._fired.values()) <= 200 // 5 // 3 + 2
    # a restored gate remembers what held the key back; a fresh one would admit
    twin = pickle.loads(pickle.dumps(gate))
    assert [twin.admit("K-1", 10_000 + i, 5.0, True) for i in range(2)] == [False, False]
    assert [RarityGate(0.01, 200).admit("K-1", 10_000 + i, 5.0, True) for i in range(2)] == [True, True]
    # an alarm that goes on for ever keeps only its last `memory` windows
    for index in range(20_000, 30_000):
        assert gate.admit("K-9", index, 9.0, fires=True)
    assert len(gate._fired["K-9"]) == 200


# --- in the topic detector --------------------------------------------------------------------------------


def _bursty(pane: int) -> dict[str, PaneCases]:
    """Ten cases a pane, and a 60-case burst every 40 panes (10 hours at 15 minutes): 2.5% of the windows."""
    return {"TX-453": PaneCases(60 if pane % 40 == 39 and pane > 200 else 10)}


def _national_bursts(detector: TopicDetector, panes: int) -> list[int]:
    return [pane for pane in range(panes) for verdict in detector.process(pane, _bursty(pane))
            if verdict.spikes]


def test_a_topic_with_rarity_stops_alarming_on_its_own_bursts() -> None:
    """Without the gate every burst alarms; with it, the first does, then only a burst stronger than all but
    the key's top 1% of windows (the bursts score higher for a while as the scorer learns the quiet panes'
    small variance), and once their scores level off, none."""
    plain = TopicDetector("no_internet", adapt_after=None)
    gated = TopicDetector("no_internet", adapt_after=None, rarity=RarityGate(0.01, memory=96 * 28))
    bursts = {pane // 40 for pane in _national_bursts(plain, 1600)}
    kept = {pane // 40 for pane in _national_bursts(gated, 1600)}
    assert bursts == set(range(5, 40))  # the plain detector reports every burst
    assert min(kept) == 5 and kept < bursts
    assert not {b for b in kept if b >= 20}  # by the twentieth burst, the key's bursts are its noise


def _spread_bursts(pane: int) -> dict[str, PaneCases]:
    """Four regions with a little noise, and a burst in all of them every 40 panes: a national surge each time
    (the noise lets a region fire by the rule now and then beside it)."""
    burst = pane % 40 == 39 and pane > 200
    rng = random.Random(pane)
    return {r: PaneCases((30 if burst else 5) + rng.randint(0, 3)) for r in ("A", "B", "C", "D")}


def test_a_held_back_nation_does_not_pass_its_surge_to_its_regions() -> None:
    """National vs regional is decided on what fired by the rule, then the reported keys are gated: a nation
    held back reports nothing, so the gate never turns one national alarm into several regional ones (a region
    that alone explains its nation's excess is judged by its own history, outside the nation's alarms)."""
    found: dict[str, list[tuple[int, str]]] = {}
    held_back = 0
    for name, gate in (("plain", None), ("gated", RarityGate(0.01, memory=96 * 28))):
        detector = TopicDetector("no_internet", adapt_after=None, rarity=gate)
        found[name] = []
        for pane in range(1600):
            spikes = [s.region for v in detector.process(pane, _spread_bursts(pane)) for s in v.spikes]
            held_back += gate is not None and detector._national_fired and NATIONAL not in spikes
            found[name].extend((pane, region) for region in spikes)
    regional = [(pane, region) for pane, region in found["gated"] if region != NATIONAL]
    assert held_back > 20 and len(regional) < held_back / 10  # four regions a close, were they passed the surge
    assert {(p, r) for p, r in found["gated"] if r == NATIONAL} < {(p, r) for p, r in found["plain"] if r == NATIONAL}
    assert len(found["gated"]) < len(found["plain"]) // 2
    # the price of the nation's run (README, "Noise control per key"): one region that had fired only inside its
    # nation's alarms explains the nation alone once, as the nation's own alarms begin to be held back
    assert set(found["gated"]) - set(found["plain"]) == {(480, "A")}


def test_a_topic_alarm_once_admitted_reports_every_window_of_its_run() -> None:
    gated = TopicDetector("no_internet", rarity=RarityGate(0.01, memory=96 * 28))
    plain = TopicDetector("no_internet")
    counts = [10] * 300 + [40] * 12 + [10] * 20
    spikes = {}
    for name, detector in (("plain", plain), ("gated", gated)):
        spikes[name] = [(pane, s.region) for pane, n in enumerate(counts)
                        for v in detector.process(pane, {"TX-453": PaneCases(n)}) for s in v.spikes]
    assert spikes["gated"] == spikes["plain"] and len(spikes["plain"]) >= 8
    assert {region for _, region in spikes["plain"]} == {NATIONAL}


def test_a_nation_known_for_its_noise_reports_nothing_for_one_more_burst() -> None:
    """The nation's history says its windows fire this strongly all the time: a burst across four regions is
    held back as the nation's, and its regions (each with a clean history) are not reported in its place."""
    detector = TopicDetector("no_internet", adapt_after=None, rarity=RarityGate(0.01, memory=96 * 28))
    quiet = {r: PaneCases(5) for r in ("A", "B", "C", "D")}
    for pane in range(700):
        assert not [s for v in detector.process(pane, quiet) for s in v.spikes]
        if pane >= 400 and pane % 10 == 0:
            assert detector._gate is not None
            detector._gate.remember(NATIONAL, pane, 1e9)  # a noisy nation, as far as the gate knows
    burst = {r: PaneCases(30) for r in ("A", "B", "C", "D")}
    reported = [s.region for pane in range(700, 704) for v in detector.process(pane, burst) for s in v.spikes]
    assert reported == []
    plain = TopicDetector("no_internet", adapt_after=None)
    for pane in range(700):
        plain.process(pane, quiet)
    assert [s.region for pane in range(700, 704) for v in plain.process(pane, burst) for s in v.spikes]


def test_a_gate_that_admits_everything_changes_no_verdict() -> None:
    """The gate only ever removes spikes: at rarity 1 the detector's verdicts are exactly the plain one's."""
    plain = TopicDetector("no_internet", adapt_after=None)
    open_gate = TopicDetector("no_internet", adapt_after=None, rarity=RarityGate(1.0, memory=10))
    for pane in range(1000):
        assert plain.process(pane, _spread_bursts(pane)) == open_gate.process(pane, _spread_bursts(pane))


# --- counting runs: a key's bursts, not its windows ----------------------------------------------------------


def _runs(gate: RarityGate, key: str, starts: list[int], length: int) -> list[bool]:
    """Whether each run of `length` firing windows (score 9, from each start) opened an alarm at its first."""
    first = []
    for start in starts:
        verdicts = [gate.admit(key, i, 9.0, fires=True) for i in range(start, start + length)]  # the whole run
        first.append(verdicts[0])
    return first


def test_counting_runs_hears_a_weekly_surge_however_long_and_holds_back_daily_bursts() -> None:
    """Over four weeks of 15-minute windows: a surge of 12 hours every week is 48 firing windows a week, 7% of
    them, which a window-counting gate at the same rate (8 per four weeks) holds back from the second on; counting
    runs, each one is heard. A burst every day is held back once eight of them were as strong."""
    memory, step = timedelta(days=28), timedelta(minutes=15)
    runs = RarityGate.at_most(8, memory, step)
    windows = RarityGate.spanning(8 / 2688, memory, step)
    weekly = [2688 + week * 672 for week in range(6)]
    for gate in (runs, windows):
        gate.seen(0)
    assert _runs(runs, "TX", weekly, 48) == [True] * 6
    assert _runs(windows, "TX", weekly, 48) == [True] + [False] * 5
    daily = _runs(runs, "CA", [2688 + day * 96 for day in range(20)], 4)
    assert daily == [True] * 8 + [False] * 12


def test_a_run_counts_at_its_strongest_and_a_gap_starts_another() -> None:
    gate = RarityGate.at_most(2, timedelta(days=28), timedelta(minutes=15))
    gate.seen(0)
    for index, score in zip(range(3000, 3004), (5.0, 9.0, 6.0, 5.0), strict=True):
        gate.remember("TX", index, score)
    assert gate.p_value("TX", 3100, 9.0) == 2 / 2688  # one earlier run at least this strong: its peak, 9
    assert gate.p_value("TX", 3100, 9.5) == 1 / 2688
    gate.remember("TX", 3005, 9.0)  # a quiet window between: another run
    assert gate.p_value("TX", 3100, 9.0) == 3 / 2688
    assert not gate.rare("TX", 3100, 9.0) and gate.rare("TX", 3100, 9.5)
    hourly = RarityGate.at_most(2, timedelta(days=28), timedelta(minutes=15), gap=4)  # a run outlasts 3 quiet
    for index in (3000, 3004, 3008, 3013):
        hourly.remember("TX", index, 9.0)
    assert hourly.p_value("TX", 3100, 9.0) == 3 / 2688  # two runs: 3000-3008, and 3013 (4 quiet before it)


def test_a_gate_from_before_runs_counts_windows() -> None:
    """A gate pickled before runs existed (no `runs`, no `gap` in its state) restores counting windows."""
    old = RarityGate(0.01, memory=1000)
    for attribute in ("runs", "gap"):
        del old.__dict__[attribute]
    restored = pickle.loads(pickle.dumps(old))
    assert (restored.runs, restored.gap) == (False, 1)
    for index in (0, 1, 2):
        restored.remember("TX", index, 9.0)
    assert restored.p_value("TX", 10, 9.0) == 4 / 100  # three windows, not one run
    with pytest.raises(ValueError, match="runs"):
        RarityGate.at_most(0, timedelta(days=1), timedelta(minutes=15))
    assert RarityGate.at_most(1, 49 * timedelta(minutes=15), timedelta(minutes=15)).memory == 49  # 49 * (1/49) < 1


def _national_then_local(pane: int) -> dict[str, PaneCases]:
    """Four regions of 5 cases a pane; a surge to 30 in all of them for 4 panes at 500, 600 and 700 (national);
    then one to 20 in region A alone at 800 (local, weaker in A than the national ones were)."""
    national = pane in range(500, 504) or pane in range(600, 604) or pane in range(700, 704)
    local = pane in range(800, 804)
    return {r: PaneCases(30 if national else 20 if local and r == "A" else 5) for r in ("A", "B", "C", "D")}


def test_regions_windows_in_a_national_alarm_are_the_nations_run() -> None:
    """Three national surges are reported as national; A's windows in them fired by the rule as its own would,
    but they are the nation's run: A's weaker surge alone afterwards is still rare for A (counted as A's, its
    three stronger runs would hold it back at three runs allowed)."""
    gate = RarityGate.at_most(3, timedelta(days=5), timedelta(minutes=15))
    detector = TopicDetector("no_internet", adapt_after=None, rarity=gate)
    reported = {(pane // 100, s.region) for pane in range(900)
                for v in detector.process(pane, _national_then_local(pane)) for s in v.spikes}
    assert reported == {(5, NATIONAL), (6, NATIONAL), (7, NATIONAL), (8, "A")}


# --- wiring: settings, the flow's detectors, the fleet ------------------------------------------------------


def test_settings_wire_the_gates() -> None:
    default = DetectionSettings()
    assert default.rarity_runs == 8 and default.telemetry_value_rarity == 0.01
    gate = DetectorFactory(default)("no_internet").rarity
    assert gate is not None and (gate.rarity, gate.memory, gate.runs) == (8 / 2688, 2688, True)
    assert DetectorFactory(DetectionSettings(rarity_runs=None))("no_internet").rarity is None
    settings = DetectionSettings(rarity_runs=3, rarity_memory="14d", slide="15m")
    gate = rarity_gate(settings)
    assert gate is not None and (gate.rarity, gate.memory) == (3 / (14 * 96), 14 * 96)
    assert repr(DetectorFactory(settings)("no_internet").rarity) == repr(gate)
    step = fleet_step(settings)
    assert (step.value_rarity, step.rarity_memory) == (0.01, timedelta(days=14))
    with pytest.raises(ValueError):
        DetectionSettings(rarity_runs=0)
    with pytest.raises(ValueError, match=r"rarity_runs .*lengthen the memory"):
        DetectionSettings(rarity_runs=100, rarity_memory="1d", telemetry_value_rarity=None)  # 96 windows: 96 runs
    with pytest.raises(ValueError, match="rarity_memory"):
        DetectionSettings(rarity_memory="1d")  # 96 windows of 15 minutes cannot tell 1% of a metric's panes
    with pytest.raises(ValueError, match="rarity"):
        FleetStep(slide=timedelta(minutes=15), rarity_memory=timedelta(hours=12))


T0 = datetime(2026, 11, 2, tzinfo=UTC)


def _value_alarms(step: FleetStep, panes: int, jumpy: bool) -> list[int]:
    """The first panes of a region's runs of RSSI alarms: its mean steady at -60 with small noise, and (jumpy)
    a 25 dB drop every 30 panes."""
    state: FleetState | None = None
    alarms: list[tuple[int, int]] = []
    rng = random.Random(5)
    for pane in range(panes):
        drop = 25.0 if jumpy and pane % 30 == 29 and pane > 200 else 0.0
        acc = FleetAcc({"D-1"}, {}, {"rssi": Sum(-60.0 + rng.gauss(0.0, 0.5) - drop, 1)})
        state, verdicts = step(state, ("region=TX-453", pane, acc))
        if any(s.topic == "telemetry.rssi" for v in verdicts for s in v.spikes):
            if not alarms or alarms[-1][1] != pane - 1:
                alarms.append((pane, pane))
            alarms[-1] = (alarms[-1][0], pane)
    return [first for first, _ in alarms]


def test_a_metric_that_jumps_often_stops_alarming_and_one_that_jumps_once_alarms() -> None:
    gated = FleetStep(slide=timedelta(minutes=15), value_season=None)
    plain = FleetStep(slide=timedelta(minutes=15), value_season=None, value_rarity=None)
    every = _value_alarms(plain, 1400, jumpy=True)
    kept = _value_alarms(gated, 1400, jumpy=True)
    # each drop is one window at |z| ~40 of every 30 (3%): only a drop stronger than all but the top 1% of the
    # metric's windows alarms, fewer than half of them
    assert len(every) >= 35 and 1 <= len(kept) <= len(every) // 2
    assert kept[0] == every[0]
    once = [p for p in every if p < 260]
    assert once and set(once) <= set(kept)


def test_fleet_state_from_before_the_gate_gets_one_or_none() -> None:
    for rarity in (0.01, None):
        step = FleetStep(slide=timedelta(minutes=15), value_rarity=rarity)
        old = FleetState(FaultShareDetector((("region", "TX-453"),)))
        del old.gate  # a snapshot taken before the field existed restores without it
        restored = pickle.loads(pickle.dumps(old))
        state, _ = step(restored, ("region=TX-453", 1, FleetAcc({"D-1"}, {}, {"rssi": Sum(-60.0, 1)})))
        assert isinstance(getattr(state, "gate", None), RarityGate) is (rarity is not None)


def test_the_nab_bench_decides_telemetry_as_the_fleet_step_does() -> None:
    """bench.bench_nab's telemetry row is the product's decision, row for row: the same alarms as FleetStep's
    value spikes on the same readings, one per 15-minute pane."""
    from bench.nab.run import FleetValues, Series

    rng = random.Random(11)
    values = [-60.0 + rng.gauss(0.0, 0.5) - (25.0 if i % 30 == 29 and i > 200 else 0.0) for i in range(1400)]
    times = tuple(T0 + timedelta(minutes=15 * i) for i in range(len(values)))
    bench = FleetValues(season=None)(Series("realKnownCause/rssi.csv", times, tuple(values)))
    step = FleetStep(slide=timedelta(minutes=15), value_season=None)
    state: FleetState | None = None
    fleet = []
    for i, value in enumerate(values):
        state, verdicts = step(state, ("region=TX-453", i, FleetAcc({"D-1"}, {}, {"rssi": Sum(value, 1)})))
        fleet.append(any(s.topic == "telemetry.rssi" for v in verdicts for s in v.spikes))
    assert [z > 0 for z in bench] == fleet
    assert 5 <= sum(fleet) < sum(z >= 6.0 for z in FleetValues(season=None, rarity=None)(
        Series("realKnownCause/rssi.csv", times, tuple(values))))
