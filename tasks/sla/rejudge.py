"""What the SLA clock does at an incident's `rejudge` deadline (the market opened or closed):
classify again what still fires, act on a rise at once, apply a fall only while no person has
acknowledged the incident, and register the next judgement.

A rise: a note saying why, PagerDuty's priority and urgency raised, the new priority's deadlines
counted from this moment (its status updates, its management notification, the trading desk's
e-mail in market hours). A fall: the same, with the new priority's urgency rules (the clock's
`lower_urgency`), unless a person acknowledged it: then the note says what the priority would
now be and a person decides. Each effect has its once-marker, keyed by the deadline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.pagerduty.incidents import priority_id
from tasks.pagerduty.notes import post_note_once
from tasks.run import judged_again
from tasks.run.state import existing_run, save_run
from tasks.runtime import Runtime
from tasks.store import sla_clock
from tasks.store.sla_clock import REJUDGE, Deadline
from triage.communication import DESK_ALERT, desk_told
from triage.models import Priority
from triage.rejudge import Change, Judgement, decide, judge, market_open_at
from triage.sla import Deadlines, deadlines

# The clocks of the priority an incident leaves: the new priority's replace them.
REPLACED = tuple(kind for kind in sla_clock.KINDS if kind != REJUDGE)


def act(rt: Runtime, deadline: Deadline, record: dict[str, Any], now: datetime) -> str:
    """Judge the incident again at `now`; return what was done (for the task's result)."""
    incident = IncidentRef(deadline.incident_id, str(record.get("incident_key") or ""))
    firing = judged_again.firing_subjects(rt, deadline.run_id, deadline.incident_id)
    judged = judge(firing, rt.policy, now)
    if judged is None:  # cleared since: nothing to judge, and nothing later either
        return "nothing of it fires any more: nothing changes"
    was = Priority(record.get("sla_priority") or deadline.priority)
    acknowledged = acknowledged_now(record)
    judgement = decide(was, judged, acknowledged, market_open_at(now, rt.policy))
    applied = judgement.change in (Change.RISE, Change.FALL)
    step = f"{deadline.kind}@{deadline.due}"
    done = f"still {was}"
    if judgement.change is not Change.SAME:
        due = deadlines(judged.priority, now, rt.policy) if applied else None
        by = str(record.get("acknowledged_by") or "someone") if acknowledged else ""
        note = rt.voice.rejudged(judgement, deadline.title, now, due, by)
        # The note first: whoever sees the page change finds why beside it.
        post_note_once(rt, incident, deadline.run_id or deadline.incident_id, step, note)
        if due is not None:
            apply(rt, incident, deadline, judgement, due, record, now)
        else:
            what = lines.timeline("judged_again_left", would_be=judged.priority, was=was)
            rt.incidents.log(deadline.incident_id, what, "responder")
        done = note.splitlines()[0]
    current = judged.priority if applied else was
    rt.clock.register(
        judged_again.next_deadline(
            rt, deadline.incident_id, deadline.run_id, deadline.title, current.value, now
        )
    )
    return done


def apply(
    rt: Runtime,
    incident: IncidentRef,
    deadline: Deadline,
    judgement: Judgement,
    due: Deadlines,
    record: dict[str, Any],
    now: datetime,
) -> None:
    """Give the incident its new priority: PagerDuty's priority (and urgency, on a rise), the
    new priority's clocks from `now`, the record and the run."""
    step = f"{deadline.kind}@{deadline.due}"
    priority = judgement.now.priority
    set_priority(rt, incident, priority, f"{step}:priority")
    if judgement.change is Change.RISE and not due.deferred:  # a held P2/P3 waits, unpaged
        effect = f"{step}:urgency"
        if not rt.deliveries.effect_done(deadline.incident_id, effect):
            if record.get("urgency") != "high":
                rt.pagerduty.set_urgency(incident, "high")
                what = lines.timeline("urgency_raised")
                rt.incidents.log(deadline.incident_id, what, "responder")
            rt.deliveries.mark_effect(deadline.incident_id, effect)
    acknowledged = acknowledged_now(record)
    rt.clock.cancel(deadline.incident_id, REPLACED)
    found = [
        d
        for d in sla_clock.deadlines_for(
            deadline.incident_id, deadline.run_id, deadline.title, due.to_dict()
        )
        if not (acknowledged and d.kind == "acknowledge")  # a person has acknowledged it
    ]
    if desk_told(priority, now, rt.policy):  # "Immediate notification ... during market hours"
        found.append(
            Deadline(
                deadline.incident_id,
                DESK_ALERT,
                now.isoformat(),
                priority.value,
                deadline.run_id,
                deadline.title,
            )
        )
    rt.clock.register(found)
    # Its SLA counts from now; an acknowledged one keeps its start, or the report would lose
    # the acknowledgement (moments before the start belong to an earlier cycle).
    kept = str(record.get("sla_started_at") or "") if acknowledged else ""
    started = kept or now.isoformat()
    rt.incidents.mark_clock(deadline.incident_id, priority.value, started, deadline.run_id)
    if (state := existing_run(rt, deadline.run_id)) is not None:
        state.classification, state.deadlines = judgement.now, due
        save_run(rt, state)
    what = lines.timeline(
        "judged_again", was=judgement.was, now=priority, market_open=judgement.market_open
    )
    rt.incidents.log(deadline.incident_id, what, "responder")


def acknowledged_now(record: dict[str, Any]) -> bool:
    """Return True when a person acknowledged the incident in its current cycle (since its
    clock started: an acknowledgement before a reopen does not count)."""
    at, started = record.get("acknowledged_at"), record.get("sla_started_at")
    if not at:
        return False
    return not started or datetime.fromisoformat(at) >= datetime.fromisoformat(started)


def set_priority(rt: Runtime, incident: IncidentRef, priority: Priority, effect: str) -> str:
    """Set the incident's PagerDuty priority to the account's name for `priority`, once."""
    wanted = rt.policy.pagerduty.priorities.get(priority.value, "")
    if not rt.policy.pagerduty.set_priority or incident.id is None or not wanted:
        return "not set: the policy sets no priority"
    if rt.deliveries.effect_done(incident.id, effect):
        return "set before"
    found = priority_id(rt, wanted)
    if found is None:
        rt.deliveries.mark_effect(incident.id, effect, f"the account has no priority {wanted}")
        return f"the account has no priority {wanted}"
    rt.pagerduty.set_priority(incident, found)
    rt.deliveries.mark_effect(incident.id, effect, found)
    return f"priority {wanted}"
