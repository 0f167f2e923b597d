"""Alerts Alertmanager reports resolved: a note, and when the whole group cleared, the runbook's
Validation (every catalog service's health, the trading flow test), the SLA clocks that wait on
a person answering the alert stopped, and the incident resolved if the policy says so."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from collectors.contract import Status, Target
from collectors.registry import run_collector
from tasks.evidence.collect import collector_context
from tasks.gateways.pagerduty import IncidentRef, PagerDutyUnavailable
from tasks.notes import lines
from tasks.pagerduty.incidents import IncidentNotFound, find_incident
from tasks.pagerduty.notes import post_note_once
from tasks.retries import decide
from tasks.run import correlating, watching
from tasks.runtime import Runtime
from tasks.store import runs
from triage.models import parse_alertmanager

RESOLVE_EFFECT = "resolve"  # the once-marker of resolving the PagerDuty incident, per incident


def post_resolved_note(rt: Runtime, delivery_id: str) -> str:
    """Note the delivery's newly resolved alerts on their incident, once.

    When every alert of the group is resolved, the note also says which clocks stopped, what
    the validation found and whether the incident was resolved (see `settle`).
    """
    delivery = rt.deliveries.load(delivery_id)
    if delivery is None:
        return "delivery gone"
    group = parse_alertmanager(delivery.payload())
    resolved = [
        a for a in group.alerts if a.status == "resolved" and a.dedup_key in delivery.fresh_keys
    ]
    if not resolved or rt.deliveries.effect_done(delivery_id, "resolved_note"):
        return "nothing to note"
    incident = find_incident(rt, delivery.incident_key, open_only=False)
    if incident is None:
        raise IncidentNotFound(f"no PagerDuty incident with incident_key={delivery.incident_key}")
    if incident.id:  # judged again at the market's open or close, a cleared alert counts no more
        ended = {a.fingerprint: a.ends_at or a.starts_at for a in resolved}
        rt.incidents.clear_alerts(incident.id, ended)
    cleared = all(alert.status == "resolved" for alert in group.alerts)
    if cleared and correlating.still_fires(rt, delivery, datetime.now(UTC)):
        cleared = False  # other groups of its correlated incident still fire: nothing settles
    settled = settle(rt, delivery_id, incident) if cleared else None
    content = rt.voice.resolved(resolved, delivery_id, settled)
    # Before the note, not after: a worker that dies after posting it is never asked back here
    # (the note is done), and an alert firing again the moment the note shows must find both.
    if cleared:
        rt.incidents.forget_id(delivery.incident_key)  # it may fire again as a new incident
        if incident.id:  # the watch period runs from here (Post-Incident monitoring)
            watching.remember(rt, delivery, group, incident.id, datetime.now(UTC))
    note_id = post_note_once(rt, incident, delivery_id, "resolved_note", content)
    if note_id is not None:
        rt.deliveries.update(delivery_id, resolved_note=note_id)
    return note_id or "already noted"


def settle(rt: Runtime, delivery_id: str, incident: IncidentRef) -> dict[str, Any]:
    """Stop the policy's clocks, validate, and resolve the incident if the policy says so.

    Return what was done, for the note. The clocks and checks are kept per delivery, so a
    retried task (the note failed) posts what the first attempt found and ticks EAFIX once.
    """
    if (kept := runs.settled(rt.redis, delivery_id)) is not None:
        found = kept
    else:
        stop = rt.policy.on_resolved.stop_clocks
        stopped = rt.clock.cancel(incident.id, stop) if incident.id and stop else 0
        found = {"stopped": list(stop) if stopped else [], "checks": validate(rt)}
        runs.keep_settled(rt.redis, delivery_id, found)
    found["incident"] = resolve_if_validated(rt, incident, found["checks"])
    return found


def validation_failed(rt: Runtime, delivery_id: str) -> bool:
    """Return True when the Validation run for a resolved group's delivery found a problem."""
    kept = runs.settled(rt.redis, delivery_id)
    checks = kept["checks"] if kept is not None else []
    return any(check["status"] != Status.OK.value for check in checks)


def validate(rt: Runtime) -> list[dict[str, str]]:
    """Run the policy's validation collectors on every catalog service, at once; never raise."""
    names = rt.policy.on_resolved.validate
    target = Target(services=tuple(rt.policy.catalog.values()), alert_name="validation")
    ctx = collector_context(rt)
    with ThreadPoolExecutor(max_workers=max(len(names), 1), thread_name_prefix="validate") as pool:
        results = list(pool.map(lambda name: run_collector(name, target, ctx), names))
    return [
        {"collector": e.collector, "status": e.status.value, "summary": rt.redact(e.summary)}
        for e in results
    ]


def resolve_if_validated(rt: Runtime, incident: IncidentRef, checks: list[dict[str, str]]) -> str:
    """Resolve the PagerDuty incident once, if the policy says so and every check passed.

    Return what became of it: "resolved", "left to a person" (the policy), "left: a check did
    not pass", "outbox" (outbox mode closes its own incident), "already resolved" (PagerDuty
    says so: Alertmanager's own receiver or a person resolved it; with ": a check did not pass"
    when the Validation failed), or "refused: <why>" when PagerDuty refused it for good (a
    retryable failure is raised, and the task tries again).
    """
    failed = any(check["status"] != Status.OK.value for check in checks)
    if rt.settings.outbox_mode:
        # No PagerDuty to resolve it and no webhook to say so: the outbox incident is closed
        # by the whole group's resolution (tasks/sla/closing.close_in_outbox), unless the
        # Validation failed: then it stays open, as the note says.
        return "left: a check did not pass" if failed else "outbox"
    if incident.id is None:
        return "left to a person"
    done = rt.deliveries.effect_state(incident.id, RESOLVE_EFFECT) or ""
    if done.startswith("done:"):
        return done.removeprefix("done:")
    # Ask PagerDuty before saying the incident stays open: Alertmanager's own PagerDuty
    # receiver resolves it when the alerts clear, and a person may have resolved it already.
    if pagerduty_status(rt, incident) == "resolved":
        return "already resolved: a check did not pass" if failed else "already resolved"
    if not rt.policy.on_resolved.resolve_incident:
        return "left to a person"
    if failed:
        return "left: a check did not pass"
    try:
        rt.pagerduty.resolve(incident)
    except PagerDutyUnavailable as exc:
        if decide(exc.status, exc.headers, 1).retry:
            raise
        outcome = f"refused: {exc}"
    else:
        outcome = "resolved"
        rt.incidents.log(incident.id, lines.timeline("resolved_validated"), "responder")
    rt.deliveries.mark_effect(incident.id, RESOLVE_EFFECT, outcome)
    return outcome


def pagerduty_status(rt: Runtime, incident: IncidentRef) -> str | None:
    """Return the incident's status as PagerDuty shows it now; None when it cannot be read."""
    try:
        return rt.pagerduty.status(incident)
    except PagerDutyUnavailable as exc:
        if decide(exc.status, exc.headers, 1).retry:
            raise
        return None  # the note then says what the responder did, not what PagerDuty shows
