"""A run's first response: its PagerDuty incident found (or opened, and given our priority),
the first-response note posted once, the security team called in, the SLA clock started and
the incident's Slack thread queued."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tasks.evidence.links import bundle_location
from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.pagerduty.incidents import SEVERITY, find_incident, priority_id
from tasks.pagerduty.notes import post_note_once
from tasks.run import judged_again
from tasks.run.security import SECURITY_REQUEST, request_security_team, security_call
from tasks.run.state import RunState, existing_run, record_failure, save_run
from tasks.runtime import Runtime
from tasks.slack_queue import tell_slack
from tasks.store import sla_clock
from tasks.store.slack import SlackThreads
from triage.communication import DESK_ALERT, channels_for, desk_told


def resolve_incident(rt: Runtime, state: RunState) -> IncidentRef | None:
    """Find the run's PagerDuty incident by key and remember its id."""
    if state.incident_id:
        return state.incident
    incident = find_incident(rt, state.incident_key)
    if incident is not None and incident.id:
        state.incident_id = incident.id
        save_run(rt, state)
        rt.deliveries.update(state.delivery_id, incident_id=incident.id)
    return incident


def trigger_incident(rt: Runtime, state: RunState, now: datetime) -> bool:
    """Open the run's incident through the Events API once, when the policy says to trigger.

    Return True when an event was sent (the caller then looks the incident up again).
    """
    if rt.policy.pagerduty.incident != "trigger" or not state.incident_key:
        return False
    if rt.deliveries.effect_done(state.run_id, "trigger"):
        return False
    priority = state.classification.priority
    event = {
        "event_action": "trigger",
        "dedup_key": state.incident_key,
        "payload": {
            "summary": rt.voice.event_summary(priority, state.title),
            "source": "eafix-responder",
            "severity": SEVERITY[priority],
            "custom_details": {
                "why": state.classification.reason,
                "delivery": state.delivery_id,
            },
        },
        "links": [
            {"href": bundle_location(rt.settings, state.run_id, now), "text": "Evidence bundle"}
        ],
    }
    rt.deliveries.begin_effect(state.run_id, "trigger")
    rt.pagerduty.trigger(event)
    rt.deliveries.mark_effect(state.run_id, "trigger", state.incident_key)
    return True


def set_incident_priority(rt: Runtime, state: RunState, incident: IncidentRef) -> None:
    """Set the incident's PagerDuty priority from ours once, when the account has priorities."""
    wanted = rt.policy.pagerduty.priorities.get(state.classification.priority, "")
    if not rt.policy.pagerduty.set_priority or incident.id is None or not wanted:
        return
    if rt.deliveries.effect_done(state.run_id, "priority"):
        return
    found = priority_id(rt, wanted)
    if found is None:
        rt.deliveries.mark_effect(state.run_id, "priority", f"the account has no priority {wanted}")
        return
    rt.pagerduty.set_priority(incident, found)
    rt.deliveries.mark_effect(state.run_id, "priority", found)


def start_clock(rt: Runtime, state: RunState) -> None:
    """Register the run's SLA deadlines for its incident (again on a reopen: they move)."""
    if state.incident_id:
        due = state.deadlines.to_dict()
        if rt.settings.outbox_mode:  # no PagerDuty webhook says it triggered again
            rt.incidents.begin_cycle(
                state.incident_id, state.title, state.incident_key, state.deadlines.triggered_at
            )
        found = sla_clock.deadlines_for(state.incident_id, state.run_id, state.title, due)
        # Judged again at the market's next open or close, when that changes its priority.
        found += judged_again.next_deadline(
            rt, state.incident_id, state.run_id, state.title, due["priority"],
            state.deadlines.triggered_at,
        )  # fmt: skip
        # "Trading Desk: Immediate notification for P0/P1 incidents during market hours": an
        # e-mail at the clock's next tick (tasks.notify.desk).
        triggered = state.deadlines.triggered_at
        if desk_told(state.deadlines.priority, triggered, rt.policy):
            found.append(
                sla_clock.Deadline(
                    state.incident_id,
                    DESK_ALERT,
                    triggered.isoformat(),
                    due["priority"],
                    state.run_id,
                    state.title,
                )
            )
        rt.clock.register(found)
        rt.incidents.mark_clock(
            state.incident_id, due["priority"], due["triggered_at"], state.run_id
        )


