"""Run one approved action, once: lock its target, set the once-marker, act, verify, record
the audit, note the outcome. A copy that finds the marker set and no outcome knows its
worker died mid-action: it says the outcome is unknown and what to check, and acts no more.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.actions import approval, recheck, stop_again
from tasks.actions.approval import proposals
from tasks.actions.execute import Answer, describe_call, perform, verify
from tasks.actions.validation import run_validation
from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.pagerduty.notes import post_note_once
from tasks.runtime import Runtime
from tasks.store.proposals import APPROVED, BY_HAND, ENDED, NOT_NEEDED, Proposal
from triage.actions import ActionRefused, Resolved, check_url, describe_check, resolve

log = logging.getLogger(__name__)

LOCK_MARGIN_SECONDS = 60  # the lock outlives a worker that died holding it by this much


class TargetBusy(RuntimeError):
    """Another action is acting on the same catalog service: wait for it."""


def run_approved(rt: Runtime, proposal_id: str, owner: str) -> str:
    """Act on an approved proposal exactly once, then note its outcome; return the outcome."""
    store = proposals(rt)
    proposal = store.get(proposal_id)
    if proposal is None:
        return "unknown proposal"
    if proposal.status == APPROVED:
        proposal = gate(rt, proposal)
    if proposal.status == NOT_NEEDED:
        return note_not_needed(rt, proposal)
    if proposal.status == APPROVED:
        proposal = _act_once(rt, proposal, owner)
        if proposal.status == "done" and proposal.verified == "passed":
            # Trading stopped: read again whether it resumes while the cause still fires.
            stop_again.watch_from(rt, proposal, datetime.now(UTC))
    if proposal.status not in ENDED:
        return proposal.status
    note = rt.voice.action_outcome(proposal.status, _facts(rt, proposal))
    post_note_once(rt, IncidentRef(proposal.incident_id, ""), proposal.id, "outcome", note)
    return proposal.status


def gate(rt: Runtime, proposal: Proposal) -> Proposal:
    """Set an approved proposal aside when it is no longer needed; return its record.

    Not once it began to act (its once-marker is set): what happened then is for `_act_once`
    to say, and it never acts again anyway.
    """
    if proposals(rt).began(proposal.id):
        return proposal
    why = recheck.no_longer_needed(rt, proposal)
    return recheck.set_aside(rt, proposal, why, "responder") if why else proposal


def note_not_needed(rt: Runtime, proposal: Proposal) -> str:
    """Note on the incident that an approved action did not run, and why; return the status."""
    note = rt.voice.action_not_needed(
        proposal.action, proposal.target, proposal.approved_by, proposal.reason, proposal.id
    )
    post_note_once(rt, IncidentRef(proposal.incident_id, ""), proposal.id, "not_needed", note)
    return proposal.status


def _act_once(rt: Runtime, proposal: Proposal, owner: str) -> Proposal:
    """Lock the target, set the once-marker, act and verify; return the record with the outcome."""
    store = proposals(rt)
    try:
        resolved = resolve(rt.policy, proposal.action, proposal.target)
    except ActionRefused as exc:  # the policy lost the action between approval and now
        answer = Answer(False, "nothing", str(exc), 0.0)
        return _finish(rt, proposal, "failed", answer, [], "not run")
    hold = resolved.action.timeout + sum((c.within for c in resolved.action.verify), timedelta())
    seconds = int(hold.total_seconds()) + LOCK_MARGIN_SECONDS
    if not store.lock(resolved.service.name, proposal.id, seconds):
        raise TargetBusy(f"another action is acting on {resolved.service.name}")
    try:
        started = datetime.now(UTC)
        if not store.begin(proposal.id, owner):
            # The marker is set before acting: an earlier attempt began and never recorded
            # an outcome. Whether it acted is unknown; acting again could do it twice.
            log.error("action %s: began before and never finished; not run again", proposal.id)
            why = "the worker running it stopped after it began to act"
            answer = Answer(False, describe_call(resolved, rt.settings), why, 0.0)
            return _finish(rt, proposal, "unknown", answer, [], "not run")
        proposal = store.update(proposal.id, lambda p: replace(p, started_at=started.isoformat()))
        assert proposal is not None
        if resolved.action.manual_command:
            # The responder cannot deploy: the approval hands the exact command to a person.
            ran = proposal.command or resolved.action.manual_command
            answer = Answer(True, ran, "not run by the responder: a person runs it", 0.0)
            return _finish(rt, proposal, BY_HAND, answer, [], "not run")
        if rt.settings.actions_dry_run:
            answer = Answer(True, describe_call(resolved, rt.settings), "nothing (dry run)", 0.0)
            return _finish(rt, proposal, "dry-run", answer, [], "not run")
        if resolved.action.validation is not None:  # checks only: its checks are its outcome
            answer, checks = run_validation(rt, resolved.action.validation)
            return _finish(rt, proposal, "done", answer, checks, _verdict(checks))
        answer = perform(resolved, rt.settings)
        checks = verify(resolved) if answer.ok else []
        verified = _verdict(checks) if answer.ok else "not run"
        return _finish(rt, proposal, "done" if answer.ok else "failed", answer, checks, verified)
    finally:
        store.unlock(resolved.service.name, proposal.id)


def ran_out_of_time(rt: Runtime, proposal_id: str) -> str:
    """Record and note that an action ran past its task's time limit: its outcome is unknown.

    The once-marker stays set, so it is never run again; the person checks by hand.
    """
    proposal = proposals(rt).get(proposal_id)
    if proposal is None:
        return "unknown proposal"
    if proposal.status == APPROVED:
        why = "it ran past the worker's task time limit (RESPONDER_TASK_SOFT_TIME_LIMIT)"
        _finish(rt, proposal, "unknown", Answer(False, proposal.action, why, 0.0), [], "not run")
    return run_approved(rt, proposal_id, "-")


def _verdict(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "no checks"
    return "passed" if all(c["passed"] for c in checks) else "failed"


def _finish(
    rt: Runtime,
    proposal: Proposal,
    status: str,
    answer: Answer,
    checks: list[dict[str, Any]],
    verified: str,
) -> Proposal:
    """Record the outcome on the proposal and in the incident's history (its timeline)."""
    # What a service answered may carry anything: redacted before it is stored or shown.
    answer = replace(answer, ran=rt.redact(answer.ran), answer=rt.redact(answer.answer))
    written = proposals(rt).update(
        proposal.id,
        lambda p: replace(
            p,
            status=status,
            ran=answer.ran,
            answer=answer.answer,
            seconds=round(answer.seconds, 3),
            checks=checks,
            verified=verified,
        ),
    )
    what = lines.timeline(
        "action_ran", p=proposal, status=status, ran=answer.ran, answer=answer.answer,
        seconds=answer.seconds, verified=verified,
    )  # fmt: skip
    rt.incidents.log(proposal.incident_id, what, "responder")
    return written or proposal


