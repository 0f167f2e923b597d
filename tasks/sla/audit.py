"""The SLA auditor: every deadline that came due is acted on, or queued again, or dead-lettered.

The tick claims a due deadline, queues its action and releases the claim; from then on only
the action's message carries it. A message lost after that (a Redis that restarted without
its last writes, a purged queue) would leave the runbook's promise unkept with no trace. The
claim put the deadline in the due log (tasks/store/sla_clock.py); each try of the action
touches it and its end takes it off. What stays untouched past the grace time is queued
again, counted (`responder_sla_deadlines_requeued` in /metrics), and after MAX_REQUEUES
dead-lettered for an operator. The action's lock and once-markers keep a second copy of an
action that was only slow from acting twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from tasks.lanes import deadline_queue
from tasks.names import SLA_ACTION
from tasks.runtime import Runtime
from tasks.store.dead_letters import DeadLetter

log = logging.getLogger(__name__)

MAX_REQUEUES = 3  # a deadline queued again this often and still not acted on is dead-lettered
REQUEUED_STAT = "sla_requeued"  # counter in the stats hash, shown by /metrics
DEAD_LETTERED_STAT = "sla_audit_dead_lettered"


def audit(rt: Runtime, now: datetime, send: Callable[[str, list[Any], str], None]) -> int:
    """Queue again each due deadline whose action has not run within the grace; return how many."""
    requeued = 0
    for deadline, before in rt.clock.unacted(now, rt.settings.sla_audit_grace_seconds):
        queue = deadline_queue(rt.settings.queue, deadline.kind, deadline.priority)
        args: list[Any] = [asdict(deadline)]
        if before >= MAX_REQUEUES:
            why = f"SLA {deadline.kind} queued {MAX_REQUEUES} times and never acted on"
            letter = DeadLetter(
                f"sla:{deadline.occurrence}", SLA_ACTION, args, queue, why, now.timestamp(),
                incident_id=deadline.incident_id, step=f"SLA {deadline.kind}",
            )  # fmt: skip
            rt.dead_letters.add(letter)
            rt.clock.acted(deadline)
            rt.deliveries.count_stat(DEAD_LETTERED_STAT)
            log.error("incident %s: %s; dead-lettered", deadline.incident_id, why)
            continue
        send(SLA_ACTION, args, queue)
        rt.deliveries.count_stat(REQUEUED_STAT)
        requeued += 1
        log.warning(
            "incident %s: SLA %s due %s was not acted on: queued again",
            deadline.incident_id, deadline.kind, deadline.due,
        )  # fmt: skip
    return requeued
