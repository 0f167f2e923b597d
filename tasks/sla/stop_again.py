"""The `stop_again` deadline: trading read again after a way to stop it ran (the watch that
tasks.actions.stop_again starts); trading seen to resume while the incident is P0 and its
alerts still fire proposes that way again, with a note saying why, once per resumption.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.actions.approval import offer_links, proposals
from tasks.actions.execute import read_checks
from tasks.actions.stop_again import read_again_later
from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.pagerduty.notes import post_note_once
from tasks.run.judged_again import firing_subjects
from tasks.runtime import Runtime
from tasks.slack_queue import tell_slack
from tasks.store.proposals import Proposal, run_proposal_id
from tasks.store.sla_clock import Deadline
from triage.actions import (
    ActionRefused,
    check_passed,
    describe_check,
    resolve,
    trading_resumed,
)
from triage.sla import is_market_open


def check(rt: Runtime, deadline: Deadline, record: dict[str, Any], now: datetime) -> str:
    """Read trading again for an open incident; propose stopping it again when it resumed
    while the P0 cause still fires. Return what was found (for the task's result)."""
    incident_id = deadline.incident_id
    stopped_id = proposals(rt).stop_to_read_again(incident_id)
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
        read_again_later(rt, incident_id, record, now)  # still stopped, unknown, or no trading now
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
        what = lines.timeline("action_proposed_again", p=proposal, why=why)
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
