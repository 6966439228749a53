"""A pace per sender identity shared by every delivery worker: GCRA, in Redis or in this process.

The generic cell rate algorithm keeps one number per identity, the theoretical arrival time (TAT)
of the next slot. A request at `now` is granted when TAT ≤ now (+ the burst allowance) and moves
TAT one interval on; otherwise it is told how long to wait. A worker that asks late (it was busy)
may catch up by at most `burst_seconds` worth of slots, so late asks do not lose rate, and the count
over any minute stays within that many slots of the configured rate.

>>> limiter = InMemoryRateLimiter(burst_seconds=0)
>>> [limiter.acquire("+15125550199", 2.0, t) for t in (0.0, 0.1, 0.5, 0.6)]
[0.0, 0.4, 0.0, 0.4]
"""

from __future__ import annotations

import threading

from forewarn.connectors.redis_keys import RedisClient

# KEYS[1]: the identity's TAT (ms); ARGV: now_ms, interval_ms, burst slots. Returns microseconds to wait
# (0: granted), rounded up: Redis truncates a Lua number it returns to an integer, so a wait under the
# unit would otherwise read as a grant that never took its slot.
_GCRA = """
local now, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allowed_at = tat - interval * burst
if now < allowed_at then return math.max(1, math.ceil((allowed_at - now) * 1000)) end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tat + interval - now + 1000))
return 0
"""


class RedisRateLimiter:
    """`RateLimiter` over one Redis key per sender identity (`{prefix}:rate:{identity}`)."""

    def __init__(self, client: RedisClient, prefix: str = "fw", burst_seconds: float = 0.1) -> None:
        self.client = client
        self.prefix = prefix
        self.burst_seconds = burst_seconds
        self._script = client.register_script(_GCRA)  # type: ignore[misc]

    def acquire(self, identity: str, rate: float, now: float) -> float:
        interval_ms = 1000.0 / rate
        burst = int(rate * self.burst_seconds)  # slots a late worker may catch up, as in InMemoryRateLimiter
        wait_us = self._script(keys=[f"{self.prefix}:rate:{identity}"], args=[now * 1000, interval_ms, burst])
        return float(wait_us) / 1_000_000


class InMemoryRateLimiter:
    """`RateLimiter` for one process (the demo's in-process worker)."""

    def __init__(self, burst_seconds: float = 0.1) -> None:
        self.burst_seconds = burst_seconds
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def acquire(self, identity: str, rate: float, now: float) -> float:
        interval = 1.0 / rate
        with self._lock:
            tat = max(self._tat.get(identity, now), now)
            allowed_at = tat - interval * int(rate * self.burst_seconds)
            if now < allowed_at:
                return round(allowed_at - now, 9)
            self._tat[identity] = tat + interval
            return 0.0
