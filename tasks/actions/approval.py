"""Propose, approve, deny: the one path every approval takes (CLI, PagerDuty workflow, and
later a note command or Slack), ending in one task on the actions queue.

Imported by the receiver, so it loads nothing of the worker's: tasks are sent by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.names import ACT, ACTION_REFUSED
from tasks.notify.slack_queue import tell_slack
from tasks.runtime import Runtime
from tasks.store.proposals import APPROVED, ENDED, WAITING, Proposal, ProposalStore, new_id
from triage.actions import ActionRefused, expired, may_approve, resolve

# A run (CLI `action run`, a workflow) of the same action on the same target of an incident
# within this window is the same run: a retried POST or a second click acts no more.
RUN_ONCE_WITHIN = timedelta(minutes=10)
# Sends a task by name with its arguments (Celery's send_task, routed to the actions queue).
Send = Callable[[str, list[Any]], None]


@dataclass(frozen=True)
class Outcome:
    """What an approval path answers: approved (the task is queued), already, refused, unknown."""

    status: str
    message: str
    proposal_id: str = ""

    @property
    def ok(self) -> bool:
        """Return True when the action was approved now."""
        return self.status == "approved"


def proposals(rt: Runtime) -> ProposalStore:
    """Return the proposal store on the runtime's Redis."""
    return ProposalStore(rt.redis)


def propose(
    rt: Runtime,
    action_name: str,
    target: str | None,
    incident_id: str,
    proposed_by: str,
    now: datetime | None = None,
) -> Proposal:
    """Record a proposal of a catalog action on a catalog target; raise ActionRefused if none."""
    now = now or datetime.now(UTC)
    resolved = resolve(rt.policy, action_name, target)
    proposal = Proposal(
        id=new_id(),
        action=resolved.action.name,
        target=resolved.service.name,
        incident_id=incident_id,
        proposed_by=proposed_by,
        proposed_at=now.isoformat(),
        expires_at=(now + rt.policy.actions.proposal_ttl).isoformat(),
    )
    proposals(rt).add(proposal)
    what = f"action {proposal.id} proposed: {proposal.action} on {proposal.target}"
    rt.incidents.log(incident_id, what, proposed_by, now)
    # Its Approve / Deny buttons in the incident's Slack thread (when it has one; once).
    tell_slack(rt, {"what": "proposals", "incident_id": incident_id})
    return proposal


def approve(
    rt: Runtime,
    proposal_id: str,
    approver: str,
    via: str,
    send: Send,
    now: datetime | None = None,
) -> Outcome:
    """Approve a proposal: check it is known, unexpired and `approver` may; then queue it once.

    A refusal (not allowed, expired) is noted on the incident and runs nothing; a second
    approval answers who did it already and runs nothing.
    """
    now = now or datetime.now(UTC)
    store = proposals(rt)
    proposal = store.get(proposal_id)
    if proposal is None:
        return Outcome("unknown", f"no proposal {proposal_id!r} (unknown or past retention)")
    if proposal.status != WAITING:
        return _not_waiting(proposal)
    try:
        action = resolve(rt.policy, proposal.action, proposal.target).action
    except ActionRefused as exc:  # the policy changed since it was proposed
        return _refuse(rt, proposal, approver, via, str(exc), send, now)
    if not may_approve(action, approver):
        allowed = ", ".join(action.approvers)
        why = f"{approver} may not approve {action.name} (allowed: {allowed})"
        return _refuse(rt, proposal, approver, via, why, send, now)
    if expired(proposal.expires, now):
        why = f"the proposal expired at {proposal.expires:%Y-%m-%d %H:%M} UTC"
        return _refuse(rt, proposal, approver, via, why, send, now)
    if not store.approve(proposal.id, approver, via, now):  # another approval came first
        latest = store.get(proposal.id)
        return _not_waiting(latest) if latest is not None else Outcome("unknown", "vanished")
    what = f"action {proposal.id} approved: {proposal.action} on {proposal.target} (via {via})"
    rt.incidents.log(proposal.incident_id, what, approver, now)
    send(ACT, [proposal.id])
    return Outcome("approved", f"approved: {proposal.action} on {proposal.target}", proposal.id)


