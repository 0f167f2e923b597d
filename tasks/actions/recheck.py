"""The execution gate and the withdrawal: an approved action runs only while it is still
needed, and a resolved incident's waiting proposals are withdrawn.

Kept apart from `approval` (who may approve) on purpose: this module decides whether what was
approved still makes sense, by reading the incident's record and re-running the collectors
the proposing rule read, on the catalog service it named.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from collectors.contract import Target
from collectors.registry import run_collector
from tasks.actions.approval import proposals
from tasks.evidence.collect import collector_context
from tasks.notes import lines
from tasks.runtime import Runtime
from tasks.store.proposals import APPROVED, NOT_NEEDED, WAITING, WITHDRAWN, Proposal
from triage.actions import collectors_for, run_facts, unmet
from triage.models import Priority
from triage.sla import is_market_open


def no_longer_needed(rt: Runtime, proposal: Proposal, now: datetime | None = None) -> str:
    """Return why `proposal` must not run now ("" when it still should).

    Its incident must be open, and the condition its rule proposed it on must still hold,
    read again by the same collectors; a condition that cannot be read again is not assumed.
    """
    now = now or datetime.now(UTC)
    record = rt.incidents.get(proposal.incident_id) or {}
    if record.get("status") == "resolved":
        return f"incident {proposal.incident_id} is resolved"
    condition = proposal.condition
    if not condition:
        return ""  # a person's proposal: the person's reason, not a rule's
    service = condition.get("service")
    if service and service not in rt.policy.catalog:
        return f"{service} is no longer in the policy's catalog"
    entries = []
    if service:
        target = Target(services=(rt.policy.catalog[service],))
        ctx = collector_context(rt)
        for name in collectors_for(condition):
            entries.append(run_collector(name, target, ctx).to_dict())
    market_open = is_market_open(now, rt.policy.market_hours)
    facts = run_facts(rt.policy, Priority.P3, market_open, entries)  # rules' priority is fixed
    holds, why = unmet(condition, facts)
    if holds is None:
        return f"its reason cannot be confirmed: {why}"
    return "" if holds else why


def set_aside(rt: Runtime, proposal: Proposal, why: str, by: str) -> Proposal:
    """Record that a waiting or approved proposal will not run because it is no longer needed."""

    def change(p: Proposal) -> Proposal | None:
        if p.status not in (WAITING, APPROVED):
            return None
        return replace(p, status=NOT_NEEDED, reason=why, approved_by=p.approved_by or by)

    written = proposals(rt).update(proposal.id, change)
    if written is None:
        return proposals(rt).get(proposal.id) or proposal
    what = lines.timeline("action_not_needed", p=proposal, why=why)
    rt.incidents.log(proposal.incident_id, what, by)
    return written


def withdraw_waiting(rt: Runtime, incident_id: str, now: datetime) -> list[Proposal]:
    """Withdraw the proposals of `incident_id` still waiting for a person; return them."""
    store = proposals(rt)
    withdrawn = []
    for proposal in store.recent(limit=1000):
        if proposal.incident_id != incident_id or proposal.status != WAITING:
            continue

        def change(p: Proposal) -> Proposal | None:
            if p.status != WAITING:
                return None
            return replace(p, status=WITHDRAWN, reason=f"incident {incident_id} resolved")

        if (written := store.update(proposal.id, change)) is not None:
            what = lines.timeline("action_withdrawn", p=proposal)
            rt.incidents.log(incident_id, what, "responder", now)
            withdrawn.append(written)
    return withdrawn
