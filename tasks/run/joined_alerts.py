"""Deliveries that joined an incident's run, summed up in one "more alerts" note per interval.

The recording script lists a joining delivery under its incident and schedules the note (see
`tasks.store.deliveries._RECORD`). Beat takes the incidents whose note is due as batches; a task
per batch posts the note once. A batch stays pending until its note is done, so a beat or
worker that dies in between leaves it to be sent again, never lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.pagerduty.incidents import IncidentNotFound, find_incident
from tasks.pagerduty.notes import post_note_once
from tasks.run import correlating
from tasks.run.prepare import fresh_firing_alerts
from tasks.runtime import Runtime
from tasks.store.deliveries import JOINED_DUE_KEY, PREFIX, claim_key, parse_claim
from triage.models import Alert, Classification

PENDING_KEY = f"{PREFIX}joined-batches"  # batch keys scored by when they were last sent
BATCH_PREFIX = f"{PREFIX}joined-batch:"
BATCH_SEQ_KEY = f"{PREFIX}joined-batch-seq"
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


def take_due(rt: Runtime, now: float, lease_seconds: float) -> list[str]:
    """Return the batches to send now: newly due ones, and ones sent a lease ago not yet done."""
    script = rt.redis.register_script(_TAKE_DUE)
    args = [now, f"{PREFIX}joined:", BATCH_PREFIX, BATCH_TTL_SECONDS, MOST_AT_ONCE]
    fresh = [
        b.decode() for b in script(keys=[JOINED_DUE_KEY, PENDING_KEY, BATCH_SEQ_KEY], args=args)
    ]
    # Sent again with a new lease, taken in one script: two ticks (beats overlapping around a
    # lease takeover) never both take the same stale batch.
    taken = rt.redis.register_script(_TAKE_STALE)(
        keys=[PENDING_KEY], args=[now - lease_seconds, now]
    )
    stale = [b.decode() for b in taken]
    return fresh + [b for b in stale if b not in fresh]


def incident_of(batch: str) -> str:
    """Return the incident key a batch belongs to."""
    return batch.removeprefix(BATCH_PREFIX).split(":", 1)[1]


def run_priority(rt: Runtime, incident_key: str) -> str:
    """Return the priority of the run the batch's deliveries joined (P3 when unknown)."""
    held = parse_claim(rt.redis.get(claim_key(incident_key)))
    return held.priority.value if held is not None else "P3"


def post_joined_note(rt: Runtime, batch: str, now: datetime) -> str:
    """Post the "more alerts" note of one batch once; raise IncidentNotFound if none exists."""
    incident_key = incident_of(batch)
    delivery_ids = [d.decode() for d in rt.redis.lrange(batch, 0, -1)]
    alerts: list[tuple[Alert, Classification]] = []
    seen: set[str] = set()
    correlated: list[dict[str, Any]] = []
    for delivery_id in delivery_ids:
        delivery = rt.deliveries.load(delivery_id)
        if delivery is None:
            continue
        fresh = fresh_firing_alerts(delivery)
        for alert, classification in fresh:
            if alert.dedup_key not in seen:
                seen.add(alert.dedup_key)
                alerts.append((alert, classification))
        if tied := correlating.tied_in(rt, delivery, fresh):
            correlated.append(tied)
    if not alerts:
        done(rt, batch)
        return "no new firing alerts"
    incident = find_incident(rt, incident_key)  # by key alone in outbox mode
    if incident is None:
        raise IncidentNotFound(f"no PagerDuty incident with incident_key={incident_key}")
    refresh = rt.policy.storm.evidence_refresh
    origin = correlating.origin_of(rt, correlated) if correlated else None
    content = rt.voice.joined_alerts(
        alerts, delivery_ids, refresh, now, correlated=correlated, origin=origin
    )
    step = "joined_note"
    note_id = post_note_once(rt, incident, batch.removeprefix(BATCH_PREFIX), step, content)
    for delivery_id in delivery_ids if note_id is not None else ():
        rt.deliveries.update(delivery_id, joined_note=note_id)
    done(rt, batch)
    return note_id or "already posted"


def done(rt: Runtime, batch: str) -> None:
    """Mark a batch's note as done: it is not sent again."""
    rt.redis.zrem(PENDING_KEY, batch)
