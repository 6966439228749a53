"""Giving cases without a topic one, from their text, as cases stream past.

One `EmergingTopics` model serves all cases (it learns the vocabulary of every topic):
cases that carry a topic teach its classifier, cases without one get the classifier's
confident guess, else the emerging topic their text belongs to (named from its terms,
e.g. "new:loop+reboot+router"), else stay unclassified. An emerging topic is then
counted and detected like any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from forewarn.detectors.text_topics import EmergingTopics
from forewarn.records import Case, Origin

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TopicState:
    """The topic model and how many labelled cases it has seen."""

    model: EmergingTopics
    labelled: int = 0


@dataclass(frozen=True, slots=True)
class AssignTopics:
    """A `stateful_map` mapper over (origin, case): teaches the model, or gives the case a topic.

    The sampling policy: every labelled case is learned until `learn_all_until` of them
    were seen, then every `learn_every`-th keeps the model current at that fraction of
    the cost.

    >>> from datetime import UTC, datetime
    >>> step = AssignTopics(learn_all_until=2, learn_every=3)
    >>> [n for n in range(1, 10) if step.learns(n)]
    [1, 2, 3, 6, 9]
    >>> case = Case(id="C-1", ts=datetime(2026, 11, 20, tzinfo=UTC), region="TX-453", topic="billing",
    ...             text="charged twice on my bill")
    >>> state, (_, same) = step(None, (Origin("cases"), case))
    >>> (state.labelled, same is case)
    (1, True)
    """

    learn_all_until: int = 20_000
    learn_every: int = 10

    def __post_init__(self) -> None:
        if self.learn_all_until < 0 or self.learn_every < 1:
            raise ValueError("need learn_all_until >= 0 and learn_every >= 1")

    def learns(self, labelled: int) -> bool:
        """Whether the `labelled`-th labelled case (counting from 1) is learned."""
        return labelled <= self.learn_all_until or labelled % self.learn_every == 0

    def __call__(self, state: TopicState | None, item: tuple[Origin, Case]) -> tuple[TopicState, tuple[Origin, Case]]:
        state = state or TopicState(EmergingTopics())
        origin, case = item
        topic = self.topic_of(state, case.ts, case.id, case.text, case.topic)
        return state, item if topic == case.topic else (origin, case.model_copy(update={"topic": topic}))

    def topic_of(self, state: TopicState, ts: datetime, case_id: str | None, text: str | None,
                 topic: str | None) -> str | None:
        """The topic a case counts under: its own (teaching the model, while it learns), else the model's
        guess from its text, else None. A case without text never reaches the model."""
        if not text:
            return topic
        topics = state.model
        if topic:
            state.labelled += 1
            if self.learns(state.labelled):
                topics.learn_one(ts, case_id or "", text, topic)
            return topic
        report = topics.learn_one(ts, case_id or "", text)
        if report is not None:
            log.warning("emerging topic %s: %d similar cases since %s, none with a known topic",
                        report.name, report.size, report.first_seen.isoformat())
        return topics.known.predict_one(text)[0] or topics.assign(text)
