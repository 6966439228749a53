"""One contract for every detector unit, in the manner of river's `check_estimator`.

Each unit is registered once in `UNITS` with a factory, a kind (how to drive it) and
a bound on its pickled state. Adding a detector is one line there; every check below
then runs against it.
"""

from __future__ import annotations

import copy
import inspect
import math
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from forewarn.demo.scenario_data import TEXTS
from forewarn.detectors.base import CountBaseline, Estimator, TailScorer
from forewarn.detectors.baseline import SeasonalBaseline
from forewarn.detectors.classic import EarsC2, PoissonCusum
from forewarn.detectors.clustering import BlockClustering
from forewarn.detectors.fleet import FaultShareDetector, FleetPane
from forewarn.detectors.rarity import RarityGate
from forewarn.detectors.scoring import NegativeBinomialScorer, PoissonScorer, SpikeRule
from forewarn.detectors.telemetry import ValueAnomaly
from forewarn.detectors.text_topics import EmergingTopics, TopicClassifier
from forewarn.detectors.topic import TopicDetector, pane_index
from forewarn.records import PaneCases

SLIDE = timedelta(minutes=15)
START = datetime(2026, 11, 16, tzinfo=UTC)
DAYS = 3
PANES = DAYS * 24 * 4
N_REGIONS = 50
REGIONS = [f"R-{i:03d}" for i in range(N_REGIONS)]


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: small means only, seeded, no numpy."""
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def _daily(t: datetime) -> float:
    return 0.3 + 1.4 * math.sin(math.pi * ((t.hour + t.minute / 60) % 24) / 24) ** 2


# --- the kinds of unit: a seeded input stream and how to feed it ---------------------------------


@dataclass(frozen=True)
class Kind:
    stream: Callable[[int], list[Any]]
    drive: Callable[[Any, list[Any]], list[Any]]


def _baseline_stream(seed: int) -> list[tuple[datetime, float]]:
    rng = random.Random(seed)
    out = []
    for p in range(PANES):
        t = START + p * SLIDE
        out.append((t, float(_poisson(rng, 3.0 * _daily(t)))))
    return out


def _drive_baseline(est: CountBaseline, items: list[tuple[datetime, float]]) -> list[Any]:
    outputs: list[Any] = []
    for t, count in items:
        outputs.append(est.predict_one(t))
        est.learn_one(t, count)
    return [*outputs, est.n_learned]


def _scorer_stream(seed: int) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(rng.randrange(0, 60), rng.choice([0.05, 0.3, 1.0, 4.0, 17.5, 40.0])) for _ in range(400)]


def _drive_scorer(est: TailScorer, items: list[tuple[int, float]]) -> list[Any]:
    return [est.p_value(observed, expected) for observed, expected in items]


def _topic_stream(seed: int) -> list[tuple[int, dict[str, PaneCases]]]:
    """3 days of 15-minute panes over 50 regions of one topic, with two surges, gaps and a straggler."""
    rng = random.Random(seed)
    weights = [1.0 / (1 + i) ** 0.7 for i in range(N_REGIONS)]
    scale = 2.0 / sum(weights)  # about 2 cases per pane nationally at the daily mean
    first = pane_index(START, SLIDE)
    out: list[tuple[int, dict[str, PaneCases]]] = []
    serial = 0
    for p in range(PANES):
        t = START + p * SLIDE
        if p % 97 == 50:  # an empty pane now and then: the detector must close the gap itself
            continue
        pane: dict[str, PaneCases] = {}
        for r, region in enumerate(REGIONS):
            lam = weights[r] * scale * _daily(t)
            if 120 <= p < 128 and r == 7:  # a regional surge on day 2
                lam += 6.0
            if 230 <= p < 238:  # a national surge on day 3, spread over every region
                lam += 0.5
            count = _poisson(rng, lam)
            if count:
                ids = tuple(f"C-{serial + i}" for i in range(count))
                reporters = tuple(f"CU-{rng.randrange(20_000):05d}" for _ in range(count))
                serial += count
                pane[region] = PaneCases(count, ids[:5], tuple(dict.fromkeys(reporters)))
        out.append((first + p, pane))
        if p == 200:  # a straggler for a pane already closed
            out.append((first + p - 2, {REGIONS[0]: PaneCases(1, ("C-late",), ("CU-late",))}))
    return out


def _drive_topic(est: TopicDetector, items: list[tuple[int, dict[str, PaneCases]]]) -> list[Any]:
    outputs: list[Any] = []
    for index, cases in items:
        outputs.extend(est.process(index, cases))
    return [*outputs, est.stale_panes]


def _series_stream(seed: int) -> list[tuple[datetime, float]]:
    """3 days of 15-minute counts with a daily cycle and a 4x surge on day 2."""
    rng = random.Random(seed)
    out = []
    for p in range(PANES):
        t = START + p * SLIDE
        lam = 3.0 * _daily(t) * (4.0 if 120 <= p < 128 else 1.0)
        out.append((t, float(_poisson(rng, lam))))
    return out


def _drive_series(est: Any, items: list[tuple[datetime, float]]) -> list[Any]:
    """Streaming detectors of one series: score each value before learning it."""
    outputs: list[Any] = []
    for t, x in items:
        outputs.append(est.score_one(t, x))
        est.learn_one(t, x)
    return outputs


def _gate_stream(seed: int) -> list[tuple[str, int, float, bool]]:
    """3 days of windows of three keys: one fits its model (fires 0.2% of the time), two are bursty (5%)."""
    rng = random.Random(seed)
    out = []
    for index in range(PANES):
        for key, rate in (("fit", 0.002), ("bursty", 0.05), ("wild", 0.05)):
            fires = rng.random() < rate
            out.append((key, index, 5.0 + rng.expovariate(0.5) if fires else rng.random() * 4.0, fires))
    return out


def _drive_gate(est: Any, items: list[tuple[str, int, float, bool]]) -> list[Any]:
    return [est.admit(key, index, strength, fires) for key, index, strength, fires in items]


def _batch_stream(seed: int) -> list[list[tuple[int, float]]]:
    """3 days of hourly window ends of 20 sparse regions: most report one at a time, three in batches of 3-12."""
    rng = random.Random(seed)
    out = []
    for _ in range(DAYS * 24):
        ends = [(_poisson(rng, 0.2), 0.2) for _ in range(17)]
        ends += [(rng.randint(3, 12) if rng.random() < 0.1 else 0, 0.2) for _ in range(3)]
        out.append(ends)
    return out


def _drive_batches(est: BlockClustering, items: list[list[tuple[int, float]]]) -> list[Any]:
    """The estimate after every window end: it changes at each block's close, from sums a lost state would lose."""
    outputs: list[Any] = []
    for ends in items:
        est.learn_window(ends)
        outputs.append(est.estimate)
    return outputs


