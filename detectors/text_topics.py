"""Topics from free text: a topic for cases that carry none, and topics nobody knows yet.

`TopicClassifier` learns online from cases that carry a `topic` (river's
`feature_extraction.BagOfWords` in front of `naive_bayes.MultinomialNB`, on lightly
stemmed words without stop words) and predicts one for cases without. It answers only
when the naive Bayes posterior of the best topic is high *and* most of the text's words
are known to it: naive Bayes posteriors are near 0 or 1 even for a text it knows one
word of, and words it has never seen are the best sign that a text is about something
new.

`EmergingTopics` clusters the texts the classifier is unsure about, online, and reports
a cluster once when it collects `min_size` texts within `horizon`. The clustering is a
single-pass leader clustering: a text joins the most similar cluster (cosine between the
text's set of terms and the cluster's term document frequencies) if the similarity
reaches `similarity`, else it starts a new cluster; clusters that grow alike merge.
Everything is deterministic (no random draws; ties go to the older cluster), and
cluster ids stay stable, so a topic is reported once. river's `cluster.TextClust` was the
first candidate and was set aside: its `predict_one` fades and deletes micro-clusters
(a prediction changes the state), micro-cluster ids vanish when clusters are merged and
a merge does not add up the observation counts (so "how many texts" is lost), it wants
numeric times, and it keeps no member ids or arrival times, which a report needs.

Both keep their memory bounded: the classifier's vocabulary is capped, each cluster
keeps its most frequent terms only, and the number of clusters is capped.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from river import feature_extraction, naive_bayes

from forewarn.detectors.base import Estimator
from forewarn.records import EMERGING_PREFIX

STOP_WORDS = frozenset({
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "cannot", "could",
    "did", "do", "does", "doing", "done", "down", "during", "each", "even", "ever", "every", "few", "for",
    "from", "further", "get", "gets", "got", "had", "has", "have", "having", "he", "her", "here", "hers", "him",
    "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "let", "me", "more", "most",
    "much", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our",
    "ours", "out", "over", "own", "please", "same", "she", "should", "since", "so", "some", "still", "such",
    "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those",
    "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "whom", "why", "will", "with", "would", "yet", "you", "your", "yours", "hi",
    "hello", "thanks", "thank", "help", "need", "want", "today", "yesterday", "us", "im", "ive", "ll", "ve",
    "re", "don", "didn", "doesn", "isn", "wasn", "aren", "won", "haven", "hasn", "couldn", "wouldn", "shouldn",
})
"""Function words and support-case pleasantries: they say nothing about a topic."""

_BAG = feature_extraction.BagOfWords(strip_accents=True, lowercase=True, stop_words=set(STOP_WORDS))
"""Stateless (BagOfWords learns nothing), so one module-level instance serves every estimator."""

_VOWELS = frozenset("aeiouy")


def stem(token: str) -> str:
    """A light suffix stripper, so "reboots", "rebooting" and "rebooted" count as one term.

    >>> [stem(w) for w in ["reboots", "rebooting", "updated", "update", "dropping", "access", "wifi"]]
    ['reboot', 'reboot', 'updat', 'updat', 'drop', 'access', 'wifi']
    """
    for suffix in ("ing", "ed", "es", "s", "e"):
        base = token[: -len(suffix)]
        if token.endswith(suffix) and len(base) >= 3 and _VOWELS & set(base) and not base.endswith("s"):
            if suffix in ("ing", "ed") and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]
            return base
    return token


def analyse(text: str) -> dict[str, tuple[int, str]]:
    """The terms of `text`: stem -> (occurrences, shortest surface form), numbers left out.

    >>> analyse("Router keeps REBOOTING, rebooted 3 times since the 2 updates")  # doctest: +NORMALIZE_WHITESPACE
    {'router': (1, 'router'), 'keep': (1, 'keeps'), 'reboot': (2, 'rebooted'), 'tim': (1, 'times'),
     'updat': (1, 'updates')}
    """
    terms: dict[str, tuple[int, str]] = {}
    for token, count in _BAG.transform_one(text).items():
        if token.isdigit():
            continue
        key = stem(token)
        n, surface = terms.get(key, (0, token))
        terms[key] = (n + count, min(surface, token, key=lambda s: (len(s), s)))
    return terms


class TopicClassifier(Estimator):
    """Learns topics from labelled case texts; predicts one, or abstains, for the others.

    `predict_one` returns the best topic and its posterior probability given the words
    the classifier knows (unknown words are left out). It abstains (topic `None`) when
    that probability is below `min_confidence`, when less than `min_coverage` of the
    text's words are known, and before `min_examples` texts were learned.

    Memory: when the vocabulary passes `max_vocabulary` terms, the rarest are dropped
    down to 80% of it with their counts, so the model is then exactly the one trained on
    texts without those terms. Pickled, that is ~3 KB after the demo scenario (110 terms,
    6 topics) and ~100 KB at the default cap filled with one-off words.

    >>> clf = TopicClassifier(min_examples=4)
    >>> for text, topic in [("modem lights blinking red, no internet", "no_internet"),
    ...                     ("internet down since this morning", "no_internet"),
    ...                     ("charged twice on my bill", "billing"),
    ...                     ("late fee on my bill", "billing")]:
    ...     clf.learn_one(text, topic)
    >>> clf.predict_one("no internet, modem blinking")[0]
    'no_internet'

    The posterior is high, but half the words are unknown: it abstains.

    >>> proba, coverage = clf.predict_proba_one("bill went up")
    >>> round(proba["billing"], 2), coverage, clf.predict_one("bill went up")[0]
    (0.96, 0.5, None)
    >>> clf.predict_one("my parrot learned a new song")
    (None, 0.0)
    """

    def __init__(
        self,
        min_confidence: float = 0.6,
        min_coverage: float = 0.7,
        min_examples: int = 50,
        alpha: float = 0.1,
        max_vocabulary: int = 5_000,
    ):
        self.min_confidence = min_confidence
        self.min_coverage = min_coverage
        self.min_examples = min_examples
        self.alpha = alpha
        self.max_vocabulary = max_vocabulary
        self._nb = naive_bayes.MultinomialNB(alpha=alpha)
        self.n_learned = 0

    @property
    def ready(self) -> bool:
        """True once `min_examples` texts were learned: before, every prediction abstains."""
        return self.n_learned >= self.min_examples

    @property
    def vocabulary_size(self) -> int:
        return len(self._nb.feature_counts)

    @property
    def topics(self) -> list[str]:
        return sorted(self._nb.class_counts)

    def learn_one(self, text: str, topic: str) -> None:
        """Learn that `text` is about `topic`."""
        x = {term: n for term, (n, _) in analyse(text).items()}
        if not x:
            return
        self._nb.learn_one(x, topic)
        self.n_learned += 1
        if len(self._nb.feature_counts) > self.max_vocabulary:
            self._prune(int(0.8 * self.max_vocabulary))

    def _prune(self, keep: int) -> None:
        counts = self._nb.feature_counts
        totals = sorted(((-sum(c.values()), term) for term, c in counts.items()))
        for _, term in totals[keep:]:
            for topic, n in counts.pop(term).items():
                self._nb.class_totals[topic] -= n

    def predict_proba_one(self, text: str) -> tuple[dict[str, float], float]:
        """The posterior of each topic given the known words, and the share of words known."""
        terms = analyse(text)
        known = {term: n for term, (n, _) in terms.items() if term in self._nb.feature_counts}
        total = sum(n for n, _ in terms.values())
        if not known:
            return {}, 0.0
        return self._nb.predict_proba_one(known), sum(known.values()) / total

    def predict_one(self, text: str) -> tuple[str | None, float]:
        """The most likely topic and its probability.

        The topic is `None` when its probability is below `min_confidence`, when less
        than `min_coverage` of the text's words are known, or before `min_examples`.
        """
        proba, coverage = self.predict_proba_one(text)
        if not proba:
            return None, 0.0
        topic = min(proba, key=lambda k: (-proba[k], k))
        if proba[topic] < self.min_confidence or coverage < self.min_coverage or not self.ready:
            return None, proba[topic]
        return topic, proba[topic]


@dataclass(frozen=True)
class EmergingTopic:
    """A cluster of similar texts that matches no known topic, reported once."""

    name: str
    """Stable: "new:" and the cluster's top terms, e.g. "new:router+reboot+loop"."""
    terms: tuple[str, ...]
    size: int
    """Texts in the cluster when it was reported."""
    case_ids: tuple[str, ...]
    """The first few member cases."""
    first_seen: datetime
    last_seen: datetime
    closest_topic: str | None
    """The known topic the classifier leans to for the cluster's terms, if any."""


