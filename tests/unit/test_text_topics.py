"""Topics from text: the classifier on the demo scenario's cases, and emerging topics.

Figures measured with the defaults on `generate()` (seed 7, 7,356 cases, 35 distinct
texts) are printed by the tests (`pytest -s`) and noted beside each bound.
"""

from __future__ import annotations

import copy
import pickle
import random
from datetime import datetime, timedelta

import pytest

from forewarn.demo.scenario import Scenario, generate
from forewarn.detectors.text_topics import EmergingTopic, EmergingTopics, TopicClassifier, analyse

# A wave of a new issue, as customers word it: routers stuck rebooting after an update.
WAVE = [
    "router stuck in a reboot loop since the update last night",
    "my router keeps rebooting over and over after it updated",
    "router restarts every couple of minutes, power light goes orange then off",
    "reboot loop on the gateway, never finishes booting",
    "after the automatic update the router just reboots nonstop",
    "router won't stay on, it reboots by itself every 3 minutes",
    "box keeps restarting itself, lights cycle then it reboots again",
    "router is boot looping since this morning's firmware push",
    "constant reboots on my router, can't even get to the admin page",
    "router reboots in a loop, factory reset didn't help",
    "my gateway is stuck restarting, the power led keeps flashing",
    "router keeps power cycling by itself after the update",
    "router rebooting every few minutes, unplugging it does nothing",
    "the router boots, runs two minutes, then reboots again",
    "endless reboot loop after the overnight update",
    "router reset itself and now it's caught in a restart loop",
    "router goes into a reboot cycle as soon as I plug it in",
    "reboot loop: power light blinks orange, then the router restarts",
    "since the update my router restarts constantly",
    "router keeps rebooting, internet comes back for a minute then drops again",
    "my modem router combo is rebooting on its own nonstop",
    "router stuck booting, orange light, then restarts, over and over",
    "update seems to have broken the router, it reboots all the time",
    "router reboot loop, tried a different outlet, same thing",
    "gateway reboots every 5 minutes since last night",
    "the router keeps restarting, the lights never turn solid white",
    "router in a reboot loop after updating, please send a tech",
    "router cycles power on its own all night",
    "rebooting router loop won't stop even after a factory reset",
    "my router restarts by itself again and again since the update",
]

# Real-sounding support requests about nothing the scenario knows, each about something else.
UNRELATED = [
    "moving to a new apartment next month, how do I transfer service",
    "can I add a second line for my daughter",
    "technician never showed up for the appointment",
    "where do I return the old equipment",
    "does my plan include international calls",
    "I would like to cancel my subscription",
    "how do I change the name on the account holder",
    "please mail me a copy of my contract",
    "is fiber available in my neighborhood yet",
    "the store at the mall was closed during posted hours",
    "need a receipt for my tax records",
    "is there a senior or veteran discount",
    "paper statements stopped arriving by mail",
    "the installer left cables across the lawn",
    "want to upgrade to the premium sports package",
    "my elderly mother needs help setting up her tablet",
    "how long is the contract term for the new offer",
    "the chat agent disconnected before answering",
    "can I pause service while travelling abroad for the summer",
    "requesting a callback about the survey I received",
    "someone knocked claiming to be from your company, is that legit",
    "voicemail greeting is in the wrong language",
    "the remote control buttons are sticky",
    "please remove my number from marketing calls",
    "is the outdoor dish covered by the warranty",
    "parental controls guide for the kids' profiles",
    "who do I talk to about a damaged mailbox from the crew",
    "the app crashes when I open settings on my phone",
    "I want a paperless option for my invoices",
    "do you sell gift cards",
]

Item = tuple[datetime, str, str, str | None]  # (ts, case id, text, topic or None)


def _gibberish(rng: random.Random, words: int = 6) -> str:
    return " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(3, 9)))
                    for _ in range(words))  # fmt: skip


def _ts(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["ts"]))


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate()


@pytest.fixture(scope="module")
def trained(scenario: Scenario) -> TopicClassifier:
    clf = TopicClassifier()
    for e in scenario.events:
        clf.learn_one(e["text"], e["topic"])
    return clf


