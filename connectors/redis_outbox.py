"""The outbox in Redis: one stream per channel and shard, drained by `forewarn deliver` workers.

Layout, for the default prefix "fw" and shard s (an incident's shard is its id's CRC-32 modulo
`shards`, so every key of one incident shares the tag `{fw:out:s}` and a script touching them runs
on one node of a Redis Cluster):

- `{fw:out:s}:q:sms`, `{fw:out:s}:q:email`: streams of message ids, consumer group "deliver";
  an entry is acknowledged and deleted once its message is settled or rescheduled;
- `{fw:out:s}:later`: sorted set of message ids waiting for a time (quiet hours, a retry), by epoch ms;
- `{fw:out:s}:m:{INC|CU|KIND|CHANNEL}`: hash, the message and its state (`connectors.outbox_lua`);
- `{fw:out:s}:h:{INC|CU}`: list, the history of every message of an incident and customer;
- `{fw:out:s}:decided:{INC}:{kind}`, `...:accepted:{INC}:{kind}`: sets of customer ids;
- `{fw:out:s}:holdout:{INC}`: set of the customers deliberately not messaged (the effect's control group);
- `{fw:out:s}:funnel:{INC}`: hash, how many of the incident's messages reached each stage.

Deciding is one script per batch of an incident's messages: the decided mark (SADD) gates the
stream entry, so a replayed epoch queues nothing twice. Every key but the streams and the
schedule expires `keep` after the message was decided.
"""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis

from forewarn.connectors import outbox_lua
from forewarn.connectors.redis_keys import RedisClient
from forewarn.envelopes import (
    WAITING_STATES,
    Begun,
    Envelope,
    Fate,
    Lease,
    epoch_ms,
    falls_back,
    fate_of,
    from_epoch_ms,
    id_part,
    message_id,
    parse_message_id,
    warning_ids,
)
from forewarn.records import Channel, MessageKey, MessageKind, SendResult
from forewarn.settings import ConfigError

log = logging.getLogger(__name__)

