"""A token bucket in Redis, shared by every worker: PagerDuty allows 960 requests a minute."""

from __future__ import annotations

import time

import redis

from tasks.deliveries import PREFIX

# Refill by elapsed time, take one token if there is one; else say how long until there is.
_TAKE = """
local capacity, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or capacity)
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp') or now)
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'stamp', now)
redis.call('EXPIRE', KEYS[1], 120)
return tostring(wait)
"""


class TokenBucket:
    """Take a token before each call; all workers draw from the same bucket."""

    def __init__(
        self, client: redis.Redis, name: str, per_minute: int = 960, capacity: int | None = None
    ) -> None:
        self.key = f"{PREFIX}ratelimit:{name}"
        self.rate = per_minute / 60.0
        self.capacity = capacity or per_minute
        self._take = client.register_script(_TAKE)

    def take(self) -> float:
        """Take one token; return 0, or the seconds to wait before one is available."""
        return float(self._take(keys=[self.key], args=[self.capacity, self.rate, time.time()]))
