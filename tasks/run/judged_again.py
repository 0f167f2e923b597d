"""What an incident is judged again on, and when: the alerts of its run still firing (or the
PagerDuty incident it answers), at the next market open or close that changes their priority.

One SLA clock deadline of kind `rejudge` per incident, so beat's claim takes it exactly once;
`tasks.sla.rejudge` acts on it and registers the next one.
"""

from __future__ import annotations

from datetime import datetime

from tasks.runtime import Runtime
from tasks.store.sla_clock import REJUDGE, Deadline
from triage.models import parse_alertmanager, parse_pagerduty
from triage.rejudge import Subject, next_judgement


def delivery_of(run_id: str) -> str:
    """Return the delivery a run answers (a run id is `<delivery>-r<n>`)."""
    return run_id.rsplit("-r", 1)[0]


def firing_subjects(rt: Runtime, run_id: str, incident_id: str) -> list[Subject]:
    """Return what the run answers that still fires: its alerts that Alertmanager has not
    reported resolved since they started, or its PagerDuty incident. [] when nothing does, or
    the delivery is gone (kept 7 days)."""
    delivery = rt.deliveries.load(delivery_of(run_id)) if run_id else None
    if delivery is None:
        return []
    if delivery.source == "pagerduty":
        event = parse_pagerduty(delivery.payload())
        return [event.incident] if event.incident is not None else []
    cleared = rt.incidents.cleared_alerts(incident_id)
    return [
        alert
        for alert in parse_alertmanager(delivery.payload()).alerts
        if alert.status == "firing"
        and alert.fingerprint in delivery.alert_classifications
        and not (alert.fingerprint in cleared and cleared[alert.fingerprint] >= alert.starts_at)
    ]


def next_deadline(
    rt: Runtime, incident_id: str, run_id: str, title: str, priority: str, now: datetime
) -> list[Deadline]:
    """Return the incident's next `rejudge` deadline ([] when its priority does not depend on
    the market's hours, or nothing of it fires)."""
    subjects = firing_subjects(rt, run_id, incident_id)
    at = next_judgement(subjects, rt.policy, now)
    if at is None:
        return []
    return [Deadline(incident_id, REJUDGE, at.isoformat(), priority, run_id, title)]
