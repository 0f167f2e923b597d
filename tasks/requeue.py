"""Deliveries stalled with no task behind them are queued again; dead workers' work comes back.

Beat's `recover` task runs `recover` every few seconds: it gives back at once the messages no
living worker holds (`tasks.recovery`), and every half minute looks for deliveries still
`queued` or `running` past the pipeline's lease with no task message anywhere behind them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

from tasks import recovery
from tasks.lanes import queue_for, urgent_queue
from tasks.names import GATHER, RESPOND
from tasks.runtime import Runtime, SendTask
from tasks.store import worker_marks
from tasks.store.dead_letters import DeadLetter

log = logging.getLogger(__name__)

RECONCILE_EVERY_SECONDS = 30
MAX_REQUEUES = 3  # a delivery requeued this often and still stalled is failed for good
RECONCILE_HORIZON_SECONDS = 6 * 3600  # deliveries older than this are not looked at again


def recover(rt: Runtime, send: SendTask, now: float) -> int:
    """Give back what dead workers held; every half minute, queue stalled deliveries again."""
    count = len(recovery.reclaim_orphans(rt.redis, now))
    if worker_marks.take_reconcile_turn(rt.redis, RECONCILE_EVERY_SECONDS):
        count += requeue_stalled(rt, send, now)
    return count


def requeue_stalled(rt: Runtime, send: SendTask, now: float) -> int:
    """Queue again each delivery stuck queued or running with no task message behind it.

    The queues and the unacked set cannot be read in one step, so a message moving between
    them can be missed once: a delivery is requeued only when two passes in a row found it
    stalled with nothing behind it. One requeued MAX_REQUEUES times is failed for good.
    """
    lease = rt.settings.pipeline_lease_seconds
    stalled = recovery.stalled_deliveries(rt.redis, now, lease, RECONCILE_HORIZON_SECONDS)
    suspects_before = worker_marks.take_suspects(rt.redis)
    if not stalled:
        return 0
    queues = [rt.settings.queue, urgent_queue(rt.settings.queue)]
    referenced = recovery.referenced_deliveries(rt.redis, queues)
    unreferenced = [(d, p) for d, p in stalled if d.encode() not in referenced]
    fresh = [d for d, _ in unreferenced if d not in suspects_before]
    worker_marks.keep_suspects(rt.redis, fresh, 3 * RECONCILE_EVERY_SECONDS)
    requeued = 0
    for delivery_id, pipeline in unreferenced:
        if delivery_id in suspects_before:
            requeue(rt, send, delivery_id, pipeline)
            requeued += 1
    return requeued


def requeue(rt: Runtime, send: SendTask, delivery_id: str, pipeline: str) -> None:
    """Send a stalled delivery's next task again, or fail it after MAX_REQUEUES tries."""
    delivery = rt.deliveries.load(delivery_id)
    if delivery is None:  # expired since it was listed: counting a requeue would make a stub
        log.info("delivery %s is no longer kept: nothing to queue again", delivery_id)
        return
    classification = delivery.classification
    queue = queue_for(rt.settings.queue, classification.priority if classification else None)
    runs = delivery.runs
    tries = rt.deliveries.count_requeue(delivery_id)
    if tries > MAX_REQUEUES:
        why = f"stalled {pipeline} {MAX_REQUEUES} times with no task behind it"
        rt.deliveries.update(delivery_id, pipeline=f"failed: {why}")
        args = [delivery_id, runs]
        letter = DeadLetter(f"stalled:{delivery_id}", RESPOND, args, queue, why, time.time())
        rt.dead_letters.add(replace(letter, delivery_id=delivery_id, step="pipeline"))
        log.error("delivery %s %s: dead-lettered", delivery_id, why)
        return
    run_id = delivery.run_id
    if pipeline == "running" and run_id and rt.deliveries.effect_done(run_id, "fanout"):
        send(GATHER, [run_id], queue)
    else:
        send(RESPOND, [delivery_id, runs], queue)
    rt.deliveries.update(delivery_id, requeued_at=datetime.now(UTC).isoformat())
    log.warning("delivery %s was %s with no task behind it: queued again", delivery_id, pipeline)
