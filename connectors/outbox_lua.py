"""The outbox's Lua scripts: each moves one message between states atomically (see `redis_outbox`).

Every script touches the keys of one outbox shard only (one hash tag), so each runs on one node of a
Redis Cluster. A message's hash holds `env` (the envelope JSON), `state`, `channel`, `attempts`,
`first_ms` (its first attempt), `uncertain` ("1" when the provider may hold it), `provider_id` and
`reason`; its pair's history list gets one JSON event per change.
"""

from __future__ import annotations

_FINAL = """
local FINAL = {sent=true, delivered=true, undelivered=true, failed=true, expired=true, opted_out=true,
               superseded=true, skipped=true, withheld=true, covered=true}
local ACCEPTED = {sent=true, delivered=true, undelivered=true}
local function event(hkey, id, state, now, detail)
  redis.call('RPUSH', hkey, cjson.encode({id=id, state=state, at=now, detail=detail}))
end
"""

_FALLBACK = """
-- An SMS that could not reach the customer goes to their email, once (the HSETNX guard), when it has one.
local function fall_back(mkey, hkey, funnel, fkey, equeue, fid, now, keep, why)
  if redis.call('HGET', mkey, 'channel') ~= 'sms' then return end
  local env = cjson.decode(redis.call('HGET', mkey, 'env'))
  if env['fallback'] == cjson.null or env['fallback'] == nil then return end
  if redis.call('HSETNX', mkey, 'fallback', fid) == 0 or redis.call('EXISTS', fkey) == 1 then return end
  redis.call('HSET', fkey, 'env', cjson.encode(env['fallback']), 'state', 'enqueued', 'channel', 'email',
             'attempts', 0, 'id', fid)
  redis.call('XADD', equeue, '*', 'id', fid)
  redis.call('HINCRBY', funnel, 'fallback', 1)
  event(hkey, fid, 'fallback', now, why)
  redis.call('PEXPIRE', fkey, keep)
end
"""

ENQUEUE = _FINAL + """
-- One incident and kind per call. KEYS: later, q:sms, q:email, decided set, funnel, then per envelope:
-- message, history, its warning by sms, its warning by email (all-clears only; else the message twice).
-- ARGV: now, keep_ms, n, kind, then per envelope: id, customer, env, not_before_ms, channel
local now, keep, n, kind = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local queues = {sms=KEYS[2], email=KEYS[3]}
local new, counts = {}, {enqueued=0, deferred=0, superseded=0}
local function night_warnings(k)
  -- an all-clear decided while its warning waits for the customer's morning: fixed before it could go
  local deferred = {}
  for _, wkey in ipairs({KEYS[k + 2], KEYS[k + 3]}) do
    local w = redis.call('HGET', wkey, 'state')
    if w and w ~= 'deferred' and not (w == 'superseded') then return {} end
    if w == 'deferred' then deferred[#deferred + 1] = wkey end
  end
  return deferred
end
for i = 0, n - 1 do
  local k, a = 6 + i * 4, 5 + i * 5
  local mkey, hkey = KEYS[k], KEYS[k + 1]
  local id, customer, env, due, channel = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4]
  if redis.call('SADD', KEYS[4], customer) == 1 then
    local state = 'enqueued'
    if due > now then state = 'deferred' end
    local night = {}
    if kind == 'resolved' then night = night_warnings(k) end
    if #night > 0 then
      state = 'superseded'
      for _, wkey in ipairs(night) do
        local wid = redis.call('HGET', wkey, 'id')
        redis.call('HSET', wkey, 'state', 'superseded', 'reason', 'resolved before it was sent')
        redis.call('ZREM', KEYS[1], wid)
        redis.call('RPUSH', hkey, cjson.encode({id=wid, state='superseded', at=now,
                                                detail='resolved before it was sent'}))
        counts.superseded = counts.superseded + 1
      end
    end
    redis.call('HSET', mkey, 'env', env, 'state', state, 'channel', channel, 'attempts', 0, 'id', id)
    redis.call('RPUSH', hkey, cjson.encode({id=id, state='decided', at=now, detail=''}),
               cjson.encode({id=id, state=state, at=now, detail=''}))
    counts[state] = counts[state] + 1
    if state == 'deferred' then
      redis.call('ZADD', KEYS[1], due, id)
    elseif state == 'enqueued' then
      redis.call('XADD', queues[channel], '*', 'id', id)
    end
    redis.call('PEXPIRE', mkey, keep)
    redis.call('PEXPIRE', hkey, keep)
    new[#new + 1] = i
  end
end
if #new > 0 then
  redis.call('HINCRBY', KEYS[5], 'decided', #new)
  for state, c in pairs(counts) do
    if c > 0 then redis.call('HINCRBY', KEYS[5], state, c) end
  end
  redis.call('PEXPIRE', KEYS[4], keep)
  redis.call('PEXPIRE', KEYS[5], keep)
end
return new
"""