_NEW_ISSUE = ("router stuck in a reboot loop", "router keeps rebooting after the update", "reboot loop on my gateway",
              "router restarts over and over, power light orange", "endless reboot loop since the update")

TextCase = tuple[datetime, str, str, str | None]  # (ts, case id, text, topic or None)


def _text_stream(seed: int) -> list[TextCase]:
    """6 hours of scenario case texts, 30% without their topic, and a wave of a new issue in hour 5."""
    rng = random.Random(seed)
    topics = sorted(TEXTS)
    out: list[TextCase] = []
    for i in range(600):
        t = START + timedelta(seconds=36 * i)
        if 400 <= i < 440 and i % 2:
            text = f"{rng.choice(_NEW_ISSUE)} {rng.choice(('', 'again', 'tonight', 'at all'))}".strip()
            out.append((t, f"C-{i}", text, None))
        else:
            topic = rng.choice(topics)
            out.append((t, f"C-{i}", rng.choice(TEXTS[topic]), topic if rng.random() < 0.7 else None))
    return out


def _drive_text_classifier(est: TopicClassifier, items: list[TextCase]) -> list[Any]:
    """Learn the cases that carry a topic, predict the others."""
    outputs: list[Any] = []
    for _, _, text, topic in items:
        if topic is None:
            outputs.append(est.predict_one(text))
        else:
            est.learn_one(text, topic)
    return [*outputs, est.n_learned, est.vocabulary_size]


def _drive_emerging(est: EmergingTopics, items: list[TextCase]) -> list[Any]:
    outputs: list[Any] = [est.learn_one(*item) for item in items]
    return [*outputs, *(est.assign(text) for _, _, text, topic in items if topic is None)]


