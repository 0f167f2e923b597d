"""One pipeline run's state, typed, as its tasks share it through Redis."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from tasks.gateways.pagerduty import IncidentRef
from tasks.runtime import Runtime
from tasks.store import runs
from triage.models import Classification, Incident, ListedAlert
from triage.sla import Deadlines

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """One pipeline run of a delivery: what it responds to, decided once when it starts.

    It holds facts, not text: the notes are rendered from it when they are posted.
    """

    run_id: str
    delivery_id: str
    run: int
    incident_key: str
    alert_name: str
    title: str
    classification: Classification
    deadlines: Deadlines
    fingerprints: list[str]
    collectors: list[str]
    services: list[str]
    incident_id: str | None = None
    alerts: list[ListedAlert] = field(default_factory=list)  # what fired (Alertmanager runs)
    truncated_alerts: int = 0  # alerts Alertmanager left out of the group
    pagerduty_incident: Incident | None = None  # what PagerDuty reported (PagerDuty runs)
    affected: list[str] = field(default_factory=list)
    expression: str = ""
    rules: list[str] = field(default_factory=list)  # the rules that classified what it answers
    failures: dict[str, str] = field(default_factory=dict)
    # Where correlation placed the run's alert group, decided once (tasks.run.correlating).
    correlation: dict[str, Any] = field(default_factory=dict)
    # What the watch period found, decided once (tasks.run.watching): None not judged yet,
    # {} nothing (no recurrence within the period).
    watch: dict[str, Any] | None = None

    @property
    def incident(self) -> IncidentRef:
        """Return the incident reference as far as it is known."""
        return IncidentRef(self.incident_id, self.incident_key)

    def to_json(self) -> str:
        """Return the state as JSON, for Redis."""
        data = dict(vars(self))
        data["classification"] = self.classification.to_dict()
        data["deadlines"] = self.deadlines.to_dict()
        data["alerts"] = [alert.to_dict() for alert in self.alerts]
        data["pagerduty_incident"] = (
            self.pagerduty_incident.to_dict() if self.pagerduty_incident else None
        )
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunState:
        """Rebuild a state from `to_json` output."""
        data: dict[str, Any] = json.loads(text)
        # A state an earlier version saved in flight kept rendered lines: they are not reused.
        data.pop("subjects", None)
        data["classification"] = Classification.from_dict(data["classification"])
        data["deadlines"] = Deadlines.from_dict(data["deadlines"])
        data["alerts"] = [ListedAlert.from_dict(a) for a in data.get("alerts", [])]
        found = data.get("pagerduty_incident")
        data["pagerduty_incident"] = Incident.from_dict(found) if found else None
        return cls(**data)


def save_run(rt: Runtime, state: RunState) -> None:
    """Store a run's state."""
    runs.save_state(rt.redis, state.run_id, state.to_json())


def load_run(rt: Runtime, run_id: str) -> RunState:
    """Load a run's state; raise KeyError when it is gone."""
    raw = runs.state_text(rt.redis, run_id)
    if raw is None:
        raise KeyError(f"pipeline run {run_id} not found")
    return RunState.from_json(raw)


def existing_run(rt: Runtime, run_id: str) -> RunState | None:
    """Return a run's state, or None when it was never saved (or expired)."""
    raw = runs.state_text(rt.redis, run_id)
    return RunState.from_json(raw) if raw is not None else None


def record_failure(rt: Runtime, state: RunState, step: str, reason: str) -> None:
    """Record why a step of the run could not be done, on the run and its delivery."""
    log.warning("run %s: %s failed: %s", state.run_id, step, reason)
    state.failures[step] = reason
    save_run(rt, state)
    rt.deliveries.update(state.delivery_id, failures=state.failures)
