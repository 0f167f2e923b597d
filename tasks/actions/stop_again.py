"""Containment while the cause persists: after a way to stop trading ran on an incident, its
own checks are read again on the SLA clock (a `stop_again` deadline every
`actions.stop_again.every`). Trading seen to resume while the incident is P0 and its alerts
still fire proposes that way again, with a note saying why: once per resumption.

This module starts the watch (an action that ran calls it); tasks.sla.stop_again reads
trading again when the deadline comes due. Once per resumption: the new proposal's id derives
from the stop that ran, so a retried or repeated check makes the same one; and the watch is
not registered again after it, until that new stop has run (`watch_from` then starts it
again).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tasks.actions.approval import proposals
from tasks.runtime import Runtime
from tasks.store.proposals import Proposal
from tasks.store.sla_clock import STOP_AGAIN, Deadline

log = logging.getLogger(__name__)


def watch_from(rt: Runtime, proposal: Proposal, now: datetime) -> bool:
    """Start reading trading again after a way to stop it ran and was verified; say if started."""
    again = rt.policy.actions.stop_again
    if again is None or proposal.action not in rt.policy.actions.ways_to_stop():
        return False
    record = rt.incidents.get(proposal.incident_id) or {}
    proposals(rt).remember_stop(proposal.incident_id, proposal.id)
    read_again_later(rt, proposal.incident_id, record, now)
    return True


def read_again_later(rt: Runtime, incident_id: str, record: dict[str, Any], now: datetime) -> None:
    """Register the incident's next read of trading, `every` from now."""
    again = rt.policy.actions.stop_again
    assert again is not None
    due = (now + again.every).isoformat()
    priority, run_id = str(record.get("sla_priority") or ""), str(record.get("run_id") or "")
    title = str(record.get("title") or "")
    rt.clock.register([Deadline(incident_id, STOP_AGAIN, due, priority, run_id, title)])