def _facts(rt: Runtime, proposal: Proposal) -> dict[str, Any]:
    """Return what the outcome note says, from the audit record."""
    action = rt.policy.actions.catalog.get(proposal.action)
    return {
        "action": proposal.action,
        "target": proposal.target,
        "does": action.does if action else proposal.action,
        "ran": proposal.ran,
        "answer": proposal.answer,
        "seconds": proposal.seconds,
        "approved_by": proposal.approved_by,
        "via": proposal.via,
        "proposed_by": proposal.proposed_by,
        "checks": proposal.checks,
        "verified": proposal.verified,
        "to_check": _to_check(rt, proposal),
        "proposal_id": proposal.id,
        "kind": "validation" if action is not None and action.validation else "action",
    }


def _to_check(rt: Runtime, proposal: Proposal) -> list[str]:
    """Say what a person checks when an action's outcome is unknown."""
    try:
        resolved: Resolved = resolve(rt.policy, proposal.action, proposal.target)
    except ActionRefused:
        return [f"whether {proposal.action} on {proposal.target} happened"]
    items = [
        f"{describe_check(check)} at {check_url(resolved.service, check)}"
        for check in resolved.action.verify
    ]
    if resolved.action.docker:
        service = resolved.service.compose_service or resolved.service.name
        items.append(f"the container's state: docker compose ps {service}")
    return items or [f"whether {proposal.ran} happened"]


def approve_if_assigned(
    rt: Runtime, proposal_id: str, approver: str, via: str, send: approval.Send
) -> str:
    """Look up who the incident is assigned to now and take the approval on with that.

    Without a PagerDuty token (outbox mode) nobody can tell: the approval is refused, saying so.
    """
    proposal = proposals(rt).get(proposal_id)
    if proposal is None:
        return "unknown proposal"
    assignees = rt.pagerduty.assignees(IncidentRef(proposal.incident_id, ""))
    if assignees is None:
        why = (
            f"cannot check that {approver} is assigned to the incident: no PagerDuty token "
            "(outbox mode), so nobody's assignment can be read"
        )
        return approval.refuse_unchecked(rt, proposal_id, approver, via, why, send).status
    return approval.approve(rt, proposal_id, approver, via, send, assignees=assignees).status


def note_refused(
    rt: Runtime, proposal_id: str, number: int, approver: str, via: str, why: str
) -> str:
    """Post the note saying an approval was refused and nothing ran (once per refusal)."""
    proposal = proposals(rt).get(proposal_id)
    if proposal is None:
        return "unknown proposal"
    note = rt.voice.action_refused(
        proposal.action, proposal.target, approver, via, why, proposal.id
    )
    incident = IncidentRef(proposal.incident_id, "")
    post_note_once(rt, incident, proposal.id, f"refused-{number}", note)
    return "noted"


def note_waits(
    rt: Runtime, proposal_id: str, count: int, required: int, approver: str, via: str
) -> str:
    """Post the note saying approval `count` of `required` counted and nothing ran (once)."""
    proposal = proposals(rt).get(proposal_id)
    if proposal is None:
        return "unknown proposal"
    note = rt.voice.action_waits(
        proposal.action, proposal.target, count, required, approver, via, proposal.id
    )
    post_note_once(rt, IncidentRef(proposal.incident_id, ""), proposal.id, f"waits-{count}", note)
    return "noted"


def note_already(rt: Runtime, record_id: str, asker: str, via: str, message: str) -> str:
    """Post the note saying a repeated run was already done and runs nothing (once)."""
    proposal = proposals(rt).get(record_id)
    if proposal is None:
        return "unknown proposal"
    note = rt.voice.action_already(proposal.action, proposal.target, asker, via, message)
    post_note_once(rt, IncidentRef(proposal.incident_id, ""), proposal.id, "already", note)
    return "noted"