def post_first_note(
    rt: Runtime, state: RunState, incident: IncidentRef | None, now: datetime | None = None
) -> None:
    """Post the first-response note once per run, as of `now` (default: the clock's now)."""
    if incident is None:
        record_failure(
            rt,
            state,
            "first_note",
            f"no PagerDuty incident with incident_key={state.incident_key} "
            f"after {rt.settings.incident_lookup_attempts} lookups",
        )
        return
    if rt.deliveries.effect_done(state.run_id, "first_note"):
        return
    security = security_call(rt.policy, state)
    # A reopened incident's new run: the team was called in (or asked for) the first time.
    before = bool(
        security and incident.id and rt.deliveries.effect_done(incident.id, SECURITY_REQUEST)
    )
    content = rt.voice.first_response(
        state.title,
        state.classification,
        state.deadlines,
        state.delivery_id,
        now or datetime.now(UTC),
        alerts=state.alerts,
        truncated=state.truncated_alerts,
        incident=state.pagerduty_incident,
        security_team=security.called if security else None,
        security_before=before,
        correlation=_said_of_correlation(rt, state),
        opened=rt.deliveries.effect_done(state.run_id, "trigger"),  # its urgency may go low
        watch=state.watch,
    )
    note_id = post_note_once(rt, incident, state.run_id, "first_note", content)
    if note_id is not None:
        rt.deliveries.update(state.delivery_id, first_note=note_id)
        if state.watch and incident.id:  # each incident's timeline links the other
            said = lines.timeline("watch_period", sentence=state.watch["sentence"])
            rt.incidents.log(incident.id, said, "responder")
            again = lines.timeline("watch_period_fired_again", incident_id=incident.id)
            rt.incidents.log(str(state.watch["earlier"]), again, "responder")
        if incident.id:  # after the note: Slack never delays PagerDuty's first word
            tell_slack_first(rt, state, incident.id, now or datetime.now(UTC))


def _said_of_correlation(rt: Runtime, state: RunState) -> dict[str, Any] | None:
    """Return what the first note says of correlation: a shadow join it would have made
    (naming the incident it would have joined), or a join it could not make; else None."""
    placed = state.correlation
    told = placed.get("alone") or placed.get("mode") == "shadow"
    if placed.get("action") not in ("join", "flap") or not told:
        return None
    lead = existing_run(rt, str(placed.get("incident", "")))
    joins = (lead.incident_id or lead.title) if lead is not None else ""
    return {**placed, "joins": joins}


def tell_slack_first(rt: Runtime, state: RunState, incident_id: str, now: datetime) -> None:
    """Queue the incident's Slack thread (and posts) when the policy's channels want it."""
    priority = str(state.classification.priority)
    chosen = channels_for(rt.policy.slack, priority, bool(rt.voice.market(now)["open"]))
    if not chosen:
        return
    if "incidents" in chosen:  # replies wait for this thread's parent from now on
        SlackThreads(rt.redis).open(incident_id, priority)
    request = {"what": "first", "incident_id": incident_id, "run_id": state.run_id}
    tell_slack(rt, request, priority)


def call_in_security(rt: Runtime, state: RunState, incident: IncidentRef | None) -> None:
    """Call the security team in once per incident when a rule that pages them matched.

    A request PagerDuty refuses for good leaves a note asking for it by hand.
    """
    if incident is None or incident.id is None:
        return  # the first note's failure says there is no incident
    refused = request_security_team(rt, state, incident)
    if refused is not None:
        post_note_once(rt, incident, state.run_id, "security_refused", refused)
        rt.deliveries.mark_effect(incident.id, SECURITY_REQUEST, "refused: asked by hand")