GROUP = "deliver"
CHANNELS: tuple[Channel, ...] = ("sms", "email")
_CHUNK = 500
_RECLAIM_PAGES = 4


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisOutbox:
    """`Outbox` and `DeliveryQueue` over Redis Streams, sorted sets and Lua scripts.

    Parameters
    ----------
    client
        A Redis or Redis Cluster client.
    prefix
        The key prefix shared with the other stores.
    shards
        Streams per channel: incidents spread over them (and over a cluster's nodes).
    keep
        How long a decided message's state and history are kept.
    """

    def __init__(self, client: RedisClient, prefix: str = "fw", shards: int = 1,
                 keep: timedelta = timedelta(days=30)) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.client = client
        self.prefix = prefix
        self.shards = shards
        self.keep_ms = int(keep.total_seconds() * 1000)
        scripts = {name: client.register_script(getattr(outbox_lua, name))  # type: ignore[misc]
                   for name in ("ENQUEUE", "PROMOTE", "BEGIN", "SETTLE", "RETRY", "STATUS")}
        self._enqueue, self._promote, self._begin = scripts["ENQUEUE"], scripts["PROMOTE"], scripts["BEGIN"]
        self._settle, self._retry, self._status = scripts["SETTLE"], scripts["RETRY"], scripts["STATUS"]
        self._groups_ready = False
        self._next_shard: dict[str, int] = defaultdict(int)

    # -- keys ------------------------------------------------------------------------------------

    def shard_of(self, incident_id: str) -> int:
        return zlib.crc32(incident_id.encode()) % self.shards

    def _tag(self, shard: int) -> str:
        return "{" + f"{self.prefix}:out:{shard}" + "}"

    def queue_key(self, shard: int, channel: str) -> str:
        return f"{self._tag(shard)}:q:{channel}"

    def _later(self, shard: int) -> str:
        return f"{self._tag(shard)}:later"

    def _message(self, shard: int, mid: str) -> str:
        return f"{self._tag(shard)}:m:{mid}"

    def _history(self, shard: int, incident_id: str, customer_id: str) -> str:
        return f"{self._tag(shard)}:h:{id_part(incident_id)}|{id_part(customer_id)}"

    def _decided(self, shard: int, incident_id: str, kind: str) -> str:
        return f"{self._tag(shard)}:decided:{incident_id}:{kind}"

    def _accepted(self, shard: int, incident_id: str, kind: str) -> str:
        return f"{self._tag(shard)}:accepted:{incident_id}:{kind}"

    def _held_out(self, shard: int, incident_id: str) -> str:
        return f"{self._tag(shard)}:holdout:{incident_id}"

    def _covered(self, shard: int, incident_id: str) -> str:
        return f"{self._tag(shard)}:covered:{incident_id}"

    def _funnel(self, shard: int, incident_id: str) -> str:
        return f"{self._tag(shard)}:funnel:{incident_id}"

    def ensure_groups(self) -> None:
        """Create each stream's consumer group (and the stream) once; an existing group is kept."""
        if self._groups_ready:
            return
        self._check_shards()
        for shard in range(self.shards):
            for channel in CHANNELS:
                try:
                    self.client.xgroup_create(self.queue_key(shard, channel), GROUP, id="0", mkstream=True)
                except redis.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
        self._groups_ready = True

    def _check_shards(self) -> None:
        """The first outbox to start records its shard count; another count would put an incident's keys (its
        decided marks among them) under another tag, so a replay would decide its messages a second time."""
        key = f"{self.prefix}:outbox:shards"
        self.client.set(key, self.shards, nx=True)
        stored = int(self.client.get(key) or self.shards)  # type: ignore[arg-type]
        if stored != self.shards:
            raise ConfigError(
                f"delivery.shards is {self.shards} but the outbox in Redis (prefix {self.prefix!r}) was made with "
                f"{stored}: set delivery.shards: {stored}, or drain the outbox and delete {key} to change it")

    # -- deciding (Outbox) ---------------------------------------------------------------------------

    def enqueue(self, envelopes: Sequence[Envelope], now: datetime) -> list[str]:
        """Decide and queue; return the ids of the messages that were new (one per message key)."""
        self.ensure_groups()
        by_decision: dict[tuple[str, str], list[Envelope]] = defaultdict(list)
        for envelope in envelopes:
            by_decision[(envelope.key.incident_id, envelope.key.kind)].append(envelope)
        new: list[str] = []
        for (incident_id, kind), batch in by_decision.items():
            shard = self.shard_of(incident_id)
            for start in range(0, len(batch), _CHUNK):
                new.extend(self._enqueue_chunk(shard, incident_id, kind, batch[start:start + _CHUNK], epoch_ms(now)))
        return new

    def _enqueue_chunk(self, shard: int, incident_id: str, kind: str, chunk: Sequence[Envelope],
                       now_ms: int) -> list[str]:
        """One script for a chunk of one incident's messages of one kind (see `outbox_lua.ENQUEUE`)."""
        keys = [self._later(shard), self.queue_key(shard, "sms"), self.queue_key(shard, "email"),
                self._decided(shard, incident_id, kind), self._funnel(shard, incident_id)]
        args: list[Any] = [now_ms, self.keep_ms, len(chunk), kind]
        for envelope in chunk:
            key = envelope.key
            mkey = self._message(shard, envelope.id)
            warnings = [self._message(shard, message_id(MessageKey(incident_id, key.customer_id, "warning"), c))
                        for c in CHANNELS] if kind == "resolved" else [mkey, mkey]
            keys += [mkey, self._history(shard, incident_id, key.customer_id), *warnings]
            due = epoch_ms(envelope.not_before) if envelope.not_before and not envelope.urgent else 0
            args += [envelope.id, key.customer_id, envelope.to_json(), due, envelope.channel]
        fresh = self._enqueue(keys=keys, args=args)
        return [chunk[int(i)].id for i in fresh]

    def hold_out(self, incident_id: str, customer_ids: Sequence[str]) -> None:
        if not customer_ids:
            return
        key = self._held_out(self.shard_of(incident_id), incident_id)
        pipe = self.client.pipeline(transaction=False)  # one key: safe on a cluster
        pipe.sadd(key, *customer_ids)
        pipe.pexpire(key, self.keep_ms)
        pipe.execute()

    def held_out(self, incident_id: str) -> set[str]:
        return self._members(self._held_out(self.shard_of(incident_id), incident_id))

    def waiting(self, incident_id: str, customer_ids: Sequence[str]) -> set[str]:
        shard = self.shard_of(incident_id)
        pairs = [(c, mid) for c in customer_ids for mid in warning_ids(incident_id, c)]
        pipe = self.client.pipeline(transaction=False)  # one shard's keys: one node of a cluster
        for _, mid in pairs:
            pipe.hget(self._message(shard, mid), "state")
        states = pipe.execute() if pairs else []
        return {c for (c, _), state in zip(pairs, states, strict=True)
                if state is not None and _text(state) in WAITING_STATES}

    def warning_fate(self, incident_id: str, customer_id: str) -> Fate | None:
        return fate_of([s for mid in warning_ids(incident_id, customer_id) if (s := self.state(mid).get("state"))])

    def cover(self, incident_id: str, covered_by: Mapping[str, str]) -> None:
        if not covered_by:
            return
        key = self._covered(self.shard_of(incident_id), incident_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=dict(covered_by))
        pipe.pexpire(key, self.keep_ms)
        pipe.execute()

    def covered(self, incident_id: str) -> dict[str, str]:
        raw = self.client.hgetall(self._covered(self.shard_of(incident_id), incident_id))
        return {_text(k): _text(v) for k, v in raw.items()}  # type: ignore[union-attr]

    def decided(self, incident_id: str, kind: MessageKind) -> set[str]:
        return self._members(self._decided(self.shard_of(incident_id), incident_id, kind))

    def accepted(self, incident_id: str, kind: MessageKind) -> set[str]:
        return self._members(self._accepted(self.shard_of(incident_id), incident_id, kind))

    def _members(self, key: str) -> set[str]:
        return {_text(m) for m in self.client.smembers(key)}  # type: ignore[union-attr]

    def funnel(self, incident_id: str) -> dict[str, int]:
        raw = self.client.hgetall(self._funnel(self.shard_of(incident_id), incident_id))
        return {_text(k): int(v) for k, v in raw.items()}  # type: ignore[union-attr]

    def history(self, incident_id: str, customer_id: str) -> dict[str, list[dict[str, Any]]]:
        raw = self.client.lrange(self._history(self.shard_of(incident_id), incident_id, customer_id), 0, -1)
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in raw:  # type: ignore[union-attr]
            event = orjson.loads(item)
            event["at"] = from_epoch_ms(event["at"])
            events[event.pop("id")].append(event)
        return dict(events)

    def state(self, mid: str) -> dict[str, str]:
        """The raw state hash of one message (for `forewarn message` and tests)."""
        key, _ = parse_message_id(mid)
        raw = self.client.hgetall(self._message(self.shard_of(key.incident_id), mid))
        return {_text(k): _text(v) for k, v in raw.items() if _text(k) != "env"}  # type: ignore[union-attr]

    # -- delivering (DeliveryQueue) ------------------------------------------------------------------

    def promote_due(self, now: datetime, limit: int = 1_000) -> int:
        moved = 0
        for shard in range(self.shards):
            due = self.client.zrangebyscore(self._later(shard), "-inf", epoch_ms(now), start=0, num=limit)
            for raw in due:  # type: ignore[union-attr]
                mid = _text(raw)
                channel = mid.rsplit("|", 1)[-1]
                key, _ = parse_message_id(mid)
                moved += int(self._promote(keys=[self._later(shard), self._message(shard, mid),
                                                 self._history(shard, key.incident_id, key.customer_id),
                                                 self.queue_key(shard, channel)],
                                           args=[mid, epoch_ms(now)]))
        return moved

    def take(self, channel: Channel, consumer: str, count: int, block: float) -> list[Lease]:
        self.ensure_groups()
        leases: list[Lease] = []
        if count < 1:
            return leases
        # start at the next shard each time, so a busy shard does not starve the others
        first = self._next_shard[channel]
        self._next_shard[channel] = (first + 1) % self.shards
        order = [(first + i) % self.shards for i in range(self.shards)]
        for n, shard in enumerate(order):
            # only the last shard read may wait, and only when asked to: BLOCK 0 would wait for ever
            wait = max(1, int(block * 1000)) if n == len(order) - 1 and not leases and block > 0 else None
            try:
                answer = self.client.xreadgroup(GROUP, consumer, {self.queue_key(shard, channel): ">"},
                                                count=count - len(leases), block=wait)
            except redis.ResponseError as exc:
                self._lost_group(exc)
                continue
            leases += self._leases(channel, shard, answer)
            if len(leases) >= count:
                break
        return leases

    def _lost_group(self, exc: redis.ResponseError) -> None:
        """A stream or its group vanished (Redis restarted without persistence, a key was deleted): make
        them again, so the workers go on instead of failing on every read; anything else is raised."""
        if "NOGROUP" not in str(exc):
            raise exc
        log.warning("an outbox stream lost its consumer group (%s); creating it again", exc)
        self._groups_ready = False
        self.ensure_groups()

    def _leases(self, channel: Channel, shard: int, answer: Any) -> list[Lease]:
        leases = []
        for _stream, entries in answer or ():
            for entry_id, fields in entries:
                mid = fields.get(b"id") or fields.get("id")
                if mid is not None:
                    leases.append(Lease(channel, shard, _text(entry_id), _text(mid)))
        return leases

    def reclaim(self, channel: Channel, consumer: str, idle: float, count: int) -> list[Lease]:
        self.ensure_groups()
        leases: list[Lease] = []
        for shard in range(self.shards):
            cursor: Any = "0-0"
            # XAUTOCLAIM looks at no more than 10 × count pending entries a call: follow its cursor (a
            # few pages) so idle entries behind many live ones are found too
            for _page in range(_RECLAIM_PAGES):
                if len(leases) >= count:
                    return leases
                try:
                    answer = self.client.xautoclaim(self.queue_key(shard, channel), GROUP, consumer,
                                                    min_idle_time=int(idle * 1000), start_id=cursor,
                                                    count=count - len(leases))
                except redis.ResponseError as exc:
                    self._lost_group(exc)
                    break
                if not answer:
                    break
                for entry_id, fields in answer[1]:  # type: ignore[index]
                    mid = (fields or {}).get(b"id") or (fields or {}).get("id")
                    if mid is not None:
                        leases.append(Lease(channel, shard, _text(entry_id), _text(mid), deliveries=2))
                cursor = answer[0]  # type: ignore[index]
                if _text(cursor) == "0-0":
                    break
        return leases

    def touch(self, leases: Sequence[Lease], consumer: str) -> None:
        by_stream: dict[tuple[int, Channel], list[Any]] = defaultdict(list)
        for lease in leases:
            by_stream[(lease.shard, lease.channel)].append(lease.entry_id)
        for (shard, channel), entries in by_stream.items():
            # XCLAIM with no minimum idle time, to the holder itself: its idle time starts again at 0; an entry
            # settled meanwhile is no longer pending and is left alone
            self.client.xclaim(self.queue_key(shard, channel), GROUP, consumer, 0, entries, justid=True)

    def begin(self, lease: Lease, now: datetime) -> Begun:
        key, _ = parse_message_id(lease.message_id)
        s = lease.shard
        # an all-clear looks at its warnings; an acknowledgement or update at its all-clear
        other: MessageKind = "warning" if key.kind == "resolved" else "resolved"
        warnings = [self._message(s, message_id(MessageKey(key.incident_id, key.customer_id, other), c))
                    for c in CHANNELS]
        answer = self._begin(keys=[self._message(s, lease.message_id),
                                   self._history(s, key.incident_id, key.customer_id),
                                   self.queue_key(s, lease.channel), self._funnel(s, key.incident_id),
                                   *warnings, self._later(s)],
                             args=[epoch_ms(now), lease.message_id, lease.entry_id, GROUP, key.kind])
        verdict = _text(answer[0])
        if verdict not in ("send", "reconcile"):
            return Begun(verdict)  # type: ignore[arg-type]
        first = answer[3]
        return Begun(verdict, Envelope.from_json(answer[1]), int(answer[2]),  # type: ignore[arg-type]
                     from_epoch_ms(int(first)) if first is not None else None)

    def settle(self, lease: Lease, state: str, now: datetime, result: SendResult | None = None) -> None:
        key, _ = parse_message_id(lease.message_id)
        s = lease.shard
        fallback = message_id(key, "email")
        self._settle(keys=[self._message(s, lease.message_id), self._history(s, key.incident_id, key.customer_id),
                           self.queue_key(s, lease.channel), self._funnel(s, key.incident_id),
                           self._accepted(s, key.incident_id, key.kind), self._message(s, fallback),
                           self.queue_key(s, "email")],
                     args=[epoch_ms(now), lease.message_id, lease.entry_id, GROUP, state,
                           (result.provider_id if result else None) or "", result.reason if result else "",
                           key.customer_id, "1" if falls_back(state, result) else "0", fallback, self.keep_ms])

    def retry(self, lease: Lease, due: datetime, now: datetime, result: SendResult) -> None:
        self._reschedule(lease, due, now, result.reason, "1" if result.uncertain else "0", "retrying")

    def release(self, lease: Lease, due: datetime, now: datetime, reason: str, *, quiet: bool = False) -> None:
        self._reschedule(lease, due, now, reason, "0", "released", quiet)

    def _reschedule(self, lease: Lease, due: datetime, now: datetime, reason: str, uncertain: str,
                    what: str, quiet: bool = False) -> None:
        key, _ = parse_message_id(lease.message_id)
        s = lease.shard
        self._retry(keys=[self._message(s, lease.message_id), self._history(s, key.incident_id, key.customer_id),
                          self.queue_key(s, lease.channel), self._later(s)],
                    args=[epoch_ms(now), lease.message_id, lease.entry_id, GROUP, epoch_ms(due), reason, uncertain,
                          what, "1" if quiet else "0"])

    def record_status(self, message_id_: str, status: str, now: datetime, detail: str = "") -> bool:
        key, channel = parse_message_id(message_id_)
        s = self.shard_of(key.incident_id)
        fallback = message_id(key, "email")
        answer = self._status(keys=[self._message(s, message_id_), self._history(s, key.incident_id, key.customer_id),
                                    self._funnel(s, key.incident_id), self._message(s, fallback),
                                    self.queue_key(s, "email"), self._accepted(s, key.incident_id, key.kind)],
                              args=[epoch_ms(now), message_id_, status, detail, fallback, self.keep_ms,
                                    key.customer_id])
        return bool(answer) and channel in CHANNELS

    def backlog(self, channel: Channel) -> int:
        return sum(int(self.client.xlen(self.queue_key(s, channel))) for s in range(self.shards))  # type: ignore[arg-type,misc]

    def scheduled(self, before: datetime | None = None) -> int:
        """Messages waiting for a time (quiet hours or a retry); only those due by `before` when given."""
        top = epoch_ms(before) if before is not None else "+inf"
        return sum(int(self.client.zcount(self._later(s), "-inf", top)) for s in range(self.shards))  # type: ignore[arg-type,misc]