def _fleet_stream(seed: int) -> list[tuple[int, FleetPane]]:
    """2 days of 15-minute panes of a 300-device group: rare faults, then a wave of wan_down."""
    rng = random.Random(seed)
    fleet = frozenset(f"D-{i}" for i in range(300))
    first = pane_index(START, SLIDE)
    out = []
    for k in range(2 * 96):
        wave = k >= 170
        faulty = {f"D-{i}" for i in range(300) if rng.random() < (0.2 if wave else 0.003)}
        out.append((first + k, FleetPane(fleet, {"wan_down": frozenset(faulty)})))
    return out


def _drive_fleet(est: FaultShareDetector, items: list[tuple[int, FleetPane]]) -> list[Any]:
    return [spike for index, pane in items for spike in est.process(index, pane)]


BASELINE = Kind(_baseline_stream, _drive_baseline)
FLEET = Kind(_fleet_stream, _drive_fleet)
SERIES = Kind(_series_stream, _drive_series)
SCORER = Kind(_scorer_stream, _drive_scorer)
TOPIC = Kind(_topic_stream, _drive_topic)
TEXT = Kind(_text_stream, _drive_text_classifier)
EMERGING = Kind(_text_stream, _drive_emerging)
GATE = Kind(_gate_stream, _drive_gate)
BATCHES = Kind(_batch_stream, _drive_batches)


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    name: str
    make: Callable[[], Estimator]
    kind: Kind
    max_pickled_bytes: int
    """A generous bound on the pickled state after the kind's full seeded stream (about 2x measured)."""


UNITS = [
    # SeasonalBaseline: two floats per slot (a bias-corrected EW mean) over the levels day (24 slots),
    # weekpart (48) and week (168). Measured after 3 days: ~3.6 KB (3 days touch 24 + 48 + 72 slots; a full
    # week ~6 KB); the day-only variant ~0.9 KB. Bounds ~2x measured (6.5 KB: at most all 240 slots).
    Unit("SeasonalBaseline", SeasonalBaseline, BASELINE, 6_500),
    Unit("SeasonalBaseline-daily", lambda: SeasonalBaseline(levels=("day",), slot_fading=0.3), BASELINE, 2_000),
    # Scorers hold their configuration; the negative binomial also its river Mean of the dispersion
    # (~50 and ~250 bytes measured).
    Unit("PoissonScorer", PoissonScorer, SCORER, 200),
    Unit("NegativeBinomialScorer", lambda: NegativeBinomialScorer(size=8.0), SCORER, 500),
    # TopicDetector after 3 days x 96 panes x 50 regions: measured ~5.7 KB = the national SeasonalBaseline
    # (~3.2 KB, 24 slots) + RegionShares (~1.6 KB, 50 x [decayed sum, pane]) + the ring of the last 4 panes
    # (a few hundred bytes here; it holds <= 5 example ids and the reporter ids per region, so it scales
    # with one window's cases, not with time). Bound ~2x measured; test_topic_detector_size_does_not_grow
    # below checks that nothing grows with time.
    Unit("TopicDetector", lambda: TopicDetector("no_internet", baseline=SeasonalBaseline(),
                                                scorer=NegativeBinomialScorer(20.0), rule=SpikeRule()),
         TOPIC, 12_000),
    Unit("TopicDetector-defaults", lambda: TopicDetector("wifi_drops", window=timedelta(minutes=30)),
         TOPIC, 12_000),
    # With window scales up to 4 h the ring holds 16 panes: ~7.7 KB measured.
    Unit("TopicDetector-scales", lambda: TopicDetector("wifi_drops", scales=(timedelta(minutes=15),
                                                                            timedelta(hours=4))), TOPIC, 16_000),
    # ...and with the rarity gate (a day of windows, 5%): it adds the firing windows of its keys, ~8.0 KB measured.
    Unit("TopicDetector-rarity", lambda: TopicDetector("wifi_drops", rarity=RarityGate(0.05, memory=96)), TOPIC,
         16_000),
    # RarityGate: (index, score) of each key's firing windows over its memory (2 days of windows here): 10-14 of
    # each bursty key, none of the one that fits its model (~0.5 KB measured).
    Unit("RarityGate", lambda: RarityGate(rarity=0.02, memory=192), GATE, 1_000),
    # ...counting runs (4 over 2 days of windows): one entry per run, not per window, so no more than that.
    Unit("RarityGate-runs", lambda: RarityGate.at_most(4, timedelta(days=2), timedelta(minutes=15)), GATE, 1_000),
    # BlockClustering: the ratios of its last blocks (3 floats here) and one block's sums (~0.3 KB measured).
    Unit("BlockClustering", lambda: BlockClustering(block=6, blocks=3), BATCHES, 700),
    # FaultShareDetector: the ring holds a window of faulty-device ids (a frozenset of the 300-device fleet is
    # shared by every pane), the usual share two floats per metric: ~4.8 KB measured.
    Unit("FaultShareDetector", lambda: FaultShareDetector((("model", "R7000"),), warmup=timedelta(hours=6)),
         FLEET, 10_000),
    # Series detectors (score_one before learn_one). EarsC2 keeps 9 floats (~0.2 KB measured); PoissonCusum
    # its baseline + guard values (96 + 4 here, ~1.1 KB); ValueAnomaly three river statistics (~0.7 KB).
    Unit("EarsC2", EarsC2, SERIES, 800),
    Unit("PoissonCusum", lambda: PoissonCusum(shift=2.0, baseline=96, guard=4, reset=5.0), SERIES, 2_500),
    Unit("ValueAnomaly", lambda: ValueAnomaly(fading=0.02, grace=20), SERIES, 1_200),
    # ...and with an hour-of-week profile: 3 days touch 72 of its 168 slots, ~33 bytes each (~3.1 KB measured;
    # a full week ~6.3 KB).
    Unit("ValueAnomaly-weekly", lambda: ValueAnomaly(season="week", grace=20), SERIES, 6_500),
    # Topics from text. TopicClassifier: river MultinomialNB counts per (term, topic), ~2.4 KB measured here
    # (~90 terms); EmergingTopics: that plus the clusters of unsure texts, ~4.1-4.8 KB measured. Both are
    # capped (vocabulary, clusters, terms per cluster): see tests/unit/test_text_topics.py. Bounds ~2x measured.
    Unit("TopicClassifier", TopicClassifier, TEXT, 5_000),
    Unit("EmergingTopics", lambda: EmergingTopics(TopicClassifier(min_examples=30), min_size=8), EMERGING, 10_000),
]

units = pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])


def _params(est: Estimator) -> dict[str, Any]:
    names = [n for n in inspect.signature(type(est).__init__).parameters if n != "self"]
    return {n: getattr(est, n) for n in names}


# Every parameter of every registered class, set to a valid value other than its default: a parameter
# stored transformed (x * 2, a copy, a converted type) or under another name cannot then hold it by chance.
OTHER_ARGUMENTS: dict[type[Estimator], dict[str, Any]] = {
    SeasonalBaseline: {"levels": ("day", "week"), "slot_fading": 0.2, "overall_fading": 0.02, "prior_weight": 3.0,
                       "prior_cases": {"week": 10.0}},
    PoissonScorer: {},
    NegativeBinomialScorer: {"size": 8.0, "learn_dispersion": False, "prior_weight": 25.0, "min_expected": 0.5,
                             "outlier_p": 0.01, "clustering_prior": 50.0, "clustering_means": (1.0, 4.0)},
    TopicDetector: {"topic": "wifi_drops", "window": timedelta(hours=2), "slide": timedelta(minutes=30),
                    "warmup": timedelta(hours=12), "baseline": SeasonalBaseline(levels=("day",)),
                    "scorer": PoissonScorer(), "regional_scorer": PoissonScorer(), "rule": SpikeRule(min_count=5),
                    "share_fading": 0.01,
                    "explained_share": 0.6, "min_expected": 0.1, "max_examples": 3,
                    "reporter_lookback": timedelta(hours=2), "adapt_after": None,
                    "region_weights": {"R-001": 2.0, "R-002": 1.0}, "score_regions": True,
                    "scales": (timedelta(hours=4),), "false_alarm_target": 2.0,
                    "rarity": RarityGate(0.05, memory=100)},
    RarityGate: {"rarity": 0.05, "memory": 500, "runs": True, "gap": 4},
    BlockClustering: {"block": 24, "blocks": 4, "max_mean": 1.0, "min_cases": 2.0, "size": 10.0},
    FaultShareDetector: {"group": (("model", "R7000"),), "window": timedelta(hours=2), "slide": timedelta(minutes=30),
                         "warmup": timedelta(hours=12), "fading": 0.02, "prior_share": 0.02, "prior_devices": 100.0,
                         "rule": SpikeRule(alpha=1e-5), "max_examples": 3},
    EarsC2: {"baseline": 5, "lag": 1, "min_sd": 0.5},
    PoissonCusum: {"shift": 3.0, "baseline": 96, "guard": 4, "reset": 4.0, "min_rate": 0.25},
    ValueAnomaly: {"fading": 0.02, "clip": 4.0, "grace": 10, "season": "week", "season_fading": 0.2, "min_slot": 5,
                   "fast": 0.2, "min_rel_sd": 0.02, "min_sd": 1e-3},
    TopicClassifier: {"min_confidence": 0.7, "min_coverage": 0.8, "min_examples": 30, "alpha": 0.2,
                      "max_vocabulary": 1_000},
    EmergingTopics: {"classifier": TopicClassifier(min_examples=30), "min_size": 8, "horizon": timedelta(hours=3),
                     "similarity": 0.4, "merge_similarity": 0.6, "name_terms": 2, "max_clusters": 100,
                     "max_terms": 20, "max_examples": 3, "keep_reported": timedelta(days=3)},
}