def _stream(scenario: Scenario, seed: int, wave: bool = True) -> list[Item]:
    """The scenario's cases, 30% of them without a topic, plus new-issue and unrelated texts.

    The wave comes on day 3 at 16:00 over two hours, after the firmware defect taught the
    classifier "router", "reboots" and "update" as words of `wifi_drops`. Unrelated texts
    come in bursts of their own: 60 support requests, 60 texts of words drawn at random
    from the scenario's and the unrelated texts, 60 of gibberish.
    """
    rng = random.Random(seed)
    items: list[Item] = [(_ts(e), e["id"], e["text"], e["topic"] if rng.random() < 0.7 else None)
                         for e in scenario.events]  # fmt: skip
    day = timedelta(days=1)
    if wave:
        start = scenario.start + 2 * day + timedelta(hours=16)
        for i, text in enumerate(rng.sample(WAVE, len(WAVE))):
            items.append((start + timedelta(seconds=rng.randrange(7200)), f"W-{i:02d}", text, None))
    vocabulary = sorted({w for text in UNRELATED + WAVE + [e["text"] for e in scenario.events[:500]]
                         for w in text.split()})  # fmt: skip
    for i, text in enumerate(UNRELATED * 2):
        items.append((scenario.start + day + timedelta(hours=12, seconds=rng.randrange(7200)), f"U-{i}", text, None))
    for i in range(60):
        t = scenario.start + day + timedelta(hours=16, seconds=rng.randrange(7200))
        items.append((t, f"R-{i}", " ".join(rng.sample(vocabulary, 8)), None))
        items.append((t + timedelta(hours=4), f"G-{i}", _gibberish(rng), None))
    items.sort(key=lambda item: item[0])
    return items


def _run(et: EmergingTopics, items: list[Item]) -> list[EmergingTopic]:
    return [r for item in items if (r := et.learn_one(*item)) is not None]


def _taught(scenario: Scenario, **params: object) -> EmergingTopics:
    """Emerging topics whose classifier learned every case of the scenario."""
    et = EmergingTopics(**params)  # type: ignore[arg-type]
    for t, case_id, text, topic in _stream(scenario, seed=0, wave=False):
        if topic is not None:
            et.learn_one(t, case_id, text, topic)
    return et


# --- the classifier ----------------------------------------------------------------------------


def test_analyse_normalizes_words() -> None:
    assert analyse("Modem lights BLINKING, blinked twice at 3pm") == {
        "modem": (1, "modem"), "light": (1, "lights"), "blink": (2, "blinked"), "twic": (1, "twice"),
        "3pm": (1, "3pm"),
    }  # fmt: skip
    assert analyse("the 2 of us, 1234 !!") == {}
    assert analyse("Résumé café") == analyse("resume cafe")


def test_classifier_accuracy_on_held_out_days(scenario: Scenario) -> None:
    """Learn days 1-2, predict day 3 with the topics hidden.

    Measured: 98.0% of 2,552 cases right, 100% of the answers right; the 2.0% left are
    abstentions on two firmware-defect texts first seen on day 3 (all background cases
    right). Those texts are exactly what `EmergingTopics` looks at.
    """
    cut = scenario.start + timedelta(days=2)
    clf = TopicClassifier()
    for e in scenario.events:
        if _ts(e) < cut:
            clf.learn_one(e["text"], e["topic"])
    test = [e for e in scenario.events if _ts(e) >= cut]
    predicted = [clf.predict_one(e["text"])[0] for e in test]
    right = sum(p == e["topic"] for p, e in zip(predicted, test, strict=True))
    answered = [(p, e["topic"]) for p, e in zip(predicted, test, strict=True) if p is not None]
    accuracy, precision = right / len(test), sum(p == t for p, t in answered) / len(answered)
    print(f"\nday-3 accuracy {accuracy:.3f} over {len(test)} cases, answered {len(answered) / len(test):.3f}, "
          f"precision {precision:.3f}")  # fmt: skip
    assert accuracy >= 0.97
    assert precision >= 0.99
    injected = set().union(*(t.case_ids for t in scenario.truths))
    background = [(p, e) for p, e in zip(predicted, test, strict=True) if e["id"] not in injected]
    assert all(p == e["topic"] for p, e in background)


def test_classifier_accuracy_on_held_out_cases(scenario: Scenario) -> None:
    """Every fifth case held out (measured: 100% of 1,472): the scenario repeats its phrasings."""
    clf = TopicClassifier()
    for i, e in enumerate(scenario.events):
        if i % 5:
            clf.learn_one(e["text"], e["topic"])
    test = scenario.events[::5]
    accuracy = sum(clf.predict_one(e["text"])[0] == e["topic"] for e in test) / len(test)
    print(f"\nheld-out accuracy {accuracy:.3f} over {len(test)} cases")
    assert accuracy >= 0.99


