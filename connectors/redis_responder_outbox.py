"""Responder notifications (PagerDuty, Slack) waiting to go, in Redis or a Redis Cluster.

The rules are `memory_responder_outbox`'s (its module doc): decided once by id, taken with a lease, settled or
retried, and only the first unsettled event of a line (one incident and one target) ever handed out.

Layout, for the default prefix "fw": every key carries the one hash tag `{fw:resp}`, so all of them live in
one slot and each Lua script below runs on one node of a cluster (responder traffic is a few events per
incident: one slot carries it easily):

- `{fw:resp}:e:{event id}`: hash, one event: `env` (the `ResponderEvent` JSON), `state` (queued, leased,
  retrying, sent, failed, expired), `attempts` (hand-outs), `detail` (the last reason), `line` (its line's
  key), `order` (its place there, `line_order`) and `ready` (its own due time: decided, or retried to,
  epoch ms);
- `{fw:resp}:line:{incident id}|{target}`: sorted set, the line: its unsettled events, all scored 0, so
  Redis sorts them by member, `line_order(event)` (decided_at, stage rank, seq; fixed width) then the id;
- `{fw:resp}:due`: sorted set, event id -> epoch ms when it may be taken, holding only the first member of
  each line (at its `ready`; once leased, at its lease's end, so a crashed worker's lease simply makes it
  due again); settling or retrying the first puts the next first one in, an earlier event decided late
  takes the place of the one it goes before, and a take drops (rather than hands out) an id that is not
  first in its line any more;
- `{fw:resp}:open`: set of the unsettled event ids, for `pending`.

`enqueue` is one script per batch (an event whose hash exists is not queued again); `take`, `settle` and
`retry` are one script each. The scripts read the event hashes and lines they find through `due` and a
line: those keys are not all in KEYS, but every key shares the tag of `due` (the slot the script runs in).
Each event's hash expires `keep` after it was decided; a line, `due` and `open` `keep` after their latest
decision. A take drops a due id whose hash has expired (and lets its line go on), and a line drops a member
whose event has, so nothing stale blocks a line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from forewarn.connectors.memory_responder_outbox import ORDER_LEN, check_final, lease_ms, line_order
from forewarn.connectors.redis_keys import RedisClient
from forewarn.decisions import ResponderEvent
from forewarn.envelopes import epoch_ms

_CHUNK = 200

_COMMON = """
local FINAL = {sent=true, failed=true, expired=true}
-- KEYS[1] is always `due`, KEYS[2] `open`; `base` is the tagged prefix of every key.
-- The first unsettled event of a line (its id), dropping members whose event has expired.
local function head_of(base, lkey)
  while true do
    local first = redis.call('ZRANGE', lkey, 0, 0)[1]
    if not first then return nil end
    local hid = string.sub(first, ID_START)
    local state = redis.call('HGET', base .. 'e:' .. hid, 'state')
    if state and not FINAL[state] then return hid end
    redis.call('ZREM', lkey, first)
    redis.call('SREM', KEYS[2], hid)
  end
end
-- Make the line's first event due at its own time (a leased one keeps its lease's end).
local function wake(base, lkey)
  local head = head_of(base, lkey)
  if not head then return end
  local f = redis.call('HMGET', base .. 'e:' .. head, 'state', 'ready')
  if f[1] ~= 'leased' then redis.call('ZADD', KEYS[1], tonumber(f[2]), head) end