def _parameters(cls: type[Estimator]) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


def _same(got: Any, expected: Any) -> bool:
    """The very object passed, or an equal value of the same type (a copy of an estimator is not equal)."""
    return got is expected or (type(got) is type(expected) and got == expected)


def param_mismatches(cls: type[Estimator], args: dict[str, Any]) -> list[str]:
    """Constructor parameters of `cls(**args)` not kept as an attribute of their own name holding exactly
    the argument passed, or the signature's default when none was passed."""
    est = cls(**args)
    problems = []
    for name, param in _parameters(cls).items():
        expected = args.get(name, param.default)
        if not hasattr(est, name):
            problems.append(f"{name}: not kept as an attribute")
        elif not _same(getattr(est, name), expected):
            problems.append(f"{name}: holds {getattr(est, name)!r}, not {expected!r}")
    return problems


def _learned(unit: Unit, seed: int = 1) -> Estimator:
    est = unit.make()
    unit.kind.drive(est, unit.kind.stream(seed))
    return est


# --- the contract -------------------------------------------------------------------------------


@units
def test_params_are_kept_as_attributes(unit: Unit) -> None:
    est = unit.make()
    assert isinstance(est, Estimator)
    cls = type(est)
    # Every constructor argument is readable under its own name, holding exactly what was passed (or the
    # default): clone() and repr() rely on it. Checked with arguments other than every default...
    other = OTHER_ARGUMENTS[cls]
    parameters = _parameters(cls)
    assert set(other) == set(parameters), "give every parameter a non-default value in OTHER_ARGUMENTS"
    assert not [name for name, value in other.items() if _same(value, parameters[name].default)]
    assert param_mismatches(cls, other) == []
    # ...with the defaults (only the required arguments passed)...
    required = {name: other[name] for name, p in parameters.items() if p.default is inspect.Parameter.empty}
    assert param_mismatches(cls, required) == []
    # ...and with the arguments of the registered unit.
    assert param_mismatches(cls, est._get_params()) == []
    assert repr(est).startswith(type(est).__name__ + "(")


class _Doubles(Estimator):
    def __init__(self, x: float = 1.0) -> None:
        self.x = x * 2


class _Renames(Estimator):
    def __init__(self, x: float = 1.0) -> None:
        self._x = x


class _Converts(Estimator):
    def __init__(self, levels: tuple[str, ...] = ("day",), rule: SpikeRule | None = None) -> None:
        self.levels = list(levels)
        self.rule = rule or SpikeRule()


class _Copies(Estimator):
    def __init__(self, baseline: SeasonalBaseline | None = None) -> None:
        self.baseline = baseline.clone() if baseline else None


def test_param_check_reports_arguments_stored_transformed_or_renamed() -> None:
    assert param_mismatches(_Doubles, {"x": 3.0}) == ["x: holds 6.0, not 3.0"]
    assert param_mismatches(_Doubles, {}) == ["x: holds 2.0, not 1.0"]
    assert param_mismatches(_Renames, {"x": 3.0}) == ["x: not kept as an attribute"]
    assert param_mismatches(_Converts, {"levels": ("week",)}) == [
        "levels: holds ['week'], not ('week',)", "rule: holds SpikeRule(alpha=0.0001, min_count=8, min_ratio=1.5),"
        " not None"]
    assert param_mismatches(_Converts, {"levels": ["week"], "rule": SpikeRule(alpha=0.01)}) == []
    baseline = SeasonalBaseline()
    [problem] = param_mismatches(_Copies, {"baseline": baseline})
    assert problem.startswith("baseline: holds SeasonalBaseline(")
    assert param_mismatches(_Copies, {}) == []
    # The former check, the attributes against `Estimator._get_params`, passed all of them.
    for est in (_Doubles(3.0), _Converts(("week",)), _Copies(baseline)):
        assert _params(est) == est._get_params()