PROMOTE = """
-- KEYS: later, message, history, queue of its channel; ARGV: id, now
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= 'deferred' and state ~= 'retrying' then return 0 end
redis.call('HSET', KEYS[2], 'state', 'enqueued')
redis.call('XADD', KEYS[4], '*', 'id', ARGV[1])
return 1
"""

BEGIN = _FINAL + """
-- KEYS: message, history, queue, funnel, warning by sms, warning by email, later (for an all-clear; for an
-- acknowledgement or update the customer's all-clear by sms and by email instead of the warnings)
-- ARGV: now, id, entry, group, kind
local now = tonumber(ARGV[1])
local function ack()
  redis.call('XACK', KEYS[3], ARGV[4], ARGV[3])
  redis.call('XDEL', KEYS[3], ARGV[3])
end
local function settle(state, detail)
  redis.call('HSET', KEYS[1], 'state', state, 'reason', detail)
  redis.call('HINCRBY', KEYS[4], state, 1)
  event(KEYS[2], ARGV[2], state, now, detail)
  ack()
end
local state = redis.call('HGET', KEYS[1], 'state')
if not state or FINAL[state] or state == 'deferred' or state == 'retrying' then
  ack()
  return {'done'}
end
if ARGV[5] == 'ack' or string.sub(ARGV[5], 1, 7) == 'update-' then
  -- the all-clear is decided: an acknowledgement or update still waiting (quiet hours, a retry) is stale
  if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('EXISTS', KEYS[6]) == 1 then
    settle('superseded', 'resolved before it was sent')
    return {'supersede'}
  end
end
if ARGV[5] == 'resolved' then
  local pending, accepted, waiting = {}, false, false
  for _, wkey in ipairs({KEYS[5], KEYS[6]}) do
    local w = redis.call('HGET', wkey, 'state')
    -- told: it went, or an overlapping incident's warning carried it
    if w and (ACCEPTED[w] or w == 'covered') then accepted = true end
    -- queued, retrying or being sent (an SMS's email fallback too): it goes out (or fails) soon, and
    -- the all-clear after it
    if w == 'sending' or w == 'enqueued' or w == 'retrying' then waiting = true end
    -- waiting for the customer's morning: by then the problem is fixed, so neither is sent
    if w == 'deferred' then pending[#pending + 1] = wkey end
  end
  if waiting then return {'wait'} end
  if not accepted then
    if #pending == 0 then
      settle('skipped', 'the warning never reached the customer')
      return {'skip'}
    end
    for _, wkey in ipairs(pending) do
      local wid = redis.call('HGET', wkey, 'id')
      redis.call('HSET', wkey, 'state', 'superseded', 'reason', 'resolved before it was sent')
      redis.call('HINCRBY', KEYS[4], 'superseded', 1)
      redis.call('ZREM', KEYS[7], wid)
      event(KEYS[2], wid, 'superseded', now, 'resolved before it was sent')
    end
    settle('superseded', 'resolved before the warning was sent')
    return {'supersede'}
  end
end
local verdict = 'send'
if state == 'sending' or redis.call('HGET', KEYS[1], 'uncertain') == '1' then verdict = 'reconcile' end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if not redis.call('HGET', KEYS[1], 'first_ms') then redis.call('HSET', KEYS[1], 'first_ms', now) end
redis.call('HSET', KEYS[1], 'state', 'sending')
event(KEYS[2], ARGV[2], 'sending', now, 'attempt ' .. attempts)
return {verdict, redis.call('HGET', KEYS[1], 'env'), attempts, redis.call('HGET', KEYS[1], 'first_ms')}
"""

