"""Slack's state in Redis: each incident's thread, and the pace of posts per channel.

Slack allows about one message per second per channel. Every worker takes a slot from one
Redis record per channel before it posts; a message that finds no slot free waits in the
channel's line (a Celery countdown until its turn, never a sleep). Urgent work (P0/P1) has
first claim: urgent messages stand before every routine one in the line.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from tasks.store.deliveries import DEDUP_TTL, PREFIX

SLOT_SECONDS = 1.0  # one message per second per channel
# A waiter this late for its turn (its task died, or a busy worker runs it late) leaves the
# line; it joins again at the end when it asks again.
LATE_WAITER_SECONDS = 3.0

# One line of waiting messages per channel, so that N messages waiting for a channel cost about
# N task runs, not N a second: each is told to come back when its turn should come (its rank
# in the line, a slot each), and only the head of the line is granted the slot. Urgent waiters
# (P0/P1) stand before every routine one (their scores are their arrival less 1e10): first
# claim on the channel.
# KEYS: the channel's last grant, its line (a sorted set), the line's last-seen times (a
# hash), the channel's block-until.
# ARGV: now (negative: Redis's clock), the slot in seconds, "1" when urgent, the waiter's id,
# the grace for a late waiter.
# Returns "0" when the slot is granted now, else the seconds to wait before asking again.
_TAKE = """
local now, slot, urgent, me = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4]
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- A waiter that did not come back by its turn and the grace (its task died, or runs late)
-- leaves the line: it joins at the end when it asks again. The line keeps moving.
local due = redis.call('HGETALL', KEYS[3])
for i = 1, #due, 2 do
  if now > tonumber(due[i + 1]) + tonumber(ARGV[5]) then
    redis.call('ZREM', KEYS[2], due[i])
    redis.call('HDEL', KEYS[3], due[i])
  end
end
redis.call('ZADD', KEYS[2], 'NX', urgent and (now - 1e10) or now, me)
redis.call('EXPIRE', KEYS[2], 3600)
redis.call('EXPIRE', KEYS[3], 3600)
local blocked = tonumber(redis.call('GET', KEYS[4]) or '0')
local last = tonumber(redis.call('GET', KEYS[1]) or '-1e18')
local free_at = math.max(last + slot, blocked)
local rank = redis.call('ZRANK', KEYS[2], me)
if rank == 0 and free_at <= now then
  redis.call('SET', KEYS[1], tostring(now), 'EX', 3600)
  redis.call('ZREM', KEYS[2], me)
  redis.call('HDEL', KEYS[3], me)
  return '0'
end
local wait = math.max(free_at - now, 0) + rank * slot + 0.01
redis.call('HSET', KEYS[3], me, tostring(now + wait))  -- when it is to come back
return tostring(wait)
"""

_BLOCK = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local until_ = now + tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[1]) or '0') < until_ then
  redis.call('SET', KEYS[1], tostring(until_), 'EX', math.ceil(tonumber(ARGV[2])) + 1)
end
return 1
"""


def _key(what: str, channel: str) -> str:
    return f"{PREFIX}slack-{what}:{channel}"


class ChannelPace:
    """One message per second per channel, across every worker; urgent work first."""

    def __init__(self, client: redis.Redis, slot_seconds: float = SLOT_SECONDS) -> None:
        self.redis = client
        self.slot = slot_seconds
        self._take = client.register_script(_TAKE)
        self._block = client.register_script(_BLOCK)

    def take(self, channel: str, urgent: bool, waiter: str, now: float = -1.0) -> float:
        """Ask for the channel's slot for `waiter` (a message's id); 0 when granted now, else
        the seconds to wait before asking again (the waiter keeps its place in the line).

        `now` is for tests (seconds since the epoch); by default Redis's clock decides, so
        workers on machines whose clocks differ share one pace.
        """
        keys = [
            _key("pace", channel),
            _key("line", channel),
            _key("line-seen", channel),
            _key("blocked", channel),
        ]
        args = [now, self.slot, "1" if urgent else "0", waiter, LATE_WAITER_SECONDS]
        return float(self._take(keys=keys, args=args))

    def block(self, channel: str, seconds: float, now: float = -1.0) -> None:
        """Hold every post to the channel back for `seconds` (Slack said 429: Retry-After)."""
        self._block(keys=[_key("blocked", channel)], args=[now, seconds])


@dataclass
class Thread:
    """An incident's Slack thread: where its parent is, and the facts it was built from."""

    incident_id: str
    priority: str
    channel: str = ""  # the channel's id, as Slack answered the parent's post
    ts: str = ""  # the parent's ts: the thread's id ("" until it is posted)
    facts: dict[str, Any] | None = None  # what the parent says, kept to update it
    opened: float = 0.0  # when the thread was asked for (seconds since the epoch)

    @property
    def posted(self) -> bool:
        """Return True once the parent is out (replies can go into its thread)."""
        return bool(self.ts)


def thread_key(incident_id: str) -> str:
    """Return the Redis key of an incident's Slack thread record."""
    return f"{PREFIX}slack-thread:{incident_id}"


class SlackThreads:
    """The Slack thread of each incident, kept as long as the delivery log's once-records."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def open(self, incident_id: str, priority: str) -> None:
        """Record that the incident gets a thread (before its parent is queued)."""
        key = thread_key(incident_id)
        self.redis.hsetnx(key, "priority", priority)
        self.redis.hsetnx(key, "opened", f"{time.time():.3f}")
        self.redis.expire(key, int(DEDUP_TTL.total_seconds()))

    def get(self, incident_id: str) -> Thread | None:
        """Return the incident's thread record, or None when it has none."""
        raw = {
            k.decode(): v.decode() for k, v in self.redis.hgetall(thread_key(incident_id)).items()
        }
        if not raw:
            return None
        facts = json.loads(raw["facts"]) if raw.get("facts") else None
        return Thread(
            incident_id,
            raw.get("priority", "P3"),
            raw.get("channel", ""),
            raw.get("ts", ""),
            facts,
            float(raw.get("opened") or 0.0),
        )

    def save(self, thread: Thread) -> None:
        """Store a thread's parent position and facts."""
        fields = asdict(thread)
        fields["facts"] = json.dumps(thread.facts) if thread.facts is not None else ""
        key = thread_key(thread.incident_id)
        self.redis.hset(key, mapping=fields)
        self.redis.expire(key, int(DEDUP_TTL.total_seconds()))

    def remember_channel(self, name: str, channel_id: str) -> None:
        """Remember the id Slack gave a channel named in the policy (history needs the id)."""
        if name and channel_id and name != channel_id:
            self.redis.hset(f"{PREFIX}slack-channels", name, channel_id)

    def channel_id(self, name: str) -> str:
        """Return the channel's id when known, else the policy's name for it."""
        found = self.redis.hget(f"{PREFIX}slack-channels", name)
        return found.decode() if found else name
