"""Propose, approve, deny: the one path every approval takes (CLI, PagerDuty workflow, and
later a note command or Slack), ending in one task on the actions queue.

Imported by the receiver, so it loads nothing of the worker's: tasks are sent by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.lanes import notify_queue
from tasks.names import (
    ACT,
    ACTION_ALREADY,
    ACTION_REFUSED,
    ACTION_WAITS,
    APPROVAL_LINKS,
    APPROVE_IF_ASSIGNED,
)
from tasks.notes import lines
from tasks.runtime import Runtime
from tasks.slack_queue import tell_slack
from tasks.store import runs
from tasks.store.proposals import (
    APPROVED,
    ENDED,
    WAITING,
    Proposal,
    ProposalStore,
    new_id,
    run_proposal_id,
)
from triage.actions import (
    APPROVED_ALREADY,
    AUTHOR_NOT_SECOND,
    ActionRefused,
    Fitting,
    condition_of,
    expired,
    may_approve,
    needs_assignees,
    resolve,
)
from triage.policy import ProposalRule, format_duration

log = logging.getLogger(__name__)

# A run (CLI `action run`, a workflow) of the same action on the same target of an incident
# within this window is the same run: a retried POST or a second click acts no more.
RUN_ONCE_WITHIN = timedelta(minutes=10)
# Sends a task by name with its arguments (Celery's send_task, routed to the actions queue).
Send = Callable[[str, list[Any]], None]
# Who approves what a policy rule marked automatic; the rule's name goes into `via`.
AUTOMATIC = "policy (automatic)"


@dataclass(frozen=True)
class Outcome:
    """What an approval path answers: approved (the task is queued), partly (approved by
    fewer people than the action needs: it waits), checking (the worker checks the approver
    is assigned to the incident; a note tells), already, refused, unknown."""

    status: str
    answer: str  # the macro of notes' _approval_answers.txt.j2 that says it
    facts: Mapping[str, Any] = field(default_factory=dict)
    proposal_id: str = ""
    # The record of this very request when it differs from `proposal_id` (a repeated run
    # names the first run's proposal; its own record says it was a duplicate).
    record_id: str = ""

    @property
    def message(self) -> str:
        """Return what the outcome says, naming people as they are named."""
        return self.said()

    def said(self, name: Callable[[str], str] = lines.as_named) -> str:
        """Return what the outcome says, each person it names shown by `name`."""
        return lines.approval_answer(self.answer, name=name, **self.facts)

    @property
    def ok(self) -> bool:
        """Return True when the action was approved now (or will be, if the check passes)."""
        return self.status in ("approved", "checking")


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
    announce: bool = True,
) -> Proposal:
    """Record a proposal of a catalog action on a catalog target; raise ActionRefused if none.

    `announce`: show its Approve / Deny buttons in Slack; not for one approved at once (`run`).
    """
    now = now or datetime.now(UTC)
    resolved = resolve(rt.policy, action_name, target)
    if resolved.action.manual_command:
        # Its command needs a revision the git check read; a person has none to give here.
        raise ActionRefused(
            f"{resolved.action.name} is proposed by the policy when the git check finds a "
            "recent deploy (the revision before it fills the command): run it from there"
        )
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
    what = lines.timeline("action_proposed", p=proposal)
    rt.incidents.log(incident_id, what, proposed_by, now)
    # Its Approve / Deny buttons in the incident's Slack thread (when it has one; once), and
    # each named approver's own link to the page.
    if announce:
        tell_slack(rt, {"what": "proposals", "incident_id": incident_id})
        offer_links(rt, incident_id, [proposal.id])
    return proposal


def offer_links(rt: Runtime, incident_id: str, proposal_ids: Sequence[str]) -> bool:
    """Queue the e-mails that give each named approver their own approval link; say if queued.

    One task per set of proposals; the e-mails' once-records make a repeat send nothing.
    """
    if rt.send_task is None or not proposal_ids or not rt.settings.link_secret.reveal():
        return False
    # An e-mail, so never on a queue the urgent worker reads (a hung SMTP server would hold one
    # of its slots for a whole timeout); the urgent notify queue, as someone waits to approve.
    queue = notify_queue(rt.settings.queue, "P0")
    try:
        rt.send_task(APPROVAL_LINKS, [incident_id, list(proposal_ids)], queue)
    except Exception:  # the proposals stand: Slack, a note or the CLI still approve them
        log.exception("cannot queue the approval links of incident %s", incident_id)
        return False
    return True


def propose_for_run(
    rt: Runtime, run_id: str, incident_id: str, fitting: Sequence[Fitting], now: datetime
) -> list[Proposal]:
    """Record the proposals a run's policy rules make, once per run; return them.

    A retried evidence task gets the same proposals back: the run's list is kept (SET NX) and
    each id is derived from the run, the action and the target, so none is made twice.
    """
    store = proposals(rt)
    if (kept := runs.proposal_ids(rt.redis, run_id)) is not None:
        return [p for p in map(store.get, kept) if p is not None]
    made = []
    for fit in fitting:
        proposal = Proposal(
            id=run_proposal_id(run_id, fit.action, fit.target),
            action=fit.action,
            target=fit.target,
            incident_id=incident_id,
            proposed_by=f"responder (rule {fit.rule.name})",
            proposed_at=now.isoformat(),
            expires_at=(now + rt.policy.actions.proposal_ttl).isoformat(),
            rule=fit.rule.name,
            why=fit.why,
            condition=condition_of(fit.rule, fit.service),
            command=fit.command,
        )
        if store.add_once(proposal):
            what = lines.timeline("action_proposed", p=proposal, rule=fit.rule.name, why=fit.why)
            rt.incidents.log(incident_id, what, "responder", now)
        made.append(store.get(proposal.id) or proposal)
    if (first := runs.keep_proposal_ids(rt.redis, run_id, [p.id for p in made])) is not None:
        # Another copy of the task recorded the run's proposals a moment earlier: use those.
        return [p for p in map(store.get, first) if p is not None]
    return made


def approve(
    rt: Runtime,
    proposal_id: str,
    approver: str,
    via: str,
    send: Send,
    now: datetime | None = None,
    assignees: Sequence[str] | None = None,
    by_rule: str = "",
    incident_id: str | None = None,
) -> Outcome:
    """Approve a proposal: check it is known, unexpired and `approver` may; then queue it once.

    A refusal (not allowed, expired) is noted on the incident and runs nothing; a second
    approval answers who did it already and runs nothing. When only the incident's current
    assignees may approve and `assignees` is None (not looked up yet: the receiver does not
    call PagerDuty), the worker looks them up and comes back here with them. `by_rule`: the
    policy approves it (AUTOMATIC), allowed when that rule is automatic for this action.
    `incident_id`: the incident the approval came from (a note on it); a proposal of another
    incident is unknown there, as on the incident page.
    """
    now = now or datetime.now(UTC)
    store = proposals(rt)
    proposal = store.get(proposal_id)
    if proposal is None or (incident_id is not None and proposal.incident_id != incident_id):
        return Outcome("unknown", "unknown", {"proposal_id": proposal_id})
    if proposal.status != WAITING:
        return _not_waiting(proposal)
    try:
        action = resolve(rt.policy, proposal.action, proposal.target).action
    except ActionRefused as exc:  # the policy changed since it was proposed
        return _refuse(rt, proposal, approver, via, str(exc), send, now)
    if expired(proposal.expires, now):
        why = f"the proposal expired at {proposal.expires:%Y-%m-%d %H:%M} UTC"
        return _refuse(rt, proposal, approver, via, why, send, now)
    if by_rule:
        rule = next((r for r in rt.policy.actions.propose if r.name == by_rule), None)
        if rule is None or not rule.automatic or rule.action != action.name:
            why = f"no automatic rule {by_rule!r} runs {action.name} (the policy changed)"
            return _refuse(rt, proposal, approver, via, why, send, now)
    elif assignees is None and needs_assignees(action, approver):
        send(APPROVE_IF_ASSIGNED, [proposal.id, approver, via])
        facts = {"approver": approver, "incident_id": proposal.incident_id}
        return Outcome("checking", "checking", facts, proposal.id)
    if not by_rule and not may_approve(action, approver, assignees or ()):
        # Who would be allowed is never said: not to the requester, not in a note or the
        # timeline anyone with the page link reads. The policy file says it to operators.
        why = not_allowed(approver, action.name)
        if assignees is not None:
            why += " (not assigned to the incident)"
        return _refuse(rt, proposal, approver, via, why, send, now)
    required = 1 if by_rule else action.approvals_required
    said, written = store.add_approval(proposal.id, approver, via, now, required)
    if said == APPROVED_ALREADY:
        facts = {"approver": approver, "action": proposal.action}
        return Outcome("already", "approved_already_by_you", facts, proposal.id)
    if said == AUTHOR_NOT_SECOND:
        why = f"{not_allowed(approver, action.name)} as its second approver: {said}"
        return _refuse(rt, proposal, approver, via, why, send, now)
    if said not in ("counted", "approved", "not waiting"):  # e.g. named another way
        why = f"{not_allowed(approver, action.name)} as its next approver: {approver} {said}"
        return _refuse(rt, proposal, approver, via, why, send, now)
    if said == "not waiting" or written is None:  # another approval came first
        latest = store.get(proposal.id)
        return _not_waiting(latest) if latest is not None else Outcome("unknown", "vanished")
    if said == "counted":
        count = len(written.approvals)
        what = lines.timeline(
            "action_approved_partly", p=proposal, count=count, required=required, via=via
        )
        rt.incidents.log(proposal.incident_id, what, approver, now)
        send(ACTION_WAITS, [proposal.id, count, required, approver, via])
        facts = {"p": proposal, "count": count, "required": required}
        return Outcome("partly", "partly", facts, proposal.id)
    what = lines.timeline("action_approved", p=proposal, via=via)
    rt.incidents.log(proposal.incident_id, what, approver, now)
    send(ACT, [proposal.id])
    return Outcome("approved", "approved", {"p": proposal}, proposal.id)


def not_allowed(who: str, action_name: str) -> str:
    """Say that `who` may not approve an action, and nothing of who may."""
    return f"not allowed: {who} may not approve {action_name}"


def approve_automatic(
    rt: Runtime, proposal: Proposal, rule: ProposalRule, send: Send, now: datetime
) -> str:
    """Approve a proposal an automatic rule made, unless the rule ran on its target within
    its `at_most_once_per`; return what the evidence note says of it ("" when it waits for a
    person, as any proposal does, because the limit held it back)."""
    store = proposals(rt)
    if proposal.status != WAITING:  # a retry of the evidence task: approved the first time
        return "approved by the policy at once" if proposal.approved_by == AUTOMATIC else ""
    seconds = max(1, int(rule.at_most_once_per.total_seconds()))
    held = store.claim_automatic(rule.name, proposal.target, proposal.id, seconds)
    if held is not None:
        limit = format_duration(rule.at_most_once_per)
        what = lines.timeline("action_held", p=proposal, rule=rule.name, limit=limit, held=held)
        rt.incidents.log(proposal.incident_id, what, "responder", now)
        return ""
    via = f"automatic (rule {rule.name})"
    outcome = approve(rt, proposal.id, AUTOMATIC, via, send, now, by_rule=rule.name)
    return "approved by the policy at once" if outcome.ok else f"not run: {outcome.message}"


def refuse_unchecked(
    rt: Runtime, proposal_id: str, approver: str, via: str, why: str, send: Send
) -> Outcome:
    """Refuse an approval whose approver could not be checked (e.g. no PagerDuty to ask)."""
    proposal = proposals(rt).get(proposal_id)
    if proposal is None:
        return Outcome("unknown", "unknown", {"proposal_id": proposal_id})
    if proposal.status != WAITING:
        return _not_waiting(proposal)
    return _refuse(rt, proposal, approver, via, why, send, datetime.now(UTC))


def deny(
    rt: Runtime,
    proposal_id: str,
    who: str,
    via: str,
    now: datetime | None = None,
    operator: bool = False,
) -> Outcome:
    """Deny a waiting proposal for good; it never runs.

    A denial takes the standing of an approval: `who` must be one the action's `approvers`
    name (or `anyone`). `operator`: the CLI at a terminal, trusted as it is for approvals.
    """
    now = now or datetime.now(UTC)
    store = proposals(rt)
    proposal = store.get(proposal_id)
    if proposal is None:
        return Outcome("unknown", "unknown", {"proposal_id": proposal_id})
    if not operator:
        try:
            action = resolve(rt.policy, proposal.action, proposal.target).action
        except ActionRefused:  # no longer in the catalog: it cannot run anyway
            action = None
        if action is not None and not may_approve(action, who, ()):
            facts = {"who": who, "action": action.name}
            return Outcome("refused", "may_not_deny", facts, proposal.id)
    if not store.close(proposal.id, "denied", who, f"denied by {who} via {via}"):
        latest = store.get(proposal.id)
        return _not_waiting(latest or proposal)
    what = lines.timeline("action_denied", p=proposal, via=via)
    rt.incidents.log(proposal.incident_id, what, who, now)
    return Outcome("denied", "denied", {"p": proposal}, proposal.id)


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
        # Announced after the approval below, only if it still waits (refused, or checking the
        # assignees): a Slack worker quicker than the approval would show buttons for an action
        # already running (its outcome's note reaches the thread).
        proposal = propose(rt, action_name, target, incident_id, approver, now, announce=False)
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
    first = proposals(rt).claim_run(
        _run_key(proposal), proposal.id, int(RUN_ONCE_WITHIN.total_seconds())
    )
    if first is not None:
        earlier = proposals(rt).get(first)
        who = earlier.approved_by or earlier.proposed_by if earlier is not None else "someone"
        proposals(rt).close(proposal.id, "duplicate", approver, f"a second run of {first}")
        minutes = int(RUN_ONCE_WITHIN.total_seconds() // 60)
        facts = {"who": who, "first": first, "p": proposal, "minutes": minutes}
        return Outcome("already", "run_already", facts, first, proposal.id)
    outcome = approve(rt, proposal.id, approver, via, send, now)
    if outcome.status != "approved":  # it may still wait for someone allowed to approve it
        tell_slack(rt, {"what": "proposals", "incident_id": incident_id})
    return outcome


def run_by_note(
    rt: Runtime,
    action_name: str,
    target: str | None,
    incident_id: str,
    author: str,
    send: Send,
    now: datetime | None = None,
) -> Outcome:
    """Take a note's `/run <action> [<target>]` down the one path: proposed by the note's
    author and approved by them, refused like `/approve` when not allowed.

    A repeat within the run window is answered on the incident: already done, by whom.
    """
    outcome = run(rt, action_name, target, incident_id, author, "note", send, now)
    if outcome.status == "already" and outcome.record_id:
        send(ACTION_ALREADY, [outcome.record_id, author, "note", outcome.message])
    return outcome


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
    if approver == proposal.proposed_by:
        # A run (proposed and approved by one person) refused holds no claim: an allowed
        # person's run next is no "already" of it. Someone else's refused approval of a
        # proposal leaves its claim alone.
        store.release_run(_run_key(proposal), proposal.id)
    what = lines.timeline("action_refused", p=proposal, why=why)
    rt.incidents.log(proposal.incident_id, what, approver, now)
    send(ACTION_REFUSED, [proposal.id, number, approver, via, why])
    return Outcome("refused", "refused", {"why": why}, proposal.id)


def _run_key(proposal: Proposal) -> str:
    """Return what a run claims: the same action on the same target of an incident."""
    return f"{proposal.incident_id}:{proposal.action}:{proposal.target}"


def _not_waiting(proposal: Proposal) -> Outcome:
    if proposal.status == APPROVED or proposal.status in ENDED:
        return Outcome("already", "done_already", {"p": proposal}, proposal.id)
    return Outcome("already", "closed_already", {"p": proposal}, proposal.id)


def _clipped(name: str) -> str:
    """Return a name that was refused as the record keeps it: one line, at most 60 characters."""
    flat = name.replace("\n", " ").replace("\r", " ")
    return flat[:60] + ("..." if len(flat) > 60 else "")