end
""".replace("ID_START", str(ORDER_LEN + 1))

ENQUEUE = _COMMON + """
-- KEYS: due, open, then per event: its hash, its line. ARGV: now, keep_ms, base, then per event: id, env, order
local now, keep, base = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local new = {}
for i = 1, (#KEYS - 2) / 2 do
  local ekey, lkey, a = KEYS[2 * i + 1], KEYS[2 * i + 2], 3 * i + 1
  local id, env, order = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  if redis.call('EXISTS', ekey) == 0 then
    local before = head_of(base, lkey)
    redis.call('HSET', ekey, 'env', env, 'state', 'queued', 'attempts', 0, 'detail', '', 'line', lkey,
               'order', order, 'ready', now)
    redis.call('PEXPIRE', ekey, keep)
    redis.call('ZADD', lkey, 0, order .. id)
    redis.call('PEXPIRE', lkey, keep)
    redis.call('SADD', KEYS[2], id)
    if before and head_of(base, lkey) == id
       and redis.call('HGET', base .. 'e:' .. before, 'state') ~= 'leased' then
      redis.call('ZREM', KEYS[1], before)  -- an earlier event decided late goes first
    end
    wake(base, lkey)
    new[#new + 1] = id
  end
end
if #new > 0 then
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[2], keep)
end
return new
"""

TAKE = _COMMON + """
-- KEYS: due, open. ARGV: now, lease_ms (at least 1), count, base
local now, lease, count, base = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local taken = {}
-- every id looked at leaves the range (leased until later, or dropped), so each round sees new ones
while #taken < count do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, count - #taken)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local ekey = base .. 'e:' .. id
    local f = redis.call('HMGET', ekey, 'state', 'line')
    if not f[1] or FINAL[f[1]] then
      -- its state expired: drop it and let its line go on (the line's key is in the id: INC|stage|seq|target)
      redis.call('ZREM', KEYS[1], id)
      redis.call('SREM', KEYS[2], id)
      local incident, target = string.match(id, '^(.*)|[^|]*|[^|]*|([^|]*)$')
      if incident then wake(base, base .. 'line:' .. incident .. '|' .. target) end
    elseif head_of(base, f[2]) ~= id then
      -- leased before an earlier event of its line was decided: it waits for that one now
      redis.call('ZREM', KEYS[1], id)
      redis.call('HSET', ekey, 'state', 'retrying', 'ready', now)
    else
      redis.call('HSET', ekey, 'state', 'leased')
      redis.call('HINCRBY', ekey, 'attempts', 1)
      redis.call('ZADD', KEYS[1], now + lease, id)
      taken[#taken + 1] = redis.call('HGET', ekey, 'env')
    end
  end
end
return taken
"""

SETTLE = _COMMON + """
-- KEYS: due, open, the event's hash. ARGV: id, state, detail, base
local f = redis.call('HMGET', KEYS[3], 'state', 'line', 'order')
if not f[1] or FINAL[f[1]] then return 0 end
redis.call('HSET', KEYS[3], 'state', ARGV[2], 'detail', ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', f[2], f[3] .. ARGV[1])
wake(ARGV[4], f[2])
return 1
"""

RETRY = _COMMON + """
-- KEYS: due, open, the event's hash. ARGV: id, due_ms, detail, base
local f = redis.call('HMGET', KEYS[3], 'state', 'line')
if not f[1] or FINAL[f[1]] then return 0 end
redis.call('HSET', KEYS[3], 'state', 'retrying', 'detail', ARGV[3], 'ready', ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
wake(ARGV[4], f[2])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisResponderOutbox:
    """`ResponderOutbox` in Redis or a Redis Cluster (layout in the module doc).

    Parameters
    ----------
    client
        A client of one Redis or of a Redis Cluster.
    prefix
        The first part of every key (`redis.prefix`); it may not hold `{` or `}` (they would move the tag).
    keep
        How long an event's state stays after it was decided.
    """

    def __init__(self, client: RedisClient, prefix: str = "fw", keep: timedelta = timedelta(days=30)) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"a key prefix may not hold braces: {prefix!r}")
        self.client = client
        self.prefix = prefix
        self.keep_ms = int(keep.total_seconds() * 1000)
        self.base = "{" + f"{prefix}:resp" + "}:"
        self.due_key = f"{self.base}due"
        self.open_key = f"{self.base}open"
        self._enqueue = client.register_script(ENQUEUE)  # type: ignore[misc]
        self._take = client.register_script(TAKE)  # type: ignore[misc]
        self._settle = client.register_script(SETTLE)  # type: ignore[misc]
        self._retry = client.register_script(RETRY)  # type: ignore[misc]

    def event_key(self, event_id: str) -> str:
        return f"{self.base}e:{event_id}"

    def line_key(self, incident_id: str, target: str) -> str:
        return f"{self.base}line:{incident_id}|{target}"

    def enqueue(self, events: Sequence[ResponderEvent], now: datetime) -> list[str]:
        """Queue each event whose id was never seen (or whose state has expired), due at `now` once it is
        first in its line; the ids of those, in the order given."""
        orders = [line_order(event) for event in events]  # refuse a bad event before queuing any
        new: list[str] = []
        for start in range(0, len(events), _CHUNK):
            keys: list[str] = [self.due_key, self.open_key]
            args: list[Any] = [epoch_ms(now), self.keep_ms, self.base]
            for event, order in zip(events[start:start + _CHUNK], orders[start:start + _CHUNK], strict=True):
                keys += [self.event_key(event.id), self.line_key(event.incident_id, event.target)]
                args += [event.id, event.to_json(), order]
            new += [_text(i) for i in self._enqueue(keys=keys, args=args)]
        return new

    def take(self, count: int, now: datetime, lease: float) -> list[ResponderEvent]:
        """Up to `count` events due at `now`, oldest due first, each the first unsettled event of its line;
        each is leased (due again at `now` + `lease` seconds) and counts one attempt."""
        if count <= 0:
            return []
        raws = self._take(keys=[self.due_key, self.open_key],
                          args=[epoch_ms(now), lease_ms(lease), count, self.base])
        return [ResponderEvent.from_json(raw) for raw in raws]

    def settle(self, event_id: str, state: str, now: datetime, detail: str = "") -> None:
        """Record a final state (sent, failed, expired); the next event of its line becomes due at its own
        time. An unknown or already settled event is left as it is."""
        check_final(state)
        self._settle(keys=[self.due_key, self.open_key, self.event_key(event_id)],
                     args=[event_id, state, detail, self.base])

    def retry(self, event_id: str, due: datetime, now: datetime, detail: str = "") -> None:
        """Hand the event out again at `due` (its lease ends); an unknown or settled event is left as it is."""
        self._retry(keys=[self.due_key, self.open_key, self.event_key(event_id)],
                    args=[event_id, epoch_ms(due), detail, self.base])

    def state(self, event_id: str) -> dict[str, str]:
        values = self.client.hmget(self.event_key(event_id), ["state", "attempts", "detail"])
        state, attempts, detail = values  # type: ignore[misc]
        if state is None:
            return {}
        return {"state": _text(state), "attempts": _text(attempts), "detail": _text(detail or b"")}

    def pending(self) -> int:
        """Events not yet settled (one whose state expired unsettled counts until a take or its line drops it)."""
        return int(self.client.scard(self.open_key))  # type: ignore[arg-type]