def test_classifier_abstains_on_gibberish_and_unrelated_text(trained: TopicClassifier) -> None:
    rng = random.Random(1)
    assert all(trained.predict_one(_gibberish(rng)) == (None, 0.0) for _ in range(50))
    assert [text for text in UNRELATED if trained.predict_one(text)[0] is not None] == []
    assert trained.predict_one("") == (None, 0.0)
    # Known words, but too few of them: the posterior alone would have said no_internet.
    topic, probability = trained.predict_one("modem melted during the thunderstorm, smoke everywhere")
    assert topic is None and probability > 0.6


def test_classifier_abstains_until_min_examples() -> None:
    clf = TopicClassifier(min_examples=3)
    clf.learn_one("charged twice on my bill", "billing")
    clf.learn_one("internet is down", "no_internet")
    assert clf.predict_one("charged twice on my bill")[0] is None
    assert not clf.ready
    clf.learn_one("late fee on my bill", "billing")
    assert clf.ready
    assert clf.predict_one("charged twice on my bill")[0] == "billing"
    assert clf.topics == ["billing", "no_internet"]


def test_classifier_state_is_small_and_bounded(scenario: Scenario, trained: TopicClassifier) -> None:
    """After the whole demo scenario: measured 2,993 bytes pickled, 110 terms.

    Flooded with 20,000 texts of random words the vocabulary stays under the cap
    (5,000 terms; measured ~102 KB pickled at the cap with 6 topics) and the pruning keeps
    the counts consistent.
    """
    size = len(pickle.dumps(trained))
    print(f"\nclassifier after the demo scenario: {size} bytes pickled, {trained.vocabulary_size} terms")
    assert size < 6_000
    flooded = TopicClassifier(max_vocabulary=500)
    rng = random.Random(2)
    topics = trained.topics
    for i, e in enumerate(scenario.events[:3000]):
        flooded.learn_one(e["text"], e["topic"])
        flooded.learn_one(_gibberish(rng, 5), topics[i % len(topics)])
        assert flooded.vocabulary_size <= 500
    nb = flooded._nb
    for topic in topics:
        assert nb.class_totals[topic] == sum(c.get(topic, 0) for c in nb.feature_counts.values())
    assert len(pickle.dumps(flooded)) < 15_000
    # The scenario's words are frequent, so they survive the pruning.
    assert flooded.predict_one("wifi keeps disconnecting every few minutes")[0] == "wifi_drops"


def test_classifier_clone_pickle_and_determinism(scenario: Scenario, trained: TopicClassifier) -> None:
    events = scenario.events[:2000]
    a, b = TopicClassifier(alpha=0.5), TopicClassifier(alpha=0.5)
    for e in events:
        a.learn_one(e["text"], e["topic"])
        b.learn_one(e["text"], e["topic"])
    assert pickle.dumps(a) == pickle.dumps(b)
    clone = a.clone()
    assert repr(clone) == repr(a) == "TopicClassifier(min_confidence=0.6, min_coverage=0.7, min_examples=50, " \
        "alpha=0.5, max_vocabulary=5000)"
    assert pickle.dumps(clone) == pickle.dumps(TopicClassifier(alpha=0.5))
    restored, copied = pickle.loads(pickle.dumps(a)), copy.deepcopy(a)
    for e in scenario.events[2000:2500]:
        for clf in (a, restored, copied):
            clf.learn_one(e["text"], e["topic"])
    texts = [e["text"] for e in scenario.events[-300:]] + WAVE
    assert [a.predict_one(x) for x in texts] == [restored.predict_one(x) for x in texts]
    assert [a.predict_one(x) for x in texts] == [copied.predict_one(x) for x in texts]
    # Predicting changes nothing.
    before = pickle.dumps(trained)
    [trained.predict_one(x) for x in texts]
    assert pickle.dumps(trained) == before


# --- emerging topics ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wave_run(scenario: Scenario) -> tuple[EmergingTopics, list[EmergingTopic], list[Item]]:
    items = _stream(scenario, seed=1)
    et = EmergingTopics()
    return et, _run(et, items), items


def test_a_wave_of_new_texts_is_reported_once(
    scenario: Scenario, wave_run: tuple[EmergingTopics, list[EmergingTopic], list[Item]]
) -> None:
    et, reports, _ = wave_run
    print(f"\nreports: {reports}")
    assert len(reports) == 1
    report = reports[0]
    assert report.name == "new:loop+reboot+router"
    assert report.terms == ("loop", "reboot", "router")
    assert report.size >= et.min_size
    assert report.case_ids and all(c.startswith("W-") for c in report.case_ids)
    start = scenario.start + timedelta(days=2, hours=16)
    assert start <= report.first_seen <= report.last_seen <= start + timedelta(hours=2)
    assert report.closest_topic in {"wifi_drops", "no_internet"}
    assert et.reported == [report.name]


