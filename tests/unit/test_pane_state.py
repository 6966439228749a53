"""The typed state the flow's windows fold into, the steps closing them, and the late dead letter.

Pane accumulators are per-key windowing state: Bytewax deep-copies them at snapshots and
recovery pickles them, so both must round-trip to an equal, independent pane.
"""

from __future__ import annotations

import copy
import pickle
import random
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from forewarn.batches import PartitionInfo
from forewarn.detectors.fleet import (
    FleetAcc,
    FleetState,
    FleetStep,
    Sum,
    device_groups,
    fleet_folder,
    group_traits,
    merge_fleet_panes,
    new_fleet_pane,
)
from forewarn.detectors.panes import (
    UNCLASSIFIED,
    Event,
    RegionAcc,
    add_to_pane,
    freeze_pane,
    merge_panes,
    new_pane,
    to_event,
)
from forewarn.detectors.shard import CountedCase, DetectionShard, ShardBatch, ShardRules
from forewarn.detectors.telemetry import _SEASONS
from forewarn.detectors.topic import PANE_EPOCH, TopicDetector, pane_index
from forewarn.detectors.topic_assignment import AssignTopics
from forewarn.flows.steps import fleet_step
from forewarn.records import Case, Origin, PaneCases, Telemetry
from forewarn.settings import ConfigError, DetectionSettings, load_settings

T0 = datetime(2026, 11, 20, 14, tzinfo=UTC)
SLIDE = timedelta(minutes=15)