def deny(rt: Runtime, proposal_id: str, who: str, via: str, now: datetime | None = None) -> Outcome:
    """Deny a waiting proposal for good; it never runs."""
    now = now or datetime.now(UTC)
    store = proposals(rt)
    proposal = store.get(proposal_id)
    if proposal is None:
        return Outcome("unknown", f"no proposal {proposal_id!r} (unknown or past retention)")
    if not store.close(proposal.id, "denied", who, f"denied by {who} via {via}"):
        latest = store.get(proposal.id)
        return _not_waiting(latest or proposal)
    what = f"action {proposal.id} denied: {proposal.action} on {proposal.target} (via {via})"
    rt.incidents.log(proposal.incident_id, what, who, now)
    return Outcome("denied", f"denied: {proposal.action} on {proposal.target}", proposal.id)


def run(
    rt: Runtime,
    action_name: str,
    target: str | None,
    incident_id: str,
    approver: str,
    via: str,
    send: Send,
    now: datetime | None = None,
) -> Outcome:
    """Propose and approve at once (an operator at a terminal, a workflow a person ran).

    An action or target outside the catalog is recorded as refused, noted on the incident,
    and runs nothing.
    """
    now = now or datetime.now(UTC)
    try:
        proposal = propose(rt, action_name, target, incident_id, approver, now)
    except ActionRefused as exc:
        record = Proposal(
            id=new_id(),
            action=_clipped(action_name),
            target=_clipped(target or ""),
            incident_id=incident_id,
            proposed_by=approver,
            proposed_at=now.isoformat(),
            expires_at=now.isoformat(),
        )
        proposals(rt).add(record)
        return _refuse(rt, record, approver, via, str(exc), send, now, final=True)
    # Two people running the same workflow at 3 a.m., or PagerDuty retrying its POST, would
    # each propose anew: the first within the window runs, the others are told it did.
    key = f"{incident_id}:{proposal.action}:{proposal.target}"
    first = proposals(rt).claim_run(key, proposal.id, int(RUN_ONCE_WITHIN.total_seconds()))
    if first is not None:
        earlier = proposals(rt).get(first)
        who = earlier.approved_by or earlier.proposed_by if earlier is not None else "someone"
        proposals(rt).close(proposal.id, "duplicate", approver, f"a second run of {first}")
        return Outcome(
            "already",
            f"already approved by {who} ({first}): {proposal.action} on {proposal.target} "
            f"runs once within {int(RUN_ONCE_WITHIN.total_seconds() // 60)} minutes",
            first,
        )
    return approve(rt, proposal.id, approver, via, send, now)


def _refuse(
    rt: Runtime,
    proposal: Proposal,
    approver: str,
    via: str,
    why: str,
    send: Send,
    now: datetime,
    final: bool = False,
) -> Outcome:
    """Record a refused approval, note it on the incident (by the worker), run nothing."""
    store = proposals(rt)
    if final:
        store.close(proposal.id, "refused", approver, why)
        number = 1
    else:
        number = store.count_refusal(proposal.id, why)
    rt.incidents.log(proposal.incident_id, f"action {proposal.id} refused: {why}", approver, now)
    send(ACTION_REFUSED, [proposal.id, number, approver, via, why])
    return Outcome("refused", f"refused: {why}; nothing ran", proposal.id)


def _not_waiting(proposal: Proposal) -> Outcome:
    if proposal.status == APPROVED or proposal.status in ENDED:
        return Outcome(
            "already",
            f"already done by {proposal.approved_by} (via {proposal.via}, {proposal.status}); "
            "nothing runs again",
            proposal.id,
        )
    return Outcome(
        "already", f"already {proposal.status}: {proposal.reason}; nothing runs", proposal.id
    )


def _clipped(name: str) -> str:
    """Return a name that was refused as the record keeps it: one line, at most 60 characters."""
    flat = name.replace("\n", " ").replace("\r", " ")
    return flat[:60] + ("..." if len(flat) > 60 else "")
