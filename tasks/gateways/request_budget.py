"""PagerDuty's request budget in Redis, shared by every worker, with a lane for urgent work.

PagerDuty allows 960 REST requests a minute per key (about 120 events a minute per
integration key on the Events API). The budget is a sliding window: a request is granted only
while fewer than the limit were granted in the 60 seconds before it, so no 60-second window,
wherever it starts, ever holds more than the limit (a token bucket that starts full lets
twice the limit through in its first minute). Routine work (P2/P3) may fill only its share of
the window; what is left is always there for urgent work (P0/P1). A 429 from PagerDuty blocks
the budget for every worker until its `ratelimit-reset`.
"""

from __future__ import annotations

import math

import redis

from tasks.lanes import Lane, current_lane, first_response
from tasks.store.services import budget_key

FOLLOW_UP_SHARE = 0.8  # of the routine share, what routine writes other than first notes use
FOLLOW_UP_WAIT = 0.5  # seconds a follow-up waits, at a time, for first responses in progress
# A first response in progress holds follow-ups back at most this long without saying again
# (a task that died says nothing more).
FIRST_RESPONSE_LEASE_SECONDS = 30.0

# KEYS: the window (a sorted set of grant times), the blocked-until key, a sequence, the
# routine first responses in progress (a sorted set of their lease ends).
# ARGV: the lane's ceiling, the window in seconds, now (negative: Redis's own clock), "1" for
# a routine follow-up.
# Returns "0" when granted, else the seconds until a grant is possible.
_TAKE = """
local ceiling, window, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then return tostring(blocked - now) end
if ARGV[4] == '1' then
  -- A routine follow-up waits while routine first responses are in progress: in a storm of
  -- new incidents every first note goes before any status update, priority or evidence note.
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) > 0 then return tostring(FOLLOW_UP_WAIT) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < ceiling then
  local seq = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], 86400)
  redis.call('ZADD', KEYS[1], now, now .. ':' .. seq)
  redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
  return '0'
end
-- Granted again once the window holds one fewer than the ceiling: when this grant leaves it.
local leaving = redis.call('ZRANGE', KEYS[1], count - ceiling, count - ceiling, 'WITHSCORES')
return tostring(math.max(tonumber(leaving[2]) + window - now, 0.001))
"""

# Block every worker until `now + seconds`, unless already blocked for longer.
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then
  redis.call('SET', KEYS[1], tostring(until_), 'EX', math.ceil(tonumber(ARGV[1])) + 1)
end
return tostring(until_)
"""


class RequestBudget:
    """A sliding-window request budget in Redis that every worker draws from."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        limit: int = 960,
        window_seconds: float = 60.0,
        routine_share: float = 0.6,
    ) -> None:
        if not 0 < routine_share <= 1:
            raise ValueError(f"routine_share must be above 0 and at most 1, got {routine_share}")
        self.redis = client
        self.name = name
        self.limit = limit
        self.window_seconds = window_seconds
        routine = max(1, math.floor(limit * routine_share))
        self.ceilings = {Lane.URGENT: limit, Lane.ROUTINE: routine}
        # Routine follow-ups (priority, evidence notes) stop short of the routine share: in a
        # storm of new incidents, their first notes go first.
        self.follow_up_ceiling = max(1, math.floor(routine * FOLLOW_UP_SHARE))
        self.key = budget_key(name)
        self._keys = [
            self.key,
            f"{self.key}:blocked-until",
            f"{self.key}:seq",
            f"{self.key}:first-responses",
        ]
        self._take = client.register_script(_TAKE.replace("FOLLOW_UP_WAIT", str(FOLLOW_UP_WAIT)))
        self._block = client.register_script(_BLOCK)

    def take(self, lane: Lane | None = None, now: float | None = None) -> float:
        """Take one request; return 0, or the seconds to wait before this lane may have one.

        `now` is for tests; by default the time is Redis's own, the same for every worker.
        """
        lane = lane or current_lane.get()
        ceiling = self.ceilings[lane]
        follow_up = lane is Lane.ROUTINE and not first_response.get()
        if follow_up:
            ceiling = self.follow_up_ceiling
        args = [ceiling, self.window_seconds, -1 if now is None else now, int(follow_up)]
        return float(self._take(keys=self._keys, args=args))

    def first_response_begins(self, who: str, now: float | None = None) -> None:
        """Say that a routine first response is in progress: follow-ups wait until it ends."""
        if now is None:
            seconds, micros = self.redis.time()
            now = seconds + micros / 1_000_000
        self.redis.zadd(self._keys[3], {who: now + FIRST_RESPONSE_LEASE_SECONDS})
        self.redis.expire(self._keys[3], math.ceil(FIRST_RESPONSE_LEASE_SECONDS) + 1)

    def first_response_ends(self, who: str) -> None:
        """Say that a routine first response is done (its note posted, or given up)."""
        self.redis.zrem(self._keys[3], who)

    def block(self, seconds: float) -> None:
        """Hold every worker's requests back for `seconds` (PagerDuty answered 429)."""
        self._block(keys=[self._keys[1]], args=[max(seconds, 0.0)])

    def used(self) -> int:
        """Return how many requests were granted in the last window."""
        (seconds, micros) = self.redis.time()
        now = seconds + micros / 1_000_000
        return int(self.redis.zcount(self.key, f"({now - self.window_seconds}", "+inf"))
