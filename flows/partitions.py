"""The first stateful step, one key per input partition: a batch of raw records in, routed work out.

It runs where the partition is read (`ReadingSource`), so nothing crosses workers before the shards;
a source that is not fixed-partitioned (the NWS poller) runs it as a keyed step instead.

Per batch, in the partition's order: decode (cases on the fast path, everything else and
every doubt through full validation), check times (the bounds, and in a replay the
partition's `StreamGate`), give cases without a topic one (the partition's own topic model,
which sees only cases that need it), and split the cases over the detection shards with the
partition's progress. Telemetry, customers and alerts go on as (origin, record) items;
anything refused is a dead letter. Nothing here waits for another partition, so no
partition's clock is set by another's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators import StatefulLogic

from forewarn.batches import PartitionInfo, RawBatch, as_batch
from forewarn.connectors.cap import is_alert_document, parse_alerts
from forewarn.detectors.fleet import device_groups
from forewarn.detectors.panes import UNCLASSIFIED
from forewarn.detectors.shard import CountedCase, ShardBatch
from forewarn.detectors.text_topics import EmergingTopics
from forewarn.detectors.time_bounds import StreamGate, TimeBounds
from forewarn.detectors.topic import pane_index
from forewarn.detectors.topic_assignment import AssignTopics, TopicState
from forewarn.flows.steps import failure_letter
from forewarn.parsing import fast_case, parse_record
from forewarn.records import Case, DeadLetter, Origin, Telemetry, channel_name
from forewarn.sources import SourceKinds

Routed = tuple[str, Any]
"""("shard", (shard key, ShardBatch)), ("record", (origin, record)), ("letter", DeadLetter), or ("internal",
(source, n)): n cases of the company's own channels read and not counted."""
Held = CountedCase | tuple[Origin, Any]
"""What a partition's gate may hold: a case, or a telemetry reading with its origin."""


@dataclass(frozen=True)
class PartitionRules:
    """What every partition step shares: the source kinds, the limits, the time bounds, the shards."""

    types: dict[str, SourceKinds]
    max_bytes: int
    bounds: TimeBounds
    live: bool
    slide: timedelta
    shards: int
    now: Callable[[], datetime]
    lateness: timedelta = timedelta(minutes=10)
    topics: AssignTopics = field(default_factory=AssignTopics)
    internal_channels: frozenset[str] = frozenset()
    """Cases from these channels are the company's own: read, not counted (`detection.internal_channels`)."""

    def shard_of(self, topic: str) -> str:
        return _shard_key(topic, self.shards)

    @property
    def shard_keys(self) -> list[str]:
        return [f"shard-{n}" for n in range(self.shards)]

    def __call__(self, resume: PartitionState | None) -> ReadPartition:
        return ReadPartition(self, resume or PartitionState(self.bounds.gate(), TopicState(EmergingTopics())))


@dataclass
class PartitionState:
    gate: StreamGate[Held]
    topics: TopicState
    newest: datetime | None = None
    seen_at: datetime | None = None
    """Live: the wall time `newest` was accepted at (the partition's clock runs on from there)."""
    ended: bool = False


