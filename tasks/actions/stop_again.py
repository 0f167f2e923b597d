"""Containment while the cause persists: after a way to stop trading ran on an incident, its
own checks are read again on the SLA clock (a `stop_again` deadline every
`actions.stop_again.every`). Trading seen to resume while the incident is P0 and its alerts
still fire proposes that way again, with a note saying why: once per resumption.

Once per resumption: the new proposal's id derives from the stop that ran, so a retried or
repeated check makes the same one; and the watch is not registered again after it, until
that new stop has run (`watch_from` then starts it again).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tasks.actions.approval import offer_links, proposals
from tasks.actions.execute import read_checks
from tasks.notify.slack_queue import tell_slack
from tasks.pagerduty.client import IncidentRef
from tasks.run.judged_again import firing_subjects
from tasks.run.response import post_note_once
from tasks.runtime import Runtime
from tasks.store.deliveries import DEDUP_TTL, PREFIX
from tasks.store.proposals import Proposal, run_proposal_id
from tasks.store.sla_clock import STOP_AGAIN, Deadline
from triage.actions import (
    ActionRefused,
    check_passed,
    describe_check,
    resolve,
    trading_resumed,
)
from triage.sla import is_market_open

log = logging.getLogger(__name__)


def stopped_key(incident_id: str) -> str:
    """Return the key naming the proposal whose stop the incident's watch reads again."""
    return f"{PREFIX}stop-again:{incident_id}"


def watch_from(rt: Runtime, proposal: Proposal, now: datetime) -> bool:
    """Start reading trading again after a way to stop it ran and was verified; say if started."""
    again = rt.policy.actions.stop_again
    if again is None or proposal.action not in rt.policy.actions.ways_to_stop():
        return False
    record = rt.incidents.get(proposal.incident_id) or {}
    rt.redis.set(stopped_key(proposal.incident_id), proposal.id, ex=DEDUP_TTL)
    _next(rt, proposal.incident_id, record, now)
    return True


def _next(rt: Runtime, incident_id: str, record: dict[str, Any], now: datetime) -> None:
    """Register the incident's next read of trading, `every` from now."""
    again = rt.policy.actions.stop_again
    assert again is not None
    due = (now + again.every).isoformat()
    priority, run_id = str(record.get("sla_priority") or ""), str(record.get("run_id") or "")
    title = str(record.get("title") or "")
    rt.clock.register([Deadline(incident_id, STOP_AGAIN, due, priority, run_id, title)])


def check(rt: Runtime, deadline: Deadline, record: dict[str, Any], now: datetime) -> str:
    """Read trading again for an open incident; propose stopping it again when it resumed
    while the P0 cause still fires. Return what was found (for the task's result)."""
    incident_id = deadline.incident_id
    stopped_id = (rt.redis.get(stopped_key(incident_id)) or b"").decode()
    stopped = proposals(rt).get(stopped_id) if stopped_id else None
    if stopped is None:
        return "no stop to read again"
    if str(record.get("sla_priority") or deadline.priority) != "P0":
        return f"no longer P0 ({record.get('sla_priority')}): the watch ends"
    run_id = str(record.get("run_id") or deadline.run_id)
    firing = firing_subjects(rt, run_id, incident_id)
    if not firing:
        return "the cause cleared: the watch ends"
    try:
        resolved = resolve(rt.policy, stopped.action, stopped.target)
    except ActionRefused as exc:
        return f"cannot read it again: {exc}"
    reads = read_checks(resolved)
    resumed = trading_resumed(reads)
    if not resumed or not is_market_open(now, rt.policy.market_hours):
        _next(rt, incident_id, record, now)  # still stopped, unknown, or no trading now
        return "still stopped" if resumed is False else "nothing told; read again later"
    seen = "; ".join(
        f"its check {describe_check(c)} "
        f"{'still passes' if check_passed(c, status, body) else 'no longer passes'} "
        f"({'no answer' if status is None else f'HTTP {status}'}{_said(body)})"
        for c, status, body in reads
    )
    names = [str(getattr(s, "name", "") or getattr(s, "title", "")) for s in firing]
    made = propose_again(rt, stopped, seen, names, now)
    return f"trading resumed: {made.action} proposed again ({made.id})"


def propose_again(
    rt: Runtime, stopped: Proposal, seen: str, firing: list[str], now: datetime
) -> Proposal:
    """Propose the stop that ran once more, and note why; the same on every retry."""
    store = proposals(rt)
    again_id = run_proposal_id(f"{stopped.id}-again", stopped.action, stopped.target)
    why = (
        f"trading resumed while the cause still fires ({', '.join(firing)}): "
        f"{stopped.action} on {stopped.target} ran before ({stopped.id}) and now {seen}"
    )
    proposal = Proposal(
        id=again_id,
        action=stopped.action,
        target=stopped.target,
        incident_id=stopped.incident_id,
        proposed_by=f"responder (rule {stopped.rule or 'stop again'})",
        proposed_at=now.isoformat(),
        expires_at=(now + rt.policy.actions.proposal_ttl).isoformat(),
        rule=stopped.rule,
        why=why,
        condition=stopped.condition,
    )
    if store.add_once(proposal):
        what = f"action {again_id} proposed: {proposal.action} on {proposal.target}: {why}"
        rt.incidents.log(stopped.incident_id, what, "responder", now)
        tell_slack(rt, {"what": "proposals", "incident_id": stopped.incident_id})
        offer_links(rt, stopped.incident_id, [again_id])
    made = store.get(again_id) or proposal
    record = rt.incidents.get(stopped.incident_id) or {}
    priority = str(record.get("sla_priority") or "P0")
    note = rt.voice.stop_again(priority, made, stopped, seen, firing)
    post_note_once(rt, IncidentRef(stopped.incident_id, ""), again_id, "stop_again", note)
    return made


def _said(body: Any) -> str:
    """Return what a JSON answer said of trading, briefly (", trading=active"), or ""."""
    if isinstance(body, dict) and "trading" in body:
        return f", trading={str(body['trading'])[:20]}"
    return ""
