"""Deliveries that joined an incident's run, summed up in one "more alerts" note per interval.

Beat takes the incidents whose note is due as batches (`tasks.store.joined_batches`); a task
per batch posts the note once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.pagerduty.incidents import IncidentNotFound, find_incident
from tasks.pagerduty.notes import post_note_once
from tasks.run import correlating
from tasks.run.prepare import fresh_firing_alerts
from tasks.runtime import Runtime
from tasks.store import joined_batches
from triage.models import Alert, Classification


def take_due(rt: Runtime, now: float, lease_seconds: float) -> list[str]:
    """Return the batches to send now: newly due ones, and ones sent a lease ago not yet done."""
    return joined_batches.take_due(rt.redis, now, lease_seconds)


def incident_of(batch: str) -> str:
    """Return the incident key a batch belongs to."""
    return joined_batches.incident_of(batch)


def run_priority(rt: Runtime, incident_key: str) -> str:
    """Return the priority of the run the batch's deliveries joined (P3 when unknown)."""
    held = rt.deliveries.incident_claim(incident_key)
    return held.priority.value if held is not None else "P3"


def post_joined_note(rt: Runtime, batch: str, now: datetime) -> str:
    """Post the "more alerts" note of one batch once; raise IncidentNotFound if none exists."""
    incident_key = incident_of(batch)
    delivery_ids = joined_batches.deliveries_of(rt.redis, batch)
    alerts: list[tuple[Alert, Classification]] = []
    seen: set[str] = set()
    correlated: list[dict[str, Any]] = []
    for delivery_id in delivery_ids:
        delivery = rt.deliveries.load(delivery_id)
        if delivery is None:
            continue
        fresh = fresh_firing_alerts(delivery)
        for alert, classification in fresh:
            if alert.dedup_key not in seen:
                seen.add(alert.dedup_key)
                alerts.append((alert, classification))
        if tied := correlating.tied_in(rt, delivery, fresh):
            correlated.append(tied)
    if not alerts:
        done(rt, batch)
        return "no new firing alerts"
    incident = find_incident(rt, incident_key)  # by key alone in outbox mode
    if incident is None:
        raise IncidentNotFound(f"no PagerDuty incident with incident_key={incident_key}")
    refresh = rt.policy.storm.evidence_refresh
    origin = correlating.origin_of(rt, correlated) if correlated else None
    content = rt.voice.joined_alerts(
        alerts, delivery_ids, refresh, now, correlated=correlated, origin=origin
    )
    step = "joined_note"
    note_id = post_note_once(rt, incident, joined_batches.batch_id(batch), step, content)
    for delivery_id in delivery_ids if note_id is not None else ():
        rt.deliveries.update(delivery_id, joined_note=note_id)
    done(rt, batch)
    return note_id or "already posted"


def done(rt: Runtime, batch: str) -> None:
    """Mark a batch's note as done: it is not sent again."""
    joined_batches.done(rt.redis, batch)
