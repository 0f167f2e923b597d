"""The beat lease in Redis: which one of the beats on every host schedules, for a few seconds.

Every host may run beat; the one holding this key sends the periodic tasks and renews it, the
others keep their schedules in step and send nothing. A holder that dies stops renewing, the
key expires, and the next beat to look takes it. The value names the holder (host, pid) so
that `responder status` can say where beat runs.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from tasks.store.deliveries import PREFIX

LEASE_KEY = f"{PREFIX}beat-lease"

# Extend the lease only while it still carries our token: a holder that paused past its
# expiry (and lost the key to another beat) must not extend the other's lease.
_RENEW = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['token'] == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds the beat lease, since when, and for how long it runs without a renewal."""

    host: str
    pid: int
    since: str  # ISO 8601
    expires_in_seconds: float


class BeatLease:
    """Take, renew, release and read the one beat lease."""

    def __init__(self, client: redis.Redis, seconds: float, host: str | None = None) -> None:
        self.redis = client
        self.milliseconds = int(seconds * 1000)
        self.token = uuid.uuid4().hex
        self.host = host or socket.gethostname()
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Renew the lease if this beat holds it, else take it if it is free; True: we hold it."""
        if self._renew(keys=[LEASE_KEY], args=[self.token, self.milliseconds]):
            return True
        value = json.dumps(
            {
                "token": self.token,
                "host": self.host,
                "pid": os.getpid(),
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        return bool(self.redis.set(LEASE_KEY, value, nx=True, px=self.milliseconds))

    def release(self) -> None:
        """Give the lease up (a clean stop): another beat takes it at its next look."""
        self._release(keys=[LEASE_KEY], args=[self.token])


def lease_holder(client: redis.Redis) -> LeaseHolder | None:
    """Return who holds the beat lease now, or None when no beat does."""
    with client.pipeline() as pipe:
        pipe.get(LEASE_KEY)
        pipe.pttl(LEASE_KEY)
        value, pttl = pipe.execute()
    if value is None:
        return None
    data = json.loads(value)
    return LeaseHolder(data["host"], int(data["pid"]), data["since"], max(pttl, 0) / 1000)
