"""Correlation in the pipeline: place a new run's alert group, and answer a group that joins.

A new Alertmanager run is placed once in the live ledger (`tasks.store.correlation`) by the
same fold `responder correlate` replays. With `correlation.mode: on`, a group that joins an
open incident gets no first note and no second evidence run: its PagerDuty incident is merged
into the one it joins (or linked, or never opened in trigger mode), it is listed in that
incident's next "joined" note with what tied it in, and a more severe member raises the
incident's priority. In shadow mode the decision is recorded and the first note says what
would have happened; nothing else changes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from tasks.gateways.pagerduty import IncidentRef
from tasks.notes import lines
from tasks.pagerduty.notes import post_note_once
from tasks.run.first_response import resolve_incident, set_incident_priority
from tasks.run.state import RunState, existing_run, save_run
from tasks.runtime import Runtime
from tasks.store import joined_batches, sla_clock
from tasks.store.correlation import CorrelationLedger, LedgerBusy
from tasks.store.deliveries import Delivery
from triage.correlation import FLAP, JOIN, NEW
from triage.correlation_replay import Ledger, LedgerIncident, Observation, group_of
from triage.models import Priority, parse_alertmanager
from triage.policy import Policy, format_duration
from triage.sla import deadlines

log = logging.getLogger(__name__)

MERGED = "merged"
LINKED = "linked"


def kept_for(policy: Policy) -> timedelta:
    """Return how long the ledger keeps an incident after its last member resolved."""
    kept = [rule.max_lifetime for rule in policy.correlation.rules]
    return max([*kept, policy.correlation.flap_window], default=timedelta(hours=4))


def place(rt: Runtime, state: RunState, now: datetime) -> dict[str, Any]:
    """Place the run's alert group in the ledger once; return the recorded placement.

    {} when correlation is off, the run has no Alertmanager group (a PagerDuty webhook's
    incident is answered as before) or is an operator's replay (a fresh response, on purpose).
    A retry returns what the first attempt recorded. A ledger that stays locked costs the
    group its correlation, never its first note: it is answered on its own, and says so.
    """
    if state.correlation or rt.policy.correlation.mode == "off" or not state.alerts:
        return state.correlation
    if state.run > 1:
        return {}
    delivery = rt.deliveries.load(state.delivery_id)
    if delivery is None:
        return {}
    group = group_of(parse_alertmanager(delivery.payload()))

    def apply(ledger: Ledger) -> Observation:
        seen = ledger.observe(group, now, rt.policy, lambda: state.run_id)
        if seen.incident is not None and seen.incident.id == state.run_id:
            seen.incident.facts.update(
                run_id=state.run_id,
                priority=str(state.classification.priority),
                incident_key=state.incident_key,
            )
        return seen

    try:
        seen = CorrelationLedger(rt.redis).update(apply, now, kept_for(rt.policy))
    except LedgerBusy as exc:
        log.warning("run %s is answered on its own: %s", state.run_id, exc)
        seen = Observation(None, None)
    placement = _placement(seen, state.run_id, rt.policy, now)
    state.correlation = placement
    save_run(rt, state)
    rt.deliveries.update(state.delivery_id, correlation=placement)
    CorrelationLedger(rt.redis).record_decision(
        {**placement, "run_id": state.run_id, "group": group.key, "at": now.isoformat()}
    )
    return placement


def _placement(seen: Observation, run_id: str, policy: Policy, now: datetime) -> dict[str, Any]:
    """Say where the run went, as the run state, the delivery and the notes keep it."""
    incident = seen.incident
    if incident is None:  # nothing of the group fires, or the ledger stayed locked
        return {"action": NEW, "incident": run_id, "why": "not placed in the ledger"}
    decision = seen.decision
    if decision is None:  # placed by an earlier attempt, or its group was still in an incident
        action = NEW if incident.id == run_id else JOIN
        why = "its group was already in this incident"
        tie = None
    else:
        action, why, tie = decision.action, decision.why, decision.tie
    found = {
        "action": action,
        "incident": incident.id,
        "why": why,
        "mode": policy.correlation.mode,
        "acts": policy.correlation.mode == "on" and action in (JOIN, FLAP),
        "origin": policy.topology.probable_origin(incident.services()) or "",
    }
    if tie is not None:
        found["tie"] = {
            "rule": tie.rule,
            "service": tie.group_service,
            "tied_to": tie.member_service,
            "hops": tie.hops,
            "window": format_duration(tie.window),
        }
    return found


def lead_run(rt: Runtime, placement: dict[str, Any]) -> RunState | None:
    """Return the run that started the incident a joining run joins, if it is still kept."""
    return existing_run(rt, str(placement.get("incident", "")))


NOT_YET = "not yet"  # the incident it joins has no PagerDuty incident yet: look again


def why_alone(rt: Runtime, lead: RunState | None) -> str:
    """Return why a joining run cannot join `lead`'s incident ("" when it can; NOT_YET while
    that incident is still being opened)."""
    if lead is None:
        return "the run of the incident it joins is no longer kept"
    if not lead.incident_id:
        return NOT_YET
    record = rt.incidents.get(lead.incident_id) or {}
    if record.get("status") == "resolved":  # never into a resolved incident
        return f"the incident it joins, {lead.incident_id}, is resolved"
    return ""


def answer_alone(rt: Runtime, state: RunState, why: str) -> None:
    """Give up joining: the run is answered as its own incident, and says why."""
    log.warning("run %s answers alone instead of joining: %s", state.run_id, why)
    state.correlation = {**state.correlation, "acts": False, "alone": why}
    save_run(rt, state)
    rt.deliveries.update(state.delivery_id, correlation=state.correlation)


def join(rt: Runtime, state: RunState, lead: RunState, now: datetime) -> bool:
    """Answer a run that joins `lead`'s incident; return whether its services still need
    evidence (none of the incident's runs diagnosed them).

    Raises IncidentNotFound (from `joined_own_incident`) while Alertmanager's own incident
    for the group is not found yet, and PagerDutyUnavailable for the caller to retry.
    """
    target = IncidentRef(lead.incident_id, lead.incident_key)
    if rt.policy.pagerduty.incident != "trigger":
        own = resolve_incident(rt, state)
        if own is not None and own.id and own.id != target.id:
            _merge_or_link(rt, state, own, target, now)
    state.incident_id = target.id
    save_run(rt, state)
    if target.id:  # the group's later deliveries (resolved notes) go to the incident it joined
        rt.incidents.remember_id(state.incident_key, target.id)
    rt.deliveries.update(
        state.delivery_id,
        incident_id=target.id,
        joined_incident=target.id,
        pipeline="done: joined " + str(target.id),
    )
    _list_for_note(rt, state, lead, now)
    _raise_priority(rt, state, lead, target, now)
    return bool(set(state.affected) - set(lead.services))


def _merge_or_link(
    rt: Runtime, state: RunState, own: IncidentRef, target: IncidentRef, now: datetime
) -> None:
    """Merge the group's own PagerDuty incident into the target once, or link the two."""
    how = MERGED if rt.policy.correlation.merge else LINKED
    if rt.deliveries.effect_done(state.run_id, how):
        return
    if how == MERGED:
        rt.deliveries.begin_effect(state.run_id, how)
        rt.pagerduty.merge(target, [own])
        what = lines.timeline("merged", incident_id=own.id, alert_name=state.alert_name)
        rt.incidents.log(str(target.id), what, "responder")
    else:
        content = rt.voice.correlation_linked(
            str(state.classification.priority),
            state.title,
            str(target.id),
            state.correlation.get("tie"),
        )
        post_note_once(rt, own, state.run_id, "correlation_link", content)
    rt.deliveries.mark_effect(state.run_id, how, str(own.id))
    state.correlation = {**state.correlation, how: own.id}
    save_run(rt, state)
    rt.deliveries.update(state.delivery_id, correlation=state.correlation)


def _list_for_note(rt: Runtime, state: RunState, lead: RunState, now: datetime) -> None:
    """List the delivery under the incident's next "joined" note, due `note_after` from now
    (or sooner, when one is due already)."""
    if rt.deliveries.effect_done(state.run_id, "joined_listed"):
        return
    due = (now + rt.policy.correlation.note_after).timestamp()
    joined_batches.list_for_note(rt.redis, lead.incident_key, state.delivery_id, due)
    rt.deliveries.mark_effect(state.run_id, "joined_listed")


def _raise_priority(
    rt: Runtime, state: RunState, lead: RunState, target: IncidentRef, now: datetime
) -> None:
    """Raise the incident to the run's priority when it is more severe: a note, PagerDuty's
    priority, and the higher priority's deadlines from now."""
    wanted = state.classification.priority

    def take(ledger: Ledger) -> str | None:
        incident = ledger.find(lead.run_id)
        held = (incident.facts.get("priority") if incident else None) or str(
            lead.classification.priority
        )
        if Priority(held).rank <= wanted.rank:
            return None
        if incident is not None:
            incident.facts["priority"] = str(wanted)
        return held

    if rt.deliveries.effect_done(state.run_id, "priority_raised"):
        return
    was = CorrelationLedger(rt.redis).update(take, now, kept_for(rt.policy))
    if was is None:
        return
    due = deadlines(wanted, now, rt.policy)
    content = rt.voice.priority_raised(
        str(wanted), was, headline_of(state), state.correlation.get("tie"), due
    )
    post_note_once(rt, target, state.run_id, "priority_raised", content)
    set_incident_priority(rt, state, target)
    if target.id:
        # Under the lead run: the incident's page and closing note read its bundle and title.
        found = sla_clock.deadlines_for(target.id, lead.run_id, lead.title, due.to_dict())
        rt.clock.register(found)
        rt.incidents.mark_clock(target.id, str(wanted), due.triggered_at.isoformat(), lead.run_id)
        # Judging the incident again at the market's next open or close reads its first run's
        # alerts only: it could lower what a joined member raised. A person decides from here.
        rt.clock.cancel(target.id, [sla_clock.REJUDGE])


def headline_of(state: RunState) -> str:
    """Return the run's alert as the notes name it."""
    return state.title or state.alert_name


def follow(rt: Runtime, delivery: Delivery, now: datetime) -> LedgerIncident | None:
    """Apply a later delivery of a group already in an incident (resolved alerts, new ones) to
    the ledger, so resolved members stop counting; return that incident as it is now (None
    when the group is in none). A new group is placed by its run instead."""
    if rt.policy.correlation.mode == "off" or delivery.source != "alertmanager":
        return None
    group = group_of(parse_alertmanager(delivery.payload()))
    ledger = CorrelationLedger(rt.redis)
    if group.key not in ledger.read().home:
        return None

    def apply(held: Ledger) -> LedgerIncident | None:
        if group.key not in held.home:  # resolved meanwhile, by another copy of this task
            return None
        return held.observe(group, now, rt.policy, lambda: "").incident

    return ledger.update(apply, now, kept_for(rt.policy))


def still_fires(rt: Runtime, delivery: Delivery, now: datetime) -> bool:
    """Return whether the correlated incident of a delivery's group still has a firing member
    of another group after this delivery (then the group's resolution settles nothing)."""
    if (kept := delivery.record.get("correlated_still_fires")) is not None:
        return bool(kept)  # a retry: the first attempt took the group out of the ledger
    try:
        incident = follow(rt, delivery, now)
    except LedgerBusy as exc:  # the resolution is noted and settled as without correlation
        log.warning("delivery %s: the ledger was not updated: %s", delivery.id, exc)
        return False
    fires = rt.policy.correlation.mode == "on" and incident is not None and incident.fires()
    rt.deliveries.update(delivery.id, correlated_still_fires=fires)
    return fires


def tied_in(rt: Runtime, delivery: Delivery, fresh: list[Any]) -> dict[str, Any] | None:
    """Return what the joined note says of a delivery correlation tied in (None: it joined
    its own group's run, as Alertmanager's repeats do)."""
    placed = delivery.record.get("correlation")
    if not isinstance(placed, dict) or not placed.get("acts"):
        return None
    run = existing_run(rt, str(delivery.record.get("run_id") or ""))
    lead = lead_run(rt, placed)
    covered = run is None or lead is None or not set(run.affected) - set(lead.services)
    worst = min((c.priority for _, c in fresh), key=lambda p: p.rank, default=None)
    return {
        "name": ", ".join(dict.fromkeys(alert.name for alert, _ in fresh)) or delivery.id,
        "priority": str(worst) if worst else "",
        "flapping": placed.get("why", "") if placed.get("action") == FLAP else "",
        "tie": placed.get("tie"),
        "merged": placed.get(MERGED, ""),
        "linked": placed.get(LINKED, ""),
        "covered": covered,
        "incident": placed.get("incident", ""),
    }


def origin_of(rt: Runtime, correlated: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the probable origin of the incident the deliveries joined and its downstream
    symptoms, as the ledger has it now (None when no member names a catalog service)."""
    found = CorrelationLedger(rt.redis).read().find(str(correlated[0].get("incident", "")))
    if found is None:
        return None
    services = found.services()
    origin = rt.policy.topology.probable_origin(services)
    if origin is None:
        return None
    return {"service": origin, "symptoms": [s for s in services if s != origin]}


def members_of(rt: Runtime, run_id: str) -> LedgerIncident | None:
    """Return the ledger's incident that run `run_id` started, for the page and the notes."""
    return CorrelationLedger(rt.redis).read().find(run_id)