class ReadPartition(StatefulLogic[RawBatch, Routed, PartitionState]):
    """One input partition's batches, decoded, time-checked and routed (see the module)."""

    def __init__(self, rules: PartitionRules, state: PartitionState):
        self.rules = rules
        self.state = state
        self._info = PartitionInfo("?")
        self._late_before: int | None = None
        self._uncounted = 0  # the company's own cases in the batch being read

    def on_item(self, value: RawBatch) -> tuple[list[Routed], bool]:
        out: list[Routed] = []
        cases: list[CountedCase] = []
        info = self._info = value.info
        kinds = self.rules.types.get(value.source)
        now = self.rules.now()
        self._late_before = self._boundary(now)
        self._uncounted = 0
        for record in value.records:
            if isinstance(record, DeadLetter):
                out.append(("letter", record))
                continue
            position, raw = record
            try:
                for item in self._decode(info, kinds, position, raw):
                    self._check_time(item, now, out, cases)
            except Exception as exc:  # one record must not stop the flow (and again at every restart)
                out.append(("letter", failure_letter("read_partitions", info.key, info.origin(position), exc)))
        if self._uncounted:
            out.append(("internal", (value.source, self._uncounted)))
        if value.end and not self.state.ended:
            self._end(out, cases, now)
        self.state.ended = value.end  # a partition that ended may go on (a file appended to, then resumed)
        if kinds is not None and "case" in kinds.accepts:
            # Only partitions that carry cases have a clock in the shards: a customers topic or the NWS poller
            # must not hold panes open.
            self._route(info, cases, out, value.end)
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> PartitionState:
        return self.state

    def _decode(self, info: PartitionInfo, kinds: SourceKinds | None, position: int | None, raw: bytes
                ) -> list[Held | DeadLetter]:
        """A case on the fast path, or whatever full parsing makes of the record."""
        if kinds is not None and "case" in kinds.accepts and len(raw) <= self.rules.max_bytes and not (
                kinds.sniffs_alerts and is_alert_document(raw)):
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = None
            if type(data) is dict and data.get("type", kinds.default) == "case":
                fields = fast_case(data)
                if fields is not None:
                    if self.rules.internal_channels and self._own_case(data.get("channel")):
                        return []
                    ts, topic, region, case_id, customer_id, text = fields
                    return [self._case(ts, topic, region, case_id, customer_id, text, position, raw)]
        parsed = parse(info.origin(position), raw, kinds, self.rules.max_bytes)
        return [self._from_record(item, position, raw) for item in parsed
                if not (isinstance(item, tuple) and isinstance(item[1], Case) and self._own_case(item[1].channel))]

    def _own_case(self, channel: object) -> bool:
        """Whether a valid case's channel is one of the company's own (compared as `Case` keeps it): then it is
        counted as read and left out."""
        if channel_name(channel) not in self.rules.internal_channels:
            return False
        self._uncounted += 1
        return True

    def _case(self, ts: datetime, topic: str | None, region: str, case_id: str | None, customer_id: str | None,
              text: str | None, position: int | None, raw: bytes) -> CountedCase:
        """A case as shards count it; one with text keeps it until its time is accepted (`_settle_topic`)."""
        return CountedCase(ts, pane_index(ts, self.rules.slide), topic or UNCLASSIFIED, region, case_id,
                           customer_id, position, raw, text or None)

    def _settle_topic(self, case: CountedCase) -> CountedCase:
        """Topic discovery for a case inside the time bounds: the model sees only cases that need it (no
        topic, or a topic while it learns); the others are only counted, so the sampling stays the same."""
        assert case.text is not None
        state, topics = self.state.topics, self.rules.topics
        labelled = case.topic != UNCLASSIFIED
        if labelled and not topics.learns(state.labelled + 1):
            state.labelled += 1
            return case._replace(text=None)
        topic = topics.topic_of(state, case.ts, case.case_id, case.text, case.topic if labelled else None)
        return case._replace(topic=topic or UNCLASSIFIED, text=None)

    def _from_record(self, item: Any, position: int | None, raw: bytes) -> Held | DeadLetter:
        if isinstance(item, DeadLetter):
            return item
        origin, record = item
        if isinstance(record, Case):
            return self._case(record.ts, record.topic, record.region, record.id, record.customer_id,
                              record.text, position, raw)
        return origin, record

    def _check_time(self, item: Held | DeadLetter, now: datetime, out: list[Routed],
                    cases: list[CountedCase]) -> None:
        if isinstance(item, DeadLetter):
            out.append(("letter", item))
            return
        if not isinstance(item, CountedCase) and not isinstance(item[1], Telemetry):
            out.append(("record", item))  # customers and alerts carry no event time to check
            return
        ts = item.ts if isinstance(item, CountedCase) else item[1].ts
        reason = self.rules.bounds.check(ts, now, self.rules.live)
        if reason is not None:
            out.append(("letter", self._letter(item, reason)))
            return
        if self.rules.live or self.state.gate.passes(ts):
            self._accept([item], out, cases, now)
            return
        accepted, refused = self.state.gate.offer(ts, item)
        out.extend(("letter", self._letter(held, why)) for held, why in refused)
        self._accept(accepted, out, cases, now)

    def _boundary(self, now: datetime) -> int | None:
        """The first pane this partition's clock has not closed: a case of an earlier pane is late in its
        own partition, whatever the others do (live, the clock runs on with the wall clock)."""
        state = self.state
        if state.newest is None:
            return None
        mark = state.newest + (now - state.seen_at) if self.rules.live and state.seen_at else state.newest
        return pane_index(mark - self.rules.lateness, self.rules.slide)

    def _accept(self, items: list[Held], out: list[Routed], cases: list[CountedCase], now: datetime) -> None:
        state = self.state
        for item in items:
            if isinstance(item, CountedCase) and self._late_before is not None and item.pane < self._late_before:
                # Late in its own partition: the shard dead-letters it (after counting it once, so a late copy
                # of a case is still called a copy).
                cases.append(item._replace(late=True, text=None))
                continue
            ts = item.ts if isinstance(item, CountedCase) else item[1].ts
            if state.newest is None or ts > state.newest:
                state.newest, state.seen_at = ts, now
                self._late_before = self._boundary(now)
            if isinstance(item, CountedCase):
                cases.append(self._settle_topic(item) if item.text is not None else item)
            else:
                out.append(("record", item))

    def _end(self, out: list[Routed], cases: list[CountedCase], now: datetime) -> None:
        accepted, refused = self.state.gate.end()
        out.extend(("letter", self._letter(held, why)) for held, why in refused)
        self._accept(accepted, out, cases, now)

    def _letter(self, item: Held, reason: str) -> DeadLetter:
        if isinstance(item, CountedCase):
            return DeadLetter("time_bounds", reason, self._info.origin(item.position), item.raw)
        origin, record = item
        return DeadLetter("time_bounds", reason, origin, record.model_dump_json().encode())

    def _route(self, info: PartitionInfo, cases: list[CountedCase], out: list[Routed], end: bool) -> None:
        """Every shard hears of the partition's progress; each gets its topics' cases."""
        per_shard: dict[str, list[CountedCase]] = {key: [] for key in self.rules.shard_keys}
        shard_of = self.rules.shard_of
        for case in cases:
            per_shard[shard_of(case.topic)].append(case)
        mark = self.state.newest
        out.extend(("shard", (key, ShardBatch(info, mark, end, batch))) for key, batch in per_shard.items())


