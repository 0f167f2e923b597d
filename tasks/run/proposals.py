"""A run's proposals: the policy's rules over its evidence, made once, the probable origin's
first; those of an automatic rule approved within its limit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.actions import approval
from tasks.run.state import RunState
from tasks.runtime import Runtime
from tasks.store.correlation import CorrelationLedger
from triage.actions import fitting_proposals, origin_first, run_facts
from triage.policy import format_duration
from triage.sla import is_market_open


def propose_actions(
    rt: Runtime,
    state: RunState,
    entries: list[dict[str, Any]],
    now: datetime,
    send: approval.Send | None = None,
) -> list[dict[str, Any]]:
    """Make the run's proposals from the policy's rules (once per run); approve those of an
    automatic rule (within its limit); return them for the note.

    A run without a PagerDuty incident proposes nothing: there is no incident to approve on.
    """
    if not state.incident_id or not rt.policy.actions.propose:
        return []
    market_open = is_market_open(now, rt.policy.market_hours)
    facts = run_facts(
        rt.policy,
        state.classification.priority,
        market_open,
        entries,
        state.classification.rule,
        alert_at=state.deadlines.triggered_at,
    )
    # Of the same action on several services, the probable origin's first (the topology's).
    held = CorrelationLedger(rt.redis).read().find(state.run_id)
    origin = rt.policy.topology.probable_origin(held.services()) if held is not None else None
    fitting = origin_first(fitting_proposals(rt.policy, facts), origin)
    made = approval.propose_for_run(rt, state.run_id, state.incident_id, fitting, now)
    rules = {rule.name: rule for rule in rt.policy.actions.propose}
    # Those an automatic rule approves below are no longer waiting when the e-mails go out.
    approval.offer_links(rt, state.incident_id, [p.id for p in made])
    shown = []
    for p in made:
        rule = rules.get(p.rule)
        ran = ""
        if rule is not None and rule.automatic and send is not None:
            ran = approval.approve_automatic(rt, p, rule, send, now)
        why = p.why
        if rule is not None and rule.automatic and not ran:
            limit = format_duration(rule.at_most_once_per)
            why += f"; not automatic this time: rule {rule.name} runs it at most once per {limit}"
        shown.append(
            {
                "id": p.id,
                "action": p.action,
                "target": p.target,
                "why": why,
                "rule": p.rule,
                "expires": p.expires,
                "automatic": bool(ran),
                "ran": ran,
            }
        )
    return shown
