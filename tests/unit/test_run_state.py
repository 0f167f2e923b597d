"""A run's state and a stored delivery cross the queue typed, and come back equal."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tasks.run.state import RunState
from tasks.store.deliveries import Delivery
from triage.models import Classification, Incident, ListedAlert, Priority
from triage.policy import builtin
from triage.sla import deadlines

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def state(**changes: object) -> RunState:
    fields: dict[str, object] = dict(
        run_id="d-r1", delivery_id="d", run=1, incident_key="k", alert_name="RiskManagerDown",
        title="RiskManagerDown", classification=Classification(Priority.P0, "r", "why"),
        deadlines=deadlines(Priority.P0, T0, builtin()), fingerprints=["f1"],
        collectors=["http"], services=["risk-manager"],
        alerts=[ListedAlert("RiskManagerDown", Priority.P0, {"service": "risk"}, "down")],
        truncated_alerts=2,
    )  # fmt: skip
    fields.update(changes)
    return RunState(**fields)  # type: ignore[arg-type]


def test_a_run_state_comes_back_from_json_as_it_went() -> None:
    for original in (
        state(),
        state(alerts=[], pagerduty_incident=Incident("PX1", "t", "triggered", "high")),
    ):
        assert RunState.from_json(original.to_json()) == original


def test_a_state_saved_by_the_previous_version_still_loads() -> None:
    # It kept the first note's lines ("subjects"); they are rendered at post time now.
    old = json.loads(state().to_json())
    del old["alerts"], old["truncated_alerts"], old["pagerduty_incident"]
    old["subjects"] = ["Alerts (1 firing):"]
    loaded = RunState.from_json(json.dumps(old))
    assert loaded.alerts == [] and loaded.deadlines == state().deadlines


def test_a_delivery_record_reads_as_a_typed_delivery() -> None:
    record = {
        "id": "d1", "source": "alertmanager", "raw_body": b"{}", "incident_key": "k",
        "classification": {"priority": "P1", "rule": "r", "reason": "x"},
        "alerts": [{"fingerprint": "f1", "classification": {"priority": "P2", "rule": "s",
                                                              "reason": "y"}}],
        "fresh_keys": ["f1:firing:t"], "runs": 1, "pipeline": "queued",
    }  # fmt: skip
    delivery = Delivery.from_record(record)
    assert delivery.classification == Classification(Priority.P1, "r", "x")
    assert delivery.alert_classifications == {"f1": Classification(Priority.P2, "s", "y")}
    assert delivery.fresh_keys == {"f1:firing:t"} and delivery.run_id == ""
    assert delivery.payload() == {}