@lru_cache(maxsize=4096)
def _shard_key(topic: str, shards: int) -> str:
    """The detection shard of a topic: the same on every worker and process (a CRC, not Python's salted hash),
    asked once per case, so remembered."""
    return f"shard-{zlib.crc32(topic.encode()) % shards}"


def parse(origin: Origin, raw: bytes, kinds: SourceKinds | None, max_bytes: int) -> list[Any]:
    """Dead letters, or (origin, record) pairs, by full validation.

    The source decides what a record may be, never the record: hazard alerts (CAP XML, NWS
    GeoJSON) are parsed by the CAP connector on an alert source (the alerts topic, the NWS
    poller), and on a mixed source (a replay file) when shaped like one; a FeatureCollection
    yields several. Telemetry that counts in no device group is refused here, not lost later.
    """
    if kinds is None:
        return [DeadLetter("parse", f"source {origin.source} is not configured to carry any record type",
                           origin, raw[:1024])]
    if kinds.alerts_only or (kinds.sniffs_alerts and is_alert_document(raw)):
        try:
            return [(origin, alert) for alert in parse_alerts(raw)]
        except ValueError as exc:
            return [DeadLetter("parse", f"hazard alert: {exc}", origin, raw[:max_bytes])]
    parsed = parse_record(raw, origin, kinds, max_bytes)
    if isinstance(parsed, DeadLetter):
        return [parsed]
    if isinstance(parsed, Telemetry) and not device_groups(parsed):
        return [DeadLetter("parse", "telemetry counts in no device group: it needs a region, or a model "
                           "and a firmware", origin, raw)]
    return [(origin, parsed)]


class ReadingPartition(StatefulSourcePartition[Routed, tuple[Any, PartitionState]]):
    """A source partition that runs its own partition step as it reads: decoded, time-checked and routed
    items leave the worker that owns the partition, with no exchange before the shards. Its resume state is
    the wrapped partition's and the step's, snapshotted together."""

    def __init__(self, inner: StatefulSourcePartition[Any, Any], step: ReadPartition):
        self._inner = inner
        self._step = step

    def next_batch(self) -> list[Routed]:
        out: list[Routed] = []
        for item in self._inner.next_batch():  # StopIteration (the end of a file or topic) passes through
            out.extend(self._step.on_item(as_batch(item))[0])
        return out

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> tuple[Any, PartitionState]:
        return self._inner.snapshot(), self._step.snapshot()

    def close(self) -> None:
        self._inner.close()


class ReadingSource(FixedPartitionedSource[Routed, tuple[Any, PartitionState]]):
    """Any fixed-partitioned source of `RawBatch`es (Kafka, JSONL files) whose partitions run the partition
    step where they are read (see `ReadingPartition`); partition names are the wrapped source's."""

    def __init__(self, inner: FixedPartitionedSource[Any, Any], rules: PartitionRules):
        self.inner = inner
        self.rules = rules

    def list_parts(self) -> list[str]:
        return list(self.inner.list_parts())

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[Any, PartitionState] | None
                   ) -> ReadingPartition:
        inner_state, step_state = resume_state if resume_state is not None else (None, None)
        return ReadingPartition(self.inner.build_part(step_id, for_part, inner_state), self.rules(step_state))
