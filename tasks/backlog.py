"""The responder's own backlog, read from Redis: what /metrics and `responder status` show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tasks import recovery
from tasks.lanes import Lane, urgent_queue
from tasks.runtime import Runtime
from tasks.store import worker_marks
from tasks.store.beat_lease import LeaseHolder, lease_holder
from tasks.store.deliveries import DELIVERY_ID


@dataclass(frozen=True)
class Backlog:
    """How much work waits, how old the oldest is, and what the responder has left to spend."""

    queued: dict[Lane, int]
    oldest_seconds: dict[Lane, float | None]  # age of the oldest waiting delivery's work
    held: int  # task messages workers hold (running, or waiting out a countdown)
    workers: int  # workers whose heartbeat is live
    budget_used: int  # PagerDuty REST requests granted in the last 60 s
    budget_limit: int
    coalesced: int  # deliveries that joined a running incident instead of starting one
    dead_letters: int
    joined_notes_due: int
    sla_requeued: int = 0  # due SLA deadlines the auditor found not acted on, queued again
    beat: LeaseHolder | None = None  # the beat that holds the lease: the one that schedules


def read_backlog(rt: Runtime, now: datetime | None = None) -> Backlog:
    """Read the backlog from Redis (a handful of commands)."""
    now = now or datetime.now(UTC)
    queues = {Lane.ROUTINE: rt.settings.queue, Lane.URGENT: urgent_queue(rt.settings.queue)}
    queued = {lane: int(rt.redis.llen(queue)) for lane, queue in queues.items()}
    oldest = {lane: _oldest_age(rt, queue, now) for lane, queue in queues.items()}
    workers = len(worker_marks.worker_keys(rt.redis))
    return Backlog(
        queued=queued,
        oldest_seconds=oldest,
        held=int(rt.redis.hlen(recovery.UNACKED_KEY)),
        workers=workers,
        budget_used=rt.budget.used(),
        budget_limit=rt.budget.limit,
        coalesced=rt.deliveries.stat("coalesced"),
        dead_letters=rt.dead_letters.count(),
        joined_notes_due=rt.deliveries.joined_notes_due(),
        sla_requeued=rt.deliveries.stat("sla_requeued"),
        beat=lease_holder(rt.redis),
    )


def _oldest_age(rt: Runtime, queue: str, now: datetime) -> float | None:
    """Return how long the oldest waiting message's delivery has waited (None: none waits)."""
    oldest = rt.redis.lindex(queue, -1)  # LPUSH in, BRPOP out: the oldest is on the right
    if oldest is None:
        return None
    found = DELIVERY_ID.search(oldest)
    if found is None:
        return 0.0  # housekeeping (a tick): no delivery to date it by
    stamp = found.group("received").decode()
    received = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return max((now - received).total_seconds(), 0.0)