@units
def test_clone_has_same_params_and_no_learned_state(unit: Unit) -> None:
    learned = _learned(unit)
    clone = learned.clone()
    assert type(clone) is type(learned)
    assert clone is not learned
    assert repr(clone) == repr(learned)
    for name, value in _params(learned).items():
        assert _params(clone)[name] == value, name
    # No learned state: the clone is byte for byte a fresh instance...
    assert pickle.dumps(clone) == pickle.dumps(unit.make())
    # ...and behaves like one.
    stream = unit.kind.stream(2)
    assert unit.kind.drive(clone, stream) == unit.kind.drive(unit.make(), stream)
    # Learning in the clone leaves the original alone.
    before = pickle.dumps(learned)
    unit.kind.drive(learned.clone(), unit.kind.stream(3))
    assert pickle.dumps(learned) == before


@units
def test_pickle_and_deepcopy_round_trip(unit: Unit) -> None:
    stream = unit.kind.stream(4)
    half = len(stream) // 2
    original = unit.make()
    unit.kind.drive(original, stream[:half])
    restored = pickle.loads(pickle.dumps(original))
    copied = copy.deepcopy(original)
    rest = stream[half:]
    expected = unit.kind.drive(original, copy.deepcopy(rest))
    assert unit.kind.drive(restored, copy.deepcopy(rest)) == expected
    assert unit.kind.drive(copied, copy.deepcopy(rest)) == expected


@units
def test_deterministic(unit: Unit) -> None:
    a, b = unit.make(), unit.make()
    out_a = unit.kind.drive(a, unit.kind.stream(5))
    out_b = unit.kind.drive(b, unit.kind.stream(5))
    assert out_a == out_b
    assert pickle.dumps(a) == pickle.dumps(b)
    # The outputs depend on the input: another seed gives other outputs (the check is not vacuous).
    assert unit.kind.drive(unit.make(), unit.kind.stream(6)) != out_a


@units
def test_learning_does_not_mutate_inputs(unit: Unit) -> None:
    stream = unit.kind.stream(7)
    frozen = copy.deepcopy(stream)
    est = unit.make()
    outputs = unit.kind.drive(est, stream)
    assert stream == frozen
    # Nor does the state keep live references that later learning would change in the outputs.
    snapshot = copy.deepcopy(outputs)
    unit.kind.drive(est, unit.kind.stream(8))
    assert outputs == snapshot


@units
def test_state_stays_small(unit: Unit) -> None:
    est = _learned(unit, seed=9)
    size = len(pickle.dumps(est))
    assert size < unit.max_pickled_bytes, f"{unit.name}: {size} bytes pickled"


def test_topic_stream_exercises_spikes_gaps_and_stragglers() -> None:
    """The contract above is only meaningful if the topic stream makes the detector fire and skip."""
    det = TopicDetector("no_internet")
    outputs = _drive_topic(det, _topic_stream(1))
    verdicts, stale = outputs[:-1], outputs[-1]
    spikes = [s for v in verdicts for s in v.spikes]
    assert stale == 1
    assert len(verdicts) == PANES  # gaps closed as empty panes, the straggler dropped
    assert {s.region for s in spikes} >= {REGIONS[7]}
    assert any(s.region == "*" for s in spikes)


def test_topic_detector_size_does_not_grow_with_time() -> None:
    # Seasonal slots fill up over the first week (hour of week); after that nothing may grow.
    det = TopicDetector("no_internet")
    stream = _topic_stream(10)
    span = stream[-1][0] + 1 - stream[0][0]
    for repeat in range(3):  # 9 days
        _drive_topic(det, [(index + repeat * span, cases) for index, cases in stream])
    after_nine_days = len(pickle.dumps(det))
    for repeat in range(3, 6):  # 18 days
        _drive_topic(det, [(index + repeat * span, cases) for index, cases in stream])
    after_eighteen_days = len(pickle.dumps(det))
    assert after_eighteen_days < 1.1 * after_nine_days