def test_later_texts_are_assigned_to_the_emerging_topic(
    wave_run: tuple[EmergingTopics, list[EmergingTopic], list[Item]], trained: TopicClassifier
) -> None:
    et, reports, _ = wave_run
    name = reports[0].name
    unsure = [text for text in WAVE if trained.predict_one(text)[0] is None]
    assigned = [et.assign(text) for text in unsure]
    print(f"\n{len(unsure)} of {len(WAVE)} wave texts unsure; {assigned.count(name)} assigned to {name}")
    assert assigned.count(name) >= 0.7 * len(unsure)  # measured 17 of 21
    assert et.assign("my router is in a reboot loop") == name
    assert [text for text in UNRELATED if et.assign(text)] == []
    assert et.assign("charged twice on my last bill") is None
    assert et.assign("") is None


def test_unrelated_texts_do_not_form_a_topic(scenario: Scenario) -> None:
    for seed in (1, 2):
        et = EmergingTopics()
        assert _run(et, _stream(scenario, seed, wave=False)) == []
        assert et.reported == []


def test_a_slow_trickle_is_not_an_emerging_topic(scenario: Scenario) -> None:
    """The same texts, but one every 2 hours: never `min_size` of them within the horizon."""
    et = _taught(scenario, min_size=10, horizon=timedelta(hours=6))
    t0 = datetime.fromisoformat("2026-11-20T00:00:00+00:00")
    reports = [et.learn_one(t0 + timedelta(hours=2 * i), f"W-{i}", text) for i, text in enumerate(WAVE)]
    assert reports == [None] * len(WAVE)
    # The same texts within an hour are a topic.
    burst = [et.learn_one(t0 + timedelta(days=5, minutes=2 * i), f"B-{i}", text) for i, text in enumerate(WAVE)]
    assert [r.name for r in burst if r] == ["new:loop+reboot+router"]


def test_emerging_topics_are_deterministic_and_pickle(scenario: Scenario) -> None:
    items = _stream(scenario, seed=3)
    half = next(i for i, item in enumerate(items) if item[1].startswith("W-")) + 5  # mid-wave
    a, b = EmergingTopics(), EmergingTopics()
    reports_a, reports_b = _run(a, items[:half]), _run(b, items[:half])
    assert reports_a == reports_b
    assert pickle.dumps(a) == pickle.dumps(b)
    restored, copied = pickle.loads(pickle.dumps(a)), copy.deepcopy(a)
    rest = _run(a, items[half:])
    assert len(reports_a + rest) == 1
    assert _run(restored, items[half:]) == rest
    assert _run(copied, items[half:]) == rest
    assert pickle.dumps(restored) == pickle.dumps(a)


def test_emerging_topics_clone_and_inputs(scenario: Scenario) -> None:
    proto = TopicClassifier(min_examples=20)
    et = EmergingTopics(proto, min_size=8)
    items = _stream(scenario, seed=4)
    frozen = copy.deepcopy(items)
    reports = _run(et, items)
    assert items == frozen
    assert proto.n_learned == 0  # the prototype is cloned, never trained
    clone = et.clone()
    assert repr(clone) == repr(et)
    assert pickle.dumps(clone) == pickle.dumps(EmergingTopics(TopicClassifier(min_examples=20), min_size=8))
    assert clone.reported == [] and clone.known.n_learned == 0
    assert _run(clone, items) == reports
    snapshot = copy.deepcopy(reports)
    _run(et, _stream(scenario, seed=5))
    assert reports == snapshot


def test_emerging_topics_memory_is_bounded(scenario: Scenario) -> None:
    """Thousands of unrelated unsure texts within one horizon: clusters capped, state bounded."""
    et = _taught(scenario, max_clusters=50, max_terms=10)
    trained = et.known
    rng = random.Random(6)
    t0 = datetime.fromisoformat("2026-11-20T00:00:00+00:00")
    words = sorted({w for text in UNRELATED for w in text.split()})
    for i in range(3000):
        text = " ".join(rng.sample(words, 6)) if i % 2 else _gibberish(rng)
        assert et.learn_one(t0 + timedelta(seconds=5 * i), f"X-{i}", text) is None
    assert len(et._clusters) <= 50
    assert all(len(c.df) <= 20 for c in et._clusters.values())
    size = len(pickle.dumps(et)) - len(pickle.dumps(trained))
    print(f"\nemerging-topic state with 50 clusters: {size} bytes")
    assert size < 60_000
