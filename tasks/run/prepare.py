"""A run's start: its state made once from the stored delivery (Alertmanager or PagerDuty),
naming the catalog services the alerts touch (labels choose among them, never add one)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from tasks.notes.voice import headline
from tasks.run.state import RunState, existing_run, save_run
from tasks.runtime import Runtime
from tasks.store.deliveries import Delivery
from tasks.store.deliveries import run_id as make_run_id
from triage.classify import classify
from triage.models import (
    Alert,
    Classification,
    ListedAlert,
    parse_alertmanager,
    parse_pagerduty,
)
from triage.policy import Policy
from triage.sla import deadlines

log = logging.getLogger(__name__)


def prepare_run(rt: Runtime, delivery_id: str, run: int, now: datetime) -> RunState | None:
    """Return the run's state, creating it from the stored delivery the first time."""
    run_id = make_run_id(delivery_id, run)
    existing = existing_run(rt, run_id)
    if existing is not None and (existing.alerts or existing.pagerduty_incident is not None):
        return existing
    delivery = rt.deliveries.load(delivery_id)
    if delivery is None:
        log.warning("delivery %s not found (expired or never recorded)", delivery_id)
        return existing
    if delivery.source == "pagerduty":
        state = _pagerduty_run(rt, delivery, run_id, run, now)
    else:
        state = _alertmanager_run(rt, delivery, run_id, run)
    if existing is not None and state is not None:
        # Saved mid-flight by the previous version, which kept the first note's lines, not
        # what it lists: the rest of the run stands, the facts come from the delivery again.
        existing.alerts, existing.truncated_alerts = state.alerts, state.truncated_alerts
        existing.pagerduty_incident = state.pagerduty_incident
        save_run(rt, existing)
        return existing
    if state is None:
        rt.deliveries.update(delivery_id, pipeline="skipped: nothing to respond to")
        return None
    save_run(rt, state)
    rt.deliveries.update(delivery_id, pipeline="running", run_id=run_id)
    return state


def _alertmanager_run(rt: Runtime, delivery: Delivery, run_id: str, run: int) -> RunState | None:
    chosen = fresh_firing_alerts(delivery, replay=run > 1)
    if not chosen or delivery.classification is None:
        return None
    classification = delivery.classification
    lead = chosen[0][0]
    triggered_at = min(alert.starts_at for alert, _ in chosen)
    return RunState(
        run_id=run_id,
        delivery_id=delivery.id,
        run=run,
        incident_key=delivery.incident_key,
        alert_name=lead.name,
        title=headline(lead),
        classification=classification,
        fingerprints=[alert.fingerprint for alert, _ in chosen],
        deadlines=deadlines(classification.priority, triggered_at, rt.policy),
        collectors=list(rt.policy.plan[classification.priority]),
        services=affected_services([a for a, _ in chosen], rt.policy),
        alerts=[ListedAlert.of(alert, c) for alert, c in chosen],
        truncated_alerts=int(delivery.record.get("truncated_alerts") or 0),
        affected=named_services([a for a, _ in chosen], rt.policy),
        expression=alert_expression(lead.generator_url),
        rules=list(dict.fromkeys(c.rule for _, c in chosen)),
    )


def _pagerduty_run(
    rt: Runtime, delivery: Delivery, run_id: str, run: int, now: datetime
) -> RunState | None:
    event = parse_pagerduty(delivery.payload())
    incident = event.incident
    if incident is None:
        return None
    classification = delivery.classification or classify(incident, rt.policy, now)
    triggered_at = event.occurred_at or now
    return RunState(
        run_id=run_id,
        delivery_id=delivery.id,
        run=run,
        incident_key=incident.incident_key,
        alert_name=incident.title[:80] or incident.id,
        title=incident.title or incident.id,
        classification=classification,
        fingerprints=[],
        deadlines=deadlines(classification.priority, triggered_at, rt.policy),
        collectors=list(rt.policy.plan[classification.priority]),
        services=services_named_in(incident.title, rt.policy),
        pagerduty_incident=incident,
        incident_id=incident.id,
        affected=[n for n in rt.policy.catalog if _names(n, incident.title)],
        rules=[classification.rule],
    )


def services_named_in(text: str, policy: Policy) -> list[str]:
    """Return catalog service names, those named as words in `text` first."""
    named = [n for n in policy.catalog if _names(n, text)]
    return named + [name for name in policy.catalog if name not in named]


def _names(service: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(service)}(?![\w-])", text) is not None


def alert_expression(generator_url: str) -> str:
    """Return the PromQL of an alert's generatorURL (`g0.expr`), or "" when it has none."""
    values = parse_qs(urlsplit(generator_url).query).get("g0.expr", [])
    return values[0] if values else ""


def affected_services(alerts: Sequence[Alert], policy: Policy) -> list[str]:
    """Return catalog service names, those the alerts name first; labels never add new ones."""
    named = named_services(alerts, policy)
    return named + [name for name in policy.catalog if name not in named]


def named_services(alerts: Sequence[Alert], policy: Policy) -> list[str]:
    """Return the catalog services the alerts' `service` or `job` labels name."""
    named = []
    for alert in alerts:
        for candidate in (alert.labels.get("service", ""), alert.labels.get("job", "")):
            name = candidate.removeprefix("eafix-")
            if name in policy.catalog and name not in named:
                named.append(name)
    return named


def classified_alerts(delivery: Delivery) -> list[tuple[Alert, Classification]]:
    """Return a stored delivery's alerts with the classification the receiver gave each."""
    group = parse_alertmanager(delivery.payload())
    known = delivery.alert_classifications
    return [(a, known[a.fingerprint]) for a in group.alerts if a.fingerprint in known]


def fresh_firing_alerts(
    delivery: Delivery, *, replay: bool = False
) -> list[tuple[Alert, Classification]]:
    """Return the firing alerts this delivery brought first (all its firing ones on a replay)."""
    return [
        (alert, classification)
        for alert, classification in classified_alerts(delivery)
        if alert.status == "firing" and (replay or alert.dedup_key in delivery.fresh_keys)
    ]