def _shorter(a: str, b: str) -> str:
    return min(a, b, key=lambda s: (len(s), s))


@dataclass
class _Cluster:
    df: dict[str, int]  # term -> how many member texts hold it
    surface: dict[str, str]  # term -> its shortest surface form, for names
    first: datetime
    times: deque[datetime]  # arrival times of the last `min_size` members
    n: int = 0
    examples: list[tuple[datetime, str]] = field(default_factory=list)  # the earliest members
    name: str | None = None
    norm2: int = 0  # sum of df squared, kept up to date

    @property
    def last(self) -> datetime:
        return max(self.times)

    @property
    def span(self) -> timedelta:
        """The time the last `min_size` members took to arrive."""
        return max(self.times) - min(self.times)

    def add(self, t: datetime, case_id: str, terms: dict[str, tuple[int, str]], max_examples: int) -> None:
        self.n += 1
        self.times.append(t)
        self.first = min(self.first, t)
        self.examples = sorted([*self.examples, (t, case_id)])[:max_examples]
        for term, (_, surface) in terms.items():
            df = self.df.get(term, 0)
            self.df[term] = df + 1
            self.norm2 += 2 * df + 1
            self.surface[term] = _shorter(self.surface.get(term, surface), surface)

    def absorb(self, other: _Cluster, max_examples: int) -> None:
        self.n += other.n
        times = sorted([*self.times, *other.times])
        self.times = deque(times[-(self.times.maxlen or len(times)) :], self.times.maxlen)
        self.first = min(self.first, other.first)
        self.examples = sorted([*self.examples, *other.examples])[:max_examples]
        for term, df in other.df.items():
            self.df[term] = self.df.get(term, 0) + df
            self.surface[term] = _shorter(self.surface.get(term, other.surface[term]), other.surface[term])
        self.norm2 = sum(v * v for v in self.df.values())

    def prune(self, max_terms: int) -> None:
        """Keep the `max_terms` most frequent terms once twice as many were collected."""
        if len(self.df) > 2 * max_terms:
            keep = sorted(self.df, key=lambda k: (-self.df[k], k))[:max_terms]
            self.df = {k: self.df[k] for k in keep}
            self.surface = {k: self.surface[k] for k in keep}
            self.norm2 = sum(v * v for v in self.df.values())

    def similarity(self, terms: set[str]) -> float:
        """Cosine between the text's set of terms and the cluster's term frequencies."""
        dot = sum(self.df.get(t, 0) for t in terms)
        return dot / math.sqrt(len(terms) * self.norm2) if dot else 0.0

    def overlap(self, other: _Cluster) -> float:
        """Cosine between the term frequencies of two clusters."""
        dot = sum(v * other.df.get(t, 0) for t, v in self.df.items())
        return dot / math.sqrt(self.norm2 * other.norm2) if dot else 0.0


