"""The watch period in the pipeline (Post-Incident "Increased monitoring for 24 hours"): a
resolved incident's alert group is remembered for the policy's period; the same group firing
again within it opens an incident one step more urgent, whose first note links the earlier one.

Judged once per run, after correlation placed it: a group that flaps back into its still-open
incident joins it and never reaches here (flapping first); a new incident is judged.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from tasks.run.correlating import kept_for
from tasks.run.state import RunState, save_run
from tasks.runtime import Runtime
from tasks.store.correlation import CorrelationLedger, LedgerBusy
from tasks.store.deliveries import Delivery
from tasks.store.watch import WatchStore
from triage.correlation_replay import Ledger
from triage.models import AlertGroup, Priority
from triage.sla import deadlines
from triage.watch_period import Resolved, recurrence

log = logging.getLogger(__name__)


def judge(rt: Runtime, state: RunState, now: datetime) -> dict[str, Any]:
    """Apply the watch period to a new run once; return what it found ({}: nothing).

    A raise changes the run before its first note: priority, deadlines from the alert's start,
    and the new priority's collectors. A retry returns what the first attempt found.
    """
    if state.watch is not None:
        return state.watch
    found: dict[str, Any] = {}
    period = rt.policy.watch_period
    # An operator's replay (run > 1) is a fresh response on purpose; a PagerDuty webhook's
    # incident has no Alertmanager group to recognise.
    if state.run == 1 and state.alerts:
        earlier = WatchStore(rt.redis).find(state.incident_key)
        seen = recurrence(
            state.classification.priority, earlier, state.deadlines.triggered_at, period
        )
        if seen is not None:
            found = seen.to_dict(period.highest)
            if seen.raised:
                _raise(rt, state, seen.priority, now)
    state.watch = found
    save_run(rt, state)
    if found:
        rt.deliveries.update(state.delivery_id, watch=found)
    return found


def _raise(rt: Runtime, state: RunState, priority: Priority, now: datetime) -> None:
    """Give the run the raised priority, its deadlines (from the alert's start) and plan."""
    state.classification = replace(state.classification, priority=priority)
    state.deadlines = deadlines(priority, state.deadlines.triggered_at, rt.policy)
    state.collectors = list(rt.policy.plan[priority])
    if not state.correlation or rt.policy.correlation.mode == "off":
        return

    def take(ledger: Ledger) -> None:
        # A group joining this incident later compares its priority with the raised one.
        incident = ledger.find(state.run_id)
        if incident is not None:
            incident.facts["priority"] = str(priority)

    try:
        CorrelationLedger(rt.redis).update(take, now, kept_for(rt.policy))
    except LedgerBusy as exc:  # a joining group may then note a raise already made
        log.warning("run %s: the ledger kept its priority before the raise: %s", state.run_id, exc)


def remember(
    rt: Runtime, delivery: Delivery, group: AlertGroup, incident_id: str, now: datetime
) -> bool:
    """Keep a group whose alerts all resolved, with its incident and priority, for the watch
    period; return whether kept. Resolved when Alertmanager says the last alert ended."""
    period = rt.policy.watch_period
    ended = [a.ends_at for a in group.alerts if a.ends_at is not None]
    record = rt.incidents.get(incident_id) or {}
    held = record.get("sla_priority") or (
        str(delivery.classification.priority) if delivery.classification else ""
    )
    if not held:
        return False
    resolved = Resolved(incident_id, max(ended, default=now), Priority(held))
    return WatchStore(rt.redis).remember(delivery.incident_key, resolved, period.within, now)