SETTLE = _FINAL + _FALLBACK + """
-- KEYS: message, history, queue, funnel, accepted set, fallback message, email queue
-- ARGV: now, id, entry, group, state, provider_id, reason, customer, falls back ("1"), fallback id, keep_ms
local state = redis.call('HGET', KEYS[1], 'state')
if state and not FINAL[state] then
  redis.call('HSET', KEYS[1], 'state', ARGV[5], 'provider_id', ARGV[6], 'reason', ARGV[7], 'uncertain', '0')
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
  event(KEYS[2], ARGV[2], ARGV[5], tonumber(ARGV[1]), ARGV[7])
  if ARGV[9] == '1' then
    fall_back(KEYS[1], KEYS[2], KEYS[4], KEYS[6], KEYS[7], ARGV[10], tonumber(ARGV[1]), tonumber(ARGV[11]),
              'the SMS ' .. ARGV[5] .. ': ' .. ARGV[7])
  end
end
if ACCEPTED[ARGV[5]] or (state and ACCEPTED[state]) then redis.call('SADD', KEYS[5], ARGV[8]) end
redis.call('XACK', KEYS[3], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[3], ARGV[3])
return 1
"""

RETRY = _FINAL + """
-- KEYS: message, history, queue, later; ARGV: now, id, entry, group, due, reason, uncertain, state, quiet
local state = redis.call('HGET', KEYS[1], 'state')
if state and not FINAL[state] then
  local uncertain = ARGV[7]
  -- put back from 'sending' (a lease reclaimed from a crashed worker, or a send the channel refused):
  -- an earlier try may have reached the provider, so the next one reconciles first
  if state == 'sending' and ARGV[8] == 'released' then uncertain = '1' end
  if redis.call('HGET', KEYS[1], 'uncertain') == '1' then uncertain = '1' end
  redis.call('HSET', KEYS[1], 'state', 'retrying', 'reason', ARGV[6], 'uncertain', uncertain)
  redis.call('ZADD', KEYS[4], tonumber(ARGV[5]), ARGV[2])
  if ARGV[9] ~= '1' then event(KEYS[2], ARGV[2], ARGV[8], tonumber(ARGV[1]), ARGV[6]) end
end
redis.call('XACK', KEYS[3], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[3], ARGV[3])
return 1
"""

STATUS = _FINAL + _FALLBACK + """
-- KEYS: message, history, funnel, fallback message, email queue, accepted set
-- ARGV: now, id, status, detail, fallback id, keep_ms, customer
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local now, status = tonumber(ARGV[1]), ARGV[3]
if status ~= 'delivered' and status ~= 'undelivered' and status ~= 'failed' then return 1 end
if state == status or state == 'delivered' then return 1 end
if state ~= 'sent' and state ~= 'sending' and state ~= 'retrying' and state ~= 'enqueued' then return 1 end
redis.call('HSET', KEYS[1], 'state', status, 'reason', ARGV[4])
redis.call('HINCRBY', KEYS[3], status, 1)
redis.call('SADD', KEYS[6], ARGV[7])
event(KEYS[2], ARGV[2], status, now, ARGV[4])
if status ~= 'delivered' then
  fall_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[5], now, tonumber(ARGV[6]), 'the SMS was ' .. status)
end
return 1
"""