class EmergingTopics(Estimator):
    """Finds clusters of unfamiliar texts that grow fast: topics nobody has named yet.

    Texts that carry a `topic` teach the inner classifier (a clone of `classifier`).
    The others go to clustering only while the classifier is ready and unsure about
    them: a text joins the cluster it is most similar to (at least `similarity`) or
    starts one, and a cluster that has become as similar as `merge_similarity` to
    another absorbs it, so a wave whose first texts were worded apart ends up as one.
    A cluster that collects `min_size` texts within `horizon` is reported once, named
    after its `name_terms` most frequent terms; `assign` then maps later texts to it.

    Memory: at most `max_clusters` clusters (unreported ones are evicted first, oldest
    activity first), each with at most `2 * max_terms` terms, `min_size` arrival times
    and `max_examples` case ids. Unreported clusters idle for a `horizon` and reported
    ones idle for `keep_reported` are dropped.

    >>> from datetime import UTC, datetime, timedelta
    >>> et = EmergingTopics(TopicClassifier(min_examples=2), min_size=3)
    >>> t = datetime(2026, 11, 16, 9, tzinfo=UTC)
    >>> et.learn_one(t, "C-1", "modem lights blinking red, no internet", topic="no_internet")
    >>> et.learn_one(t, "C-2", "charged twice on my bill", topic="billing")
    >>> texts = ["router stuck in a reboot loop", "reboot loop on my router since update",
    ...          "router reboot loop again", "my router keeps rebooting in a loop"]
    >>> reports = [et.learn_one(t + timedelta(minutes=i), f"C-{3 + i}", x) for i, x in enumerate(texts)]
    >>> reports[2].name, reports[2].size, reports[2].case_ids, reports[3]
    ('new:loop+reboot+router', 3, ('C-3', 'C-4', 'C-5'), None)
    >>> et.assign("reboot loop, router dead"), et.assign("charged twice on my bill")
    ('new:loop+reboot+router', None)
    """

    def __init__(
        self,
        classifier: TopicClassifier | None = None,
        min_size: int = 10,
        horizon: timedelta = timedelta(hours=6),
        similarity: float = 0.35,
        merge_similarity: float = 0.5,
        name_terms: int = 3,
        max_clusters: int = 200,
        max_terms: int = 30,
        max_examples: int = 5,
        keep_reported: timedelta = timedelta(days=7),
    ):
        self.classifier = classifier
        self.min_size = min_size
        self.horizon = horizon
        self.similarity = similarity
        self.merge_similarity = merge_similarity
        self.name_terms = name_terms
        self.max_clusters = max_clusters
        self.max_terms = max_terms
        self.max_examples = max_examples
        self.keep_reported = keep_reported
        self._classifier = classifier.clone() if classifier else TopicClassifier()
        self._clusters: dict[int, _Cluster] = {}
        self._next_id = 0

    @property
    def known(self) -> TopicClassifier:
        """The inner classifier, trained on the texts that carried a topic."""
        return self._classifier

    @property
    def reported(self) -> list[str]:
        """Names of the emerging topics reported and still kept."""
        return [c.name for c in self._clusters.values() if c.name]

    def learn_one(self, t: datetime, case_id: str, text: str, topic: str | None = None) -> EmergingTopic | None:
        """Learn one case; a report the first time an emerging topic's cluster crosses `min_size`."""
        if topic is not None:
            self._classifier.learn_one(text, topic)
            return None
        if not self._classifier.ready or self._classifier.predict_one(text)[0] is not None:
            return None
        terms = analyse(text)
        if not terms:
            return None
        self._expire(t)
        sims = {cid: cluster.similarity(set(terms)) for cid, cluster in self._clusters.items()}
        cid = self._best(sims, self.similarity)
        if cid is None:
            cid = self._new_cluster(t)
        self._clusters[cid].add(t, case_id, terms, self.max_examples)
        # Only clusters sharing a term with this text came closer to the one it joined.
        cid = self._merge_neighbour(cid, [c for c, sim in sims.items() if sim > 0 and c != cid and c in self._clusters])
        cluster = self._clusters[cid]
        cluster.prune(self.max_terms)
        if cluster.name is None and len(cluster.times) == self.min_size and cluster.span <= self.horizon:
            return self._report(cid, cluster)
        return None

    def assign(self, text: str) -> str | None:
        """The name of the reported emerging topic `text` belongs to, if any."""
        terms = set(analyse(text))
        if not terms:
            return None
        cid = self._best({c: cl.similarity(terms) for c, cl in self._clusters.items() if cl.name}, self.similarity)
        return None if cid is None else self._clusters[cid].name

    @staticmethod
    def _best(sims: dict[int, float], threshold: float) -> int | None:
        """The id with the highest similarity at or above `threshold` (the oldest on ties)."""
        best, best_sim = None, threshold
        for cid, sim in sims.items():
            if sim > best_sim or (best is None and sim == best_sim):
                best, best_sim = cid, sim
        return best

    def _merge_neighbour(self, cid: int, candidates: list[int]) -> int:
        """Merge cluster `cid` with the most similar candidate, if similar enough; the id kept."""
        cluster = self._clusters[cid]
        sims = {c: cluster.overlap(self._clusters[c]) for c in candidates
                if not (cluster.name and self._clusters[c].name)}  # fmt: skip
        best = self._best(sims, self.merge_similarity)
        if best is None:
            return cid
        # The reported one, else the bigger one, else the older one stays.
        keep, drop = sorted((cid, best), key=lambda c: (self._clusters[c].name is None, -self._clusters[c].n, c))
        self._clusters[keep].absorb(self._clusters.pop(drop), self.max_examples)
        return keep

    def _new_cluster(self, t: datetime) -> int:
        if len(self._clusters) >= self.max_clusters:
            victim = min(self._clusters, key=lambda c: (self._clusters[c].name is not None, self._clusters[c].last, c))
            del self._clusters[victim]
        cid, self._next_id = self._next_id, self._next_id + 1
        self._clusters[cid] = _Cluster({}, {}, t, deque(maxlen=self.min_size))
        return cid

    def _expire(self, t: datetime) -> None:
        for cid in [c for c, cl in self._clusters.items()
                    if t - cl.last > (self.keep_reported if cl.name else self.horizon)]:  # fmt: skip
            del self._clusters[cid]

    def _report(self, cid: int, cluster: _Cluster) -> EmergingTopic | None:
        top = sorted(cluster.df, key=lambda k: (-cluster.df[k], cluster.surface[k]))[: self.name_terms]
        words = tuple(sorted(cluster.surface[k] for k in top))
        name = EMERGING_PREFIX + "+".join(words)
        same = next((c for c in self._clusters.values() if c.name == name), None)
        if same is not None:  # a fragment of a topic already reported: it joins it, no second report
            same.absorb(self._clusters.pop(cid), self.max_examples)
            return None
        cluster.name = name
        proba, _ = self._classifier.predict_proba_one(" ".join(words))
        closest = min(proba, key=lambda k: (-proba[k], k)) if proba else None
        examples = tuple(case_id for _, case_id in cluster.examples)
        return EmergingTopic(name, words, cluster.n, examples, cluster.first, cluster.last, closest)