def events(n: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    return [Event(T0 + timedelta(seconds=i), "no_internet", rng.choice(["TX-453", "CA-037", "NY-081"]),
                  f"C-{i}" if rng.random() < 0.9 else None,
                  f"CU-{rng.randrange(12)}" if rng.random() < 0.8 else None) for i in range(n)]


def fold(items: list[Event]) -> dict[str, RegionAcc]:
    pane = new_pane()
    for event in items:
        pane = add_to_pane(pane, event)
    return pane


# --- case panes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", [0, 1, 7, 30, 59, 60])
def test_merging_two_panes_equals_adding_their_events_in_order(split: int) -> None:
    items = events(60)
    merged = merge_panes(fold(items[:split]), fold(items[split:]))
    assert merged == fold(items)
    assert list(merged) == list(fold(items)), "regions keep their first-seen order"
    assert freeze_pane(merged) == freeze_pane(fold(items))


def test_a_region_keeps_a_count_the_first_five_ids_and_every_reporter() -> None:
    items = [Event(T0, "no_internet", "TX-453", f"C-{i}", f"CU-{i % 3}") for i in range(8)]
    items.append(Event(T0, "no_internet", "TX-453", None, None))
    acc = fold(items)["TX-453"]
    assert (acc.count, acc.case_ids) == (9, ["C-0", "C-1", "C-2", "C-3", "C-4"])
    assert acc.reporters == [f"CU-{i % 3}" for i in range(8)]
    assert acc.freeze() == PaneCases(9, ("C-0", "C-1", "C-2", "C-3", "C-4"), ("CU-0", "CU-1", "CU-2"))


def test_a_case_pane_pickles_and_deep_copies_to_an_equal_independent_pane() -> None:
    pane = fold(events(200))
    for twin in (pickle.loads(pickle.dumps(pane)), copy.deepcopy(pane)):
        assert twin == pane and freeze_pane(twin) == freeze_pane(pane)
        add_to_pane(twin, Event(T0, "no_internet", "TX-453", "C-new", "CU-new"))
        assert twin != pane, "the copy shares no list with the original"
    assert not hasattr(RegionAcc(), "__dict__"), "slotted: small per-key state"


def test_cases_without_a_topic_count_as_unclassified_and_telemetry_is_not_counted() -> None:
    case = Case(id="C-1", ts=T0, region="TX-453", customer_id="CU-1")
    assert to_event(case, Origin("cases", 0, 5)) == Event(T0, UNCLASSIFIED, "TX-453", "C-1", "CU-1",
                                                          Origin("cases", 0, 5))
    assert to_event(Telemetry(ts=T0, device_id="D-1", metric="wan_down", value=1.0)) is None


# --- device groups and their panes --------------------------------------------------------------------


def readings(n: int, seed: int = 3) -> list[Telemetry]:
    rng = random.Random(seed)
    return [Telemetry(ts=T0, device_id=f"D-{rng.randrange(40)}", metric=rng.choice(["wan_down", "wifi_drop", "rssi"]),
                      value=float(rng.random() < 0.3) if rng.random() < 0.7 else rng.uniform(-80, -40),
                      model="R7000", firmware="2.1.7", region="TX-453") for _ in range(n)]


def fleet_fold(items: list[Telemetry]) -> FleetAcc:
    add = fleet_folder(("wan_down", "wifi_drop"))
    acc = new_fleet_pane()
    for record in items:
        acc = add(acc, record)
    return acc


@pytest.mark.parametrize("split", [0, 1, 50, 99, 100])
def test_merging_two_fleet_panes_equals_folding_their_readings_in_order(split: int) -> None:
    items = readings(100)
    merged = merge_fleet_panes(fleet_fold(items[:split]), fleet_fold(items[split:]))
    whole = fleet_fold(items)
    assert merged.reporting == whole.reporting and merged.faulty == whole.faulty
    assert merged.values.keys() == whole.values.keys()
    for metric, total in whole.values.items():
        assert merged.values[metric].count == total.count
        assert merged.values[metric].total == pytest.approx(total.total)
    assert merged.freeze() == whole.freeze()


def test_a_fleet_pane_counts_devices_faults_and_numeric_sums() -> None:
    add = fleet_folder(("wan_down",))
    acc = new_fleet_pane()
    for device, metric, value in [("D-1", "wan_down", 1.0), ("D-1", "wan_down", 1.0), ("D-2", "wan_down", 0.0),
                                  ("D-3", "rssi", -60.0), ("D-3", "rssi", -70.0)]:
        acc = add(acc, Telemetry(ts=T0, device_id=device, metric=metric, value=value))
    assert acc == FleetAcc({"D-1", "D-2", "D-3"}, {"wan_down": {"D-1"}}, {"rssi": Sum(-130.0, 2)})
    frozen = acc.freeze()
    assert frozen.reporting == frozenset({"D-1", "D-2", "D-3"}) and frozen.faulty == {"wan_down": frozenset({"D-1"})}


def test_a_fleet_pane_pickles_and_deep_copies_to_an_equal_independent_pane() -> None:
    acc = fleet_fold(readings(300))
    for twin in (pickle.loads(pickle.dumps(acc)), copy.deepcopy(acc)):
        assert twin == acc
        twin.reporting.add("D-new")
        next(iter(twin.faulty.values())).add("D-new")
        twin.values["rssi"].count += 1
        assert twin != acc and "D-new" not in acc.reporting
        assert all("D-new" not in devices for devices in acc.faulty.values())


def test_device_groups_and_their_traits() -> None:
    record = Telemetry(ts=T0, device_id="D-9", metric="wan_down", value=1.0, region="TX-453", model="R7000",
                       firmware="2.1.7")
    assert device_groups(record) == ["model=R7000,firmware=2.1.7", "region=TX-453"]
    assert device_groups(Telemetry(ts=T0, device_id="D-9", metric="wan_down", value=1.0, model="R7000")) == []
    assert group_traits("model=R7000,firmware=2.1.7") == (("model", "R7000"), ("firmware", "2.1.7"))


# --- the fleet step: routing, and the value model's season from the settings ---------------------------


def test_every_fault_metric_yields_a_verdict_under_its_case_topic_each_pane() -> None:
    step = fleet_step(DetectionSettings())
    acc = fleet_fold(readings(100))
    state, verdicts = step(None, ("model=R7000,firmware=2.1.7", 7, acc))
    assert [v.topic for v in verdicts] == ["no_internet", "wifi_drops"]
    assert all((v.pane_start, v.pane_end) == (PANE_EPOCH + 7 * SLIDE, PANE_EPOCH + 8 * SLIDE) for v in verdicts)
    assert state.faults.group == (("model", "R7000"), ("firmware", "2.1.7"))
    assert list(state.values) == ["rssi"] and state.values["rssi"].season == "day"
    assert FleetStep(topics={}).topic("wan_down") == "telemetry.wan_down"
    twin = pickle.loads(pickle.dumps(state))
    assert isinstance(twin, FleetState) and twin.values["rssi"].season == "day"
    copied = copy.deepcopy(state)
    assert copied is not state and copied.values["rssi"] is not state.values["rssi"]
    assert copied.faults.group == state.faults.group and copied.values["rssi"].season == "day"


def test_the_value_season_is_a_setting_with_day_as_the_default(tmp_path: Path) -> None:
    assert DetectionSettings().telemetry_value_season == "day"
    assert FleetStep().value_season == "day"
    config = tmp_path / "config.yaml"
    config.write_text("detection:\n  telemetry_value_season: week\n")
    step = fleet_step(load_settings(config).detection)
    state, _ = step(None, ("region=TX-453", 1, fleet_fold(readings(50))))
    assert state.values["rssi"].season == "week"
    config.write_text("detection:\n  telemetry_value_season: null\n")
    assert fleet_step(load_settings(config).detection).value_season is None
    config.write_text("detection:\n  telemetry_value_season: month\n")
    with pytest.raises(ConfigError, match="telemetry_value_season"):
        load_settings(config)
    with pytest.raises(ValueError, match="season"):
        FleetStep(value_season="month")


def test_the_settings_offer_exactly_the_seasons_the_value_model_knows() -> None:
    hint = typing.get_type_hints(DetectionSettings)["telemetry_value_season"]
    offered = {arg for part in typing.get_args(hint) for arg in typing.get_args(part)}
    assert offered == set(_SEASONS)


# --- the topic model's sampling policy -----------------------------------------------------------------


def test_labelled_cases_are_all_learned_until_the_limit_then_every_nth() -> None:
    default = AssignTopics()
    assert all(default.learns(n) for n in range(1, 20_001))
    assert [n for n in range(20_001, 20_041) if default.learns(n)] == [20_010, 20_020, 20_030, 20_040]
    with pytest.raises(ValueError):
        AssignTopics(learn_every=0)


def test_the_step_counts_labelled_cases_and_passes_textless_ones_through() -> None:
    step = AssignTopics(learn_all_until=0, learn_every=2)
    state = None
    for n in range(5):
        case = Case(id=f"C-{n}", ts=T0, region="TX-453", topic="no_internet", text="modem lights blinking red")
        state, _ = step(state, (Origin("cases"), case))
    assert state is not None and state.labelled == 5
    assert state.model.known.n_learned == 2, "learned the 2nd and the 4th"
    bare = (Origin("cases"), Case(id="C-9", ts=T0, region="TX-453"))
    assert step(state, bare)[1] is bare


# --- late dead letters -----------------------------------------------------------------------------------


def test_a_late_case_is_a_dead_letter_with_its_own_bytes_and_origin_whatever_its_fields_hold() -> None:
    region, topic, case_id = 'TX "453" \\ north', 'no_"internet"\\', 'C-"1"\\'
    raw = orjson.dumps({"ts": T0.isoformat(), "topic": topic, "region": region, "id": case_id})
    rules = ShardRules(SLIDE, timedelta(minutes=10), live=False)
    shard = DetectionShard(lambda t: TopicDetector(t, slide=SLIDE), rules, partitions=["cases#2"])
    pane = pane_index(T0, SLIDE)
    on_time = CountedCase(T0, pane, topic, region, case_id, "CU-1", 40, raw)
    shard.offer(ShardBatch(PartitionInfo("cases", 2), T0 + timedelta(hours=1), False, [on_time]), T0)
    late = on_time._replace(case_id="C-2", position=41)
    [letter] = shard.offer(ShardBatch(PartitionInfo("cases", 2), T0 + timedelta(hours=1), False, [late]), T0).letters
    assert letter.step == "count_panes" and letter.origin == Origin("cases", 2, 41) and letter.raw == raw
    assert letter.reason.startswith(f"late: {T0.isoformat()} arrived after its 0:15:00 pane of topic")
    assert orjson.loads(letter.to_json())["raw"] == raw.decode()


