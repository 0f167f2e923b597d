"""Deliveries that joined an incident's run, kept for its next "more alerts" note.

The recording script lists a joining Alertmanager delivery under its incident and schedules the
note (`tasks.store.deliveries._RECORD`); correlation lists a tied delivery the same way
(`list_for_note`). When a note is due its list becomes a batch, pending until the note is done,
so a beat or worker that dies in between leaves it to be sent again, never lost. A batch is
named by its key, `responder:joined-batch:<seq>:<incident key>`, and travels as a task argument.
"""

from __future__ import annotations

import redis

from tasks.store.deliveries import JOINED_DUE_KEY, PREFIX, joined_key

_PENDING_KEY = f"{PREFIX}joined-batches"  # batch keys scored by when they were last sent
_BATCH_PREFIX = f"{PREFIX}joined-batch:"
_BATCH_SEQ_KEY = f"{PREFIX}joined-batch-seq"
BATCH_TTL_SECONDS = 2 * 86400
MOST_AT_ONCE = 200  # incidents taken per tick

# Take the incidents whose note is due: each one's list of joined deliveries becomes a batch.
# Key names are built here from the prefix: one Redis, never a cluster (see README).
_TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[5])
local batches = {}
for _, incident in ipairs(due) do
  redis.call('ZREM', KEYS[1], incident)
  local list = ARGV[2] .. incident
  if redis.call('EXISTS', list) == 1 then
    local batch = ARGV[3] .. redis.call('INCR', KEYS[3]) .. ':' .. incident
    redis.call('RENAME', list, batch)
    redis.call('EXPIRE', batch, ARGV[4])
    redis.call('ZADD', KEYS[2], ARGV[1], batch)
    batches[#batches + 1] = batch
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[4])
return batches
"""

# Batches sent before ARGV[1] and not done: re-scored at ARGV[2] (a new lease) as they are taken.
_TAKE_STALE = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, batch in ipairs(stale) do redis.call('ZADD', KEYS[1], ARGV[2], batch) end
return stale
"""


def list_for_note(client: redis.Redis, incident_key: str, delivery_id: str, due: float) -> None:
    """List a delivery under the incident's next "more alerts" note, due at `due` or sooner."""
    with client.pipeline() as pipe:
        pipe.rpush(joined_key(incident_key), delivery_id)
        pipe.zadd(JOINED_DUE_KEY, {incident_key: due}, lt=True)
        pipe.execute()


def take_due(client: redis.Redis, now: float, lease_seconds: float) -> list[str]:
    """Return the batches to send now: newly due ones, and ones sent a lease ago not yet done."""
    script = client.register_script(_TAKE_DUE)
    args = [now, joined_key(""), _BATCH_PREFIX, BATCH_TTL_SECONDS, MOST_AT_ONCE]
    keys = [JOINED_DUE_KEY, _PENDING_KEY, _BATCH_SEQ_KEY]
    fresh = [b.decode() for b in script(keys=keys, args=args)]
    # Sent again with a new lease, taken in one script: two ticks (beats overlapping around a
    # lease takeover) never both take the same stale batch.
    taken = client.register_script(_TAKE_STALE)(
        keys=[_PENDING_KEY], args=[now - lease_seconds, now]
    )
    stale = [b.decode() for b in taken]
    return fresh + [b for b in stale if b not in fresh]


def batch_id(batch: str) -> str:
    """Return a batch's id, `<seq>:<incident key>`: what its note is posted once under."""
    return batch.removeprefix(_BATCH_PREFIX)


def incident_of(batch: str) -> str:
    """Return the incident key a batch belongs to."""
    return batch_id(batch).split(":", 1)[1]


def deliveries_of(client: redis.Redis, batch: str) -> list[str]:
    """Return the ids of the deliveries in a batch, in the order they joined."""
    return [d.decode() for d in client.lrange(batch, 0, -1)]


def done(client: redis.Redis, batch: str) -> None:
    """Mark a batch's note as done: it is not sent again."""
    client.zrem(_PENDING_KEY, batch)
