"""Runbook actions end to end: approved by CLI or by a PagerDuty workflow, run once by a real
worker against the demo EAFIX (the gateway's emergency endpoints) and the fake Docker engine,
verified, noted on the fake PagerDuty incident; refusals noted, running nothing."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import requests
import yaml
from click.testing import CliRunner, Result
from redis import RedisError
from werkzeug.serving import make_server

import webhooks.actions
from collectors.contract import Target
from demo.simulator import SERVICES, Simulator
from tasks.actions import act, approval
from tasks.cli import main
from tasks.evidence import collect
from tasks.run import proposals
from tasks.run.state import RunState
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings, settings_from_env
from tasks.sla import closing, incident_events
from tests.fakes.docker_engine import FakeContainer, FakeDockerEngine
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.test_pagerduty_webhook import annotated, sign
from tests.support import (
    QuietHandler,
    post_alert,
    sample_payload,
    wait_for,
)
from tests.support.workers import give_back_held, kill_worker, start_worker, stop_worker
from triage.actions import fitting_proposals, run_facts
from triage.models import Classification, Incident, IncidentEvent, Priority, parse_pagerduty
from triage.policy import builtin_text
from triage.sla import deadlines
from webhooks import create_app

QUEUE = "responder-actions-e2e"
ACTIONS_TOKEN = "actions-token-7c3d"
ALLOWED = "oncall@eafix.example"  # the one person (besides PALLOWED) who may stop trading


@dataclass
class World:
    """The demo EAFIX, a fake Docker engine running its containers, and the responder's env."""

    sim: Simulator
    engine: FakeDockerEngine
    env: dict[str, str]  # RESPONDER_* for the worker and the CLI

    def settings(self, **changes: object) -> Settings:
        """Return the settings the worker runs with, changed as asked."""
        return replace(settings_from_env(self.env), **changes)

    def restarts(self) -> list[str]:
        """Return the restart calls the Docker engine received."""
        return [r for r in self.engine.acted() if "/restart" in r]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, responder_env: dict[str, str]
) -> Iterator[World]:
    sim = Simulator().start()
    engine = FakeDockerEngine([FakeContainer(name) for name in SERVICES]).start()
    policy = yaml.safe_load(builtin_text())
    for service in policy["catalog"]:
        service["health_url"] = f"{sim.url(service['name'])}/healthz"
    for action in policy["actions"]["catalog"]:
        if action["name"] == "stop-trading":
            action["approvers"] = ["PALLOWED", ALLOWED]
        if action["name"] == "resume-trading":  # whoever the incident is assigned to
            action["approvers"] = ["assigned"]
            action["approvals_required"] = 1  # one assignee (the two-person rule: its own tests)
        if action["name"] == "validate":  # no Prometheus here: test_diagnostics.py has one
            action["validation"]["latency"] = False
        if action["name"] == "restart-service":  # short: the kill test's worker has 4 s
            action["timeout"] = "3s"
            action["verify"] = [{"health": "ok", "within": "5s"}]
    path = tmp_path_factory.mktemp("actions") / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    env = {
        **responder_env,
        "RESPONDER_POLICY": str(path),
        "RESPONDER_DOCKER_URL": engine.url,
        "RESPONDER_QUEUE": QUEUE,
    }
    yield World(sim, engine, env)
    engine.stop()
    sim.stop()


@pytest.fixture(scope="module")
def action_worker(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # One process: tasks run in the order they were sent, so a later note is a barrier.
    log = tmp_path_factory.mktemp("action-worker") / "worker.log"
    redis.Redis.from_url(world.env["RESPONDER_REDIS_URL"]).delete(
        QUEUE, f"{QUEUE}-actions", f"{QUEUE}-urgent"
    )
    process = start_worker(world.env, log, "actions")
    yield
    stop_worker(process)


@pytest.fixture
def fresh(world: World, redis_client: redis.Redis, pagerduty: FakePagerDuty) -> World:
    """The world as new: trading on, no container acted on, no responder keys."""
    world.sim.trading_stopped = False
    world.sim.emergency_calls.clear()
    world.engine.requests.clear()
    world.engine.action_delay = 0.0
    return world


@pytest.fixture
def receiver(world: World) -> Iterator[str]:
    app = create_app(world.settings(actions_token=Secret(ACTIONS_TOKEN)))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def cli(world: World, *args: str) -> Result:
    """Run `responder` with the world's environment."""
    return CliRunner().invoke(main, list(args), env=world.env)


def action_notes(pagerduty: FakePagerDuty, incident: str) -> list[str]:
    """Return the contents of the incident's action notes."""
    return [n["content"] for n in pagerduty.notes_for(incident) if "[ACTION]" in n["content"]]


def wait_note(pagerduty: FakePagerDuty, incident: str, text: str) -> str:
    """Wait for the action note on `incident` that contains `text`; return it."""
    found = wait_for(
        lambda: [c for c in action_notes(pagerduty, incident) if text in c],
        timeout=120,
        what=f"a note saying {text!r}",
    )
    return found[0]


def barrier(world: World, pagerduty: FakePagerDuty) -> None:
    """Wait until the worker has done everything sent before: a refusal note sent after it."""
    incident = pagerduty.add_incident(f"barrier-{datetime.now(UTC).timestamp()}")
    cli(world, "action", "run", "no-such-action", "--incident", incident, "--as", "barrier")
    wait_note(pagerduty, incident, "no action named 'no-such-action'")


def proposed_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return re.search(r"(act-[0-9a-f]{8})", result.output).group(1)  # type: ignore[union-attr]


def test_an_operator_approves_stop_trading_at_the_terminal_it_runs_once_verified_and_audited(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("actions-cli")
    proposal = proposed_id(
        cli(fresh, "action", "propose", "stop-trading", "--incident", incident, "--as", "bot")
    )
    result = cli(fresh, "action", "approve", proposal, "--as", ALLOWED)
    assert result.exit_code == 0, result.output
    note = wait_note(pagerduty, incident, "[ACTION] stop-trading on gui-gateway: done")
    assert f"Approved by {ALLOWED} via cli; proposed by bot." in note
    assert "Verification passed:" in note
    assert "- OK GET /api/trading/status says trading=stopped" in note
    assert fresh.sim.trading_stopped and fresh.sim.emergency_calls == ["stop-trading"]
    shown = cli(fresh, "action", "show", proposal)
    assert shown.exit_code == 0, shown.output
    assert f"approved_by:  {ALLOWED}" in shown.output
    assert "verified:     passed" in shown.output
    assert "POST http://127.0.0.1:" in shown.output and "/emergency/stop-trading" in shown.output
    history = [e["what"] for e in Runtime(fresh.settings()).incidents.history(incident)]
    assert [w.split(":")[0] for w in history if w.startswith("action ")] == [
        f"action {proposal} proposed",
        f"action {proposal} approved",
        f"action {proposal} done",
    ]


def test_a_note_on_the_incident_approves_by_its_author_once(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = pagerduty.add_incident("actions-note")
    proposal = proposed_id(
        cli(fresh, "action", "propose", "stop-trading", "--incident", incident, "--as", "bot")
    )

    def note(n: int) -> requests.Response:
        payload = annotated(f"NOTE-APPROVE-{n}", f"Looks right to me.\n/approve {proposal}")
        payload["event"]["data"]["incident"]["id"] = incident
        payload["event"]["agent"] = {"id": "PALLOWED", "type": "user_reference", "summary": "Dana"}
        raw = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sign(raw)}
        headers["X-Webhook-Id"] = f"wh-approve-{n}"
        return requests.post(
            f"{receiver}/webhooks/pagerduty", data=raw, headers=headers, timeout=10
        )

    assert note(1).status_code == 202
    done = wait_note(pagerduty, incident, "[ACTION] stop-trading on gui-gateway: done")
    assert "Approved by PALLOWED via note" in done
    assert note(2).status_code == 202  # a second note approving the same: already done
    barrier(fresh, pagerduty)
    assert fresh.sim.emergency_calls == ["stop-trading"]
    assert len(action_notes(pagerduty, incident)) == 1


def test_a_second_approval_answers_already_done_and_runs_nothing(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("actions-twice")
    proposal = proposed_id(
        cli(fresh, "action", "propose", "restart-service", "risk-manager",
            "--incident", incident, "--as", "bot")
    )  # fmt: skip
    assert cli(fresh, "action", "approve", proposal, "--as", "alice").exit_code == 0
    again = cli(fresh, "action", "approve", proposal, "--as", "bob")
    assert again.exit_code == 1
    assert "already done by alice (via cli" in again.output
    wait_note(pagerduty, incident, "[ACTION] restart-service on risk-manager: done")
    barrier(fresh, pagerduty)
    assert len(fresh.restarts()) == 1
    assert len(action_notes(pagerduty, incident)) == 1


def test_an_approver_the_action_does_not_allow_gets_a_note_and_nothing_runs(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("actions-not-allowed")
    proposal = proposed_id(
        cli(fresh, "action", "propose", "stop-trading", "--incident", incident, "--as", "bot")
    )
    result = cli(fresh, "action", "approve", proposal, "--as", "PINTRUDER")
    assert result.exit_code == 1
    assert "PINTRUDER may not approve stop-trading" in result.output
    note = wait_note(pagerduty, incident, "REFUSED")
    assert "REFUSED: not allowed: PINTRUDER may not approve stop-trading." in note
    assert "PALLOWED" not in note and ALLOWED not in note  # who may is never said
    assert "Nothing ran." in note
    barrier(fresh, pagerduty)
    assert fresh.sim.emergency_calls == [] and not fresh.sim.trading_stopped
    assert approval.proposals(Runtime(fresh.settings())).get(proposal).status == "proposed"  # type: ignore[union-attr]


def test_a_denied_proposal_never_runs_even_when_approved_later(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("actions-denied")
    proposal = proposed_id(
        cli(fresh, "action", "propose", "restart-service", "risk-manager",
            "--incident", incident, "--as", "bot")
    )  # fmt: skip
    denied = cli(fresh, "action", "deny", proposal, "--as", "carol")
    assert denied.exit_code == 0 and "denied: restart-service on risk-manager" in denied.output
    late = cli(fresh, "action", "approve", proposal, "--as", "alice")
    assert late.exit_code == 1 and "already denied: denied by carol via cli" in late.output
    barrier(fresh, pagerduty)
    assert fresh.restarts() == [] and action_notes(pagerduty, incident) == []
    assert "status:       denied" in cli(fresh, "action", "show", proposal).output


def test_only_an_allowed_approver_may_deny_from_slack_or_the_page_the_terminal_may(
    fresh: World, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("actions-deny-standing")
    proposal = proposed_id(
        cli(fresh, "action", "propose", "stop-trading", "--incident", incident, "--as", "bot")
    )
    rt = Runtime(fresh.settings())
    refused = approval.deny(rt, proposal, "PINTRUDER", "slack")
    assert refused.status == "refused" and "PINTRUDER may not deny stop-trading" in refused.message
    assert "status:       proposed" in cli(fresh, "action", "show", proposal).output
    denied = approval.deny(rt, proposal, ALLOWED, "incident page")
    assert denied.status == "denied"
    assert "status:       denied" in cli(fresh, "action", "show", proposal).output


def test_an_expired_proposal_gets_a_note_and_nothing_runs(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("actions-expired")
    rt = Runtime(fresh.settings())
    long_ago = datetime.now(UTC) - timedelta(minutes=31)  # the policy's proposal_ttl is 30m
    proposal = approval.propose(rt, "restart-service", "risk-manager", incident, "bot", long_ago)
    result = cli(fresh, "action", "approve", proposal.id, "--as", "alice")
    assert result.exit_code == 1
    assert "the proposal expired at" in result.output
    note = wait_note(pagerduty, incident, "REFUSED: the proposal expired at")
    assert "restart-service on risk-manager" in note
    barrier(fresh, pagerduty)
    assert fresh.restarts() == []


def test_an_action_outside_the_catalog_gets_a_note_and_nothing_runs(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("actions-unknown")
    result = cli(fresh, "action", "run", "reboot-everything", "--incident", incident, "--as", "a")
    assert result.exit_code == 1
    note = wait_note(pagerduty, incident, "REFUSED: no action named 'reboot-everything'")
    assert "Nothing ran." in note
    assert fresh.engine.acted() == [] and fresh.sim.emergency_calls == []


@pytest.mark.parametrize(
    "target",
    ["risk-manager; docker rm -f $(docker ps -q)", "../gui-gateway", "http://evil.example/x"],
)
def test_a_target_outside_the_catalog_gets_a_note_and_nothing_runs(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, target: str
) -> None:
    incident = pagerduty.add_incident(f"actions-hostile-{len(target)}")
    result = cli(
        fresh, "action", "run", "restart-service", target, "--incident", incident, "--as", "a"
    )
    assert result.exit_code == 1
    note = wait_note(pagerduty, incident, "REFUSED: no catalog service named")
    assert "Nothing ran." in note
    assert fresh.engine.acted() == []


def known_incident(world: World, incident: str) -> str:
    """Record the incident as the receiver does from PagerDuty's incident.triggered webhook."""
    payload = {
        "event": {
            "id": f"evt-{incident}",
            "event_type": "incident.triggered",
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": {"id": incident, "type": "incident", "title": "x", "status": "triggered"},
        }
    }
    incident_events.apply_event(Runtime(world.settings()), parse_pagerduty(payload))
    return incident


def workflow(receiver: str, action: str, request_id: str = "", **body: object) -> requests.Response:
    """POST what a PagerDuty workflow run sends: a request_id of its own unless given."""
    body.setdefault("approver", ALLOWED)
    body["request_id"] = request_id or uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {ACTIONS_TOKEN}"}
    return requests.post(f"{receiver}/actions/{action}", json=body, headers=headers, timeout=10)


def test_a_pagerduty_workflow_approves_stop_trading_and_it_runs_once(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = known_incident(fresh, pagerduty.add_incident("actions-workflow"))
    answer = workflow(receiver, "stop-trading", incident_id=incident)
    assert answer.status_code == 202, answer.text
    proposal = answer.json()["proposal_id"]
    note = wait_note(pagerduty, incident, "[ACTION] stop-trading on gui-gateway: done")
    assert f"Approved by {ALLOWED} via workflow" in note and f"(proposal {proposal})" in note
    barrier(fresh, pagerduty)
    assert fresh.sim.emergency_calls == ["stop-trading"]
    assert len(action_notes(pagerduty, incident)) == 1


def test_a_workflow_run_twice_or_retried_acts_once_and_says_already(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = known_incident(fresh, pagerduty.add_incident("actions-workflow-twice"))

    def run_workflow() -> requests.Response:  # each run of the workflow: a new request_id
        return workflow(receiver, "stop-trading", incident_id=incident)

    first, second = run_workflow(), run_workflow()
    assert first.status_code == 202, first.text
    assert second.status_code == 409, second.text
    assert (
        f"already approved by {ALLOWED} ({first.json()['proposal_id']})"
        in (second.json()["message"])
    )
    wait_note(pagerduty, incident, "[ACTION] stop-trading on gui-gateway: done")
    barrier(fresh, pagerduty)
    assert fresh.sim.emergency_calls == ["stop-trading"]
    assert len(action_notes(pagerduty, incident)) == 1


def test_a_workflow_naming_an_unknown_action_is_refused_with_a_note(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = known_incident(fresh, pagerduty.add_incident("actions-workflow-unknown"))
    answer = workflow(receiver, "drop-database", incident_id=incident, target="postgres")
    assert answer.status_code == 403
    assert "no action named 'drop-database'" in answer.json()["message"]
    wait_note(pagerduty, incident, "REFUSED: no action named 'drop-database'")
    assert fresh.engine.acted() == [] and fresh.sim.emergency_calls == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [
        ({}, {"incident_id": "P1", "approver": "a"}, 401, "missing bearer token"),
        ({"Authorization": "Bearer nope"}, {"incident_id": "P1", "approver": "a"}, 401, "wrong"),
        ({"Authorization": f"Bearer {ACTIONS_TOKEN}"}, {"approver": "a"}, 400, "incident_id"),
        ({"Authorization": f"Bearer {ACTIONS_TOKEN}"}, {"incident_id": "P1"}, 400, "approver"),
        ({"Authorization": f"Bearer {ACTIONS_TOKEN}"}, ["not", "an", "object"], 400, "JSON"),
        (
            {"Authorization": f"Bearer {ACTIONS_TOKEN}"},
            {"incident_id": "P1", "approver": "a", "target": 7},
            400,
            "target must be a string",
        ),
        (
            {"Authorization": f"Bearer {ACTIONS_TOKEN}"},
            {"incident_id": "P1", "approver": "a"},
            400,
            "request_id is required",
        ),
        (  # Arabic-Indic digits pass str.isalnum
            {"Authorization": f"Bearer {ACTIONS_TOKEN}"},
            {"incident_id": "P\u0661\u0662\u0663", "approver": "a", "request_id": "r1"},
            400,
            "ASCII letters and digits",
        ),
        (
            {"Authorization": f"Bearer {ACTIONS_TOKEN}"},
            {"incident_id": "PNOSUCH1", "approver": "a", "request_id": "r1"},
            404,
            "unknown incident PNOSUCH1: the responder has no record of it; nothing ran",
        ),
    ],
)
def test_the_workflow_endpoint_rejects_what_is_wrong_and_says_what(
    fresh: World, receiver: str, headers: dict, body: object, status: int, says: str
) -> None:
    answer = requests.post(
        f"{receiver}/actions/stop-trading", json=body, headers=headers, timeout=10
    )
    assert answer.status_code == status
    assert says in answer.json()["error"]
    assert fresh.sim.emergency_calls == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper than 32 levels"),
        (b'{"incident_id": "P1", "approver": "a", "request_id": "r", "n": Infinity}', "Infinity"),
        (b'{"incident_id": "P1", "approver": "\\ud800", "request_id": "r"}', "lone UTF-16"),
    ],
)
def test_the_workflow_endpoint_answers_400_to_bodies_no_reader_can_use(
    fresh: World, receiver: str, body: bytes, says: str
) -> None:
    headers = {"Authorization": f"Bearer {ACTIONS_TOKEN}", "Content-Type": "application/json"}
    answer = requests.post(
        f"{receiver}/actions/stop-trading", data=body, headers=headers, timeout=10
    )
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]
    assert fresh.sim.emergency_calls == []


def test_a_workflow_request_sent_again_is_refused_and_acts_once(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = known_incident(fresh, pagerduty.add_incident("actions-workflow-replay"))
    first = workflow(receiver, "stop-trading", "run-7f3a", incident_id=incident)
    assert first.status_code == 202, first.text
    wait_note(pagerduty, incident, "[ACTION] stop-trading on gui-gateway: done")
    again = workflow(receiver, "stop-trading", "run-7f3a", incident_id=incident)
    assert again.status_code == 409
    assert again.json() == {
        "error": "request_id 'run-7f3a' was received before; nothing ran",
        "field": "request_id",
    }
    barrier(fresh, pagerduty)
    assert fresh.sim.emergency_calls == ["stop-trading"]


def test_a_workflow_request_that_failed_mid_way_is_taken_when_the_sender_retries_it(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str, monkeypatch
) -> None:
    # Redis failed after the request_id was remembered: the answer is 503, and PagerDuty's
    # retry of the same request must run the action, not be refused as a replay.
    incident = known_incident(fresh, pagerduty.add_incident("actions-workflow-retry"))
    real_run = webhooks.actions.run
    failures = iter([RedisError("connection reset mid-way")])

    def run_failing_once(*args: object, **kwargs: object) -> object:
        if (failure := next(failures, None)) is not None:
            raise failure
        return real_run(*args, **kwargs)

    monkeypatch.setattr(webhooks.actions, "run", run_failing_once)
    failed = workflow(receiver, "stop-trading", "run-retry-1", incident_id=incident)
    assert failed.status_code == 503
    retried = workflow(receiver, "stop-trading", "run-retry-1", incident_id=incident)
    assert retried.status_code == 202, retried.text
    wait_note(pagerduty, incident, "[ACTION] stop-trading on gui-gateway: done")
    barrier(fresh, pagerduty)
    assert fresh.sim.emergency_calls == ["stop-trading"]


def test_the_workflow_endpoint_answers_503_while_no_token_is_configured(world: World) -> None:
    client = create_app(world.settings()).test_client()
    answer = client.post("/actions/stop-trading", json={"incident_id": "P1", "approver": "a"})
    assert answer.status_code == 503
    assert "RESPONDER_ACTIONS_TOKEN" in answer.get_json()["error"]


def test_a_dry_run_runs_nothing_and_notes_what_would_have_run(
    fresh: World, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("actions-dry-run")
    rt = Runtime(fresh.settings(actions_dry_run=True))
    sent: list[tuple[str, list]] = []
    outcome = approval.run(
        rt, "restart-service", "risk-manager", incident, "alice", "cli",
        lambda name, args: sent.append((name, args)),
    )  # fmt: skip
    assert outcome.ok and [name for name, _ in sent] == ["tasks.pipeline.act"]
    assert act.run_approved(rt, outcome.proposal_id, "test") == "dry-run"
    [note] = action_notes(pagerduty, incident)
    assert "DRY RUN, nothing ran" in note
    assert (
        f"docker restart {fresh.env.get('RESPONDER_COMPOSE_PROJECT', 'eafix')}/risk-manager" in note
    )
    assert fresh.engine.acted() == []


def test_the_audit_record_reaches_the_bundles_timeline_when_the_incident_closes(
    fresh: World, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("actions-timeline")
    rt = Runtime(fresh.settings(actions_dry_run=True))
    outcome = approval.run(
        rt, "restart-service", "risk-manager", incident, "alice", "workflow", lambda n, a: None
    )
    act.run_approved(rt, outcome.proposal_id, "test")
    closing.write_timeline(rt, incident, "actions-timeline-r1")
    timeline = json.loads(
        (rt.settings.bundle_dir / "actions-timeline-r1" / "timeline.json").read_text()
    )
    lines = [(e["by"], e["what"]) for e in timeline if e["what"].startswith("action ")]
    assert [(by, what.split(":")[0]) for by, what in lines] == [
        ("alice", f"action {outcome.proposal_id} proposed"),
        ("alice", f"action {outcome.proposal_id} approved"),
        ("responder", f"action {outcome.proposal_id} dry-run"),
    ]
    assert "docker restart eafix/risk-manager answered nothing (dry run)" in lines[-1][1]


def test_one_action_at_a_time_acts_on_a_service_the_next_waits_for_the_lock(
    fresh: World, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("actions-locked")
    rt = Runtime(fresh.settings())
    store = approval.proposals(rt)
    assert store.lock("risk-manager", "act-another", 60)  # another action is acting on it
    outcome = approval.run(
        rt, "restart-service", "risk-manager", incident, "alice", "cli", lambda n, a: None
    )
    with pytest.raises(act.TargetBusy):
        act.run_approved(rt, outcome.proposal_id, "test")
    assert fresh.restarts() == [] and store.get(outcome.proposal_id).status == "approved"  # type: ignore[union-attr]
    store.unlock("risk-manager", "act-another")
    assert act.run_approved(rt, outcome.proposal_id, "test") == "done"
    assert len(fresh.restarts()) == 1


def test_an_action_past_the_task_time_limit_is_noted_as_unknown_and_never_run_again(
    fresh: World, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("actions-out-of-time")
    rt = Runtime(fresh.settings())
    outcome = approval.run(
        rt, "restart-service", "risk-manager", incident, "alice", "cli", lambda n, a: None
    )
    approval.proposals(rt).begin(outcome.proposal_id, "the task the time limit stopped")
    assert act.ran_out_of_time(rt, outcome.proposal_id) == "unknown"
    assert act.run_approved(rt, outcome.proposal_id, "a redelivery") == "unknown"
    [note] = action_notes(pagerduty, incident)
    assert "outcome UNKNOWN: it ran past the worker's task time limit" in note
    assert fresh.engine.acted() == []


VISIBILITY_TIMEOUT = 6  # above the time limit; give_back_held does not wait for it
KILL_QUEUE = "responder-actions-kill"


def test_a_worker_killed_mid_action_does_not_run_it_again_and_says_the_outcome_is_unknown(
    fresh: World, pagerduty: FakePagerDuty, redis_client: redis.Redis, tmp_path: Path
) -> None:
    env = {
        **fresh.env,
        "RESPONDER_QUEUE": KILL_QUEUE,
        "RESPONDER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "RESPONDER_TASK_SOFT_TIME_LIMIT": "4",
        "RESPONDER_TASK_TIME_LIMIT": "5",
    }
    redis_client.delete(KILL_QUEUE, f"{KILL_QUEUE}-actions", f"{KILL_QUEUE}-urgent")
    incident = pagerduty.add_incident("actions-killed")
    fresh.engine.action_delay = 8.0  # the restart is in flight when the worker dies
    restarted = container(fresh, "risk-manager").restarts
    log = tmp_path / "workers.log"
    first = start_worker(env, log, "kill-first")
    second = None
    try:
        result = CliRunner().invoke(
            main,
            ["action", "run", "restart-service", "risk-manager", "--incident", incident,
             "--as", "alice"],
            env=env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        wait_for(lambda: fresh.restarts(), what="the restart to reach the engine")
        kill_worker(first)
        assert action_notes(pagerduty, incident) == []
        fresh.engine.action_delay = 0.0
        # Started now, while the time limit passes: it takes what is given back.
        second = start_worker(env, log, "kill-second")
        wait_for(
            lambda: give_back_held(
                redis_client, "kill-first", int(env["RESPONDER_TASK_TIME_LIMIT"])
            ),
            what="the killed worker's messages, past the time limit, to be given back",
        )
        note = wait_note(pagerduty, incident, "outcome UNKNOWN")
    finally:
        for worker in (first, second):
            if worker is not None:
                stop_worker(worker)
        redis_client.delete(KILL_QUEUE, f"{KILL_QUEUE}-actions", f"{KILL_QUEUE}-urgent")
        # The dead worker's request is still at the engine, asleep for action_delay: once this
        # test ended sooner than that, its restart landed in the next test, which had just
        # made the container exit, and found it running.
        wait_for(
            lambda: container(fresh, "risk-manager").restarts > restarted,
            what="the restart in flight at the engine to end",
        )
    assert "outcome UNKNOWN: the worker running it stopped after it began to act" in note
    assert "It is not run again." in note
    assert "- health ok at http://127.0.0.1:" in note
    assert "- the container's state: docker compose ps risk-manager" in note
    assert len(fresh.restarts()) == 1


# Proposals from the policy's rules, in the evidence note of a real run.
def container(world: World, service: str) -> FakeContainer:
    return next(c for c in world.engine.containers.values() if c.service == service)


def note_by(
    receiver: str, incident: str, text: str, n: str, agent: str = "PALLOWED"
) -> requests.Response:
    """Post a signed incident.annotated webhook: `agent` wrote a note saying `text`."""
    payload = annotated(f"NOTE-{n}", text)
    payload["event"]["data"]["incident"]["id"] = incident
    payload["event"]["agent"] = {"id": agent, "type": "user_reference", "summary": agent}
    raw = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sign(raw)}
    headers["X-Webhook-Id"] = f"wh-{n}"
    return requests.post(f"{receiver}/webhooks/pagerduty", data=raw, headers=headers, timeout=10)


@pytest.fixture
def exited(fresh: World) -> Iterator[World]:
    """risk-manager's container has exited; an exited container outside the catalog is there."""
    outsider = FakeContainer("evil-container", state="exited")
    fresh.engine.containers[outsider.id] = outsider
    container(fresh, "risk-manager").state = "exited"
    yield fresh
    del fresh.engine.containers[outsider.id]
    container(fresh, "risk-manager").state = "running"


def test_the_evidence_note_proposes_restarting_the_exited_service_and_a_note_approves_it_once(
    exited: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    # The alert's labels and annotations name a container and a URL outside the catalog.
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", proposals="yes"}')
    payload["alerts"][0]["labels"]["container"] = "evil-container"
    payload["alerts"][0]["labels"]["service"] = "evil-container"
    payload["alerts"][0]["annotations"]["runbook_url"] = "http://evil.example/restart"
    key = hashlib.sha256(payload["groupKey"].encode()).hexdigest()
    incident = pagerduty.add_incident(key, "[FIRING:1] SignalLatencyHigh")
    assert post_alert(receiver, payload).status_code == 202
    evidence = wait_for(
        lambda: [
            n["content"] for n in pagerduty.notes_for(incident) if " evidence: " in n["content"]
        ],
        timeout=60,
        what="the evidence note",
    )[0]
    ids = re.findall(r"\((act-[0-9a-f]{8})\): ", evidence)
    assert len(ids) == 1, evidence
    [proposal] = ids
    assert f"restart-service on risk-manager ({proposal}): its container exited" in evidence
    assert f'a note "/approve {proposal}" on this incident' in evidence
    assert f"responder action approve {proposal} --as NAME" in evidence
    assert re.search(r"Expires \d\d:\d\d UTC \(.*, 30m after it was proposed\)", evidence)
    assert "evil" not in evidence.split("Proposed actions")[1]
    assert exited.engine.acted() == []  # a proposal runs nothing by itself

    assert note_by(receiver, incident, f"/approve {proposal}", "prop-1").status_code == 202
    done = wait_note(pagerduty, incident, "[ACTION] restart-service on risk-manager: done")
    assert f"(proposal {proposal})" in done and "Approved by PALLOWED via note" in done
    assert note_by(receiver, incident, f"/approve {proposal}", "prop-2").status_code == 202
    barrier(exited, pagerduty)
    assert len(exited.restarts()) == 1
    assert not [r for r in exited.engine.acted() if "evil" in r]
    assert container(exited, "evil-container").state == "exited"
    history = [e["what"] for e in Runtime(exited.settings()).incidents.history(incident)]
    assert (
        f"action {proposal} proposed: restart-service on risk-manager by rule "
        "restart-exited-container: its container exited" in "\n".join(history)
    )


def test_a_retried_evidence_task_makes_the_runs_proposals_once(
    exited: World, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("actions-proposals-once")
    rt = Runtime(exited.settings())
    found = [{"name": "docker", "status": "failed", "tables": {"containers": [
        {"service": "risk-manager", "state": "exited"}]}}]  # fmt: skip
    fits = fitting_proposals(rt.policy, run_facts(rt.policy, Priority.P1, True, found))
    now = datetime.now(UTC)
    first = approval.propose_for_run(rt, "d-once-r1", incident, fits, now)
    again = approval.propose_for_run(rt, "d-once-r1", incident, fits, now + timedelta(minutes=1))
    assert [p.id for p in first] == [p.id for p in again] and len(first) == 1
    assert again[0].expires_at == first[0].expires_at
    history = [e["what"] for e in rt.incidents.history(incident)]
    assert sum(w.startswith(f"action {first[0].id} proposed") for w in history) == 1
    other_run = approval.propose_for_run(rt, "d-once-r2", incident, fits, now)
    assert other_run[0].id != first[0].id


# "assigned": whoever the incident is assigned to in PagerDuty when they approve.
def test_an_approver_assigned_to_the_incident_approves_by_note_and_it_runs_once(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = pagerduty.add_incident("actions-assigned")
    pagerduty.assign(incident, "PDANA")
    proposal = proposed_id(
        cli(fresh, "action", "propose", "resume-trading", "--incident", incident, "--as", "bot")
    )
    assert note_by(receiver, incident, f"/approve {proposal}", "assigned", "PDANA").ok
    done = wait_note(pagerduty, incident, "[ACTION] resume-trading on gui-gateway: done")
    assert "Approved by PDANA via note" in done
    assert fresh.sim.emergency_calls == ["resume-trading"]
    looked_up = [
        c for c in pagerduty.calls if c.method == "GET" and c.path == f"/incidents/{incident}"
    ]
    assert looked_up  # the worker asked PagerDuty who is assigned (the receiver did not)


def test_an_approver_not_assigned_to_the_incident_gets_a_note_and_nothing_runs(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = pagerduty.add_incident("actions-unassigned")
    pagerduty.assign(incident, "PDANA")
    proposal = proposed_id(
        cli(fresh, "action", "propose", "resume-trading", "--incident", incident, "--as", "bot")
    )
    assert note_by(receiver, incident, f"/approve {proposal}", "unassigned", "PBOB").ok
    note = wait_note(pagerduty, incident, "REFUSED")
    assert "not allowed: PBOB may not approve resume-trading (not assigned to the incident)" in note
    assert "PDANA" not in note  # who is assigned is never said
    assert "Nothing ran." in note
    barrier(fresh, pagerduty)
    assert fresh.sim.emergency_calls == []
    assert approval.proposals(Runtime(fresh.settings())).get(proposal).status == "proposed"  # type: ignore[union-attr]


def test_without_a_pagerduty_token_assignment_cannot_be_checked_and_the_approval_is_refused(
    fresh: World, redis_client: redis.Redis
) -> None:
    rt = Runtime(fresh.settings(pagerduty_token=Secret("")))
    proposal = approval.propose(rt, "resume-trading", None, "outbox-0123456789ab", "bot")
    sent: list[tuple[str, list]] = []
    outcome = approval.approve(rt, proposal.id, "PDANA", "cli", lambda n, a: sent.append((n, a)))
    assert outcome.status == "checking" and sent == [
        ("tasks.pipeline.approve_if_assigned", [proposal.id, "PDANA", "cli"])
    ]
    sent.clear()
    assert (
        act.approve_if_assigned(rt, proposal.id, "PDANA", "cli", lambda n, a: sent.append((n, a)))
        == "refused"
    )
    [(name, args)] = sent
    assert name == "tasks.pipeline.action_refused"
    assert "cannot check that PDANA is assigned to the incident: no PagerDuty token" in args[-1]
    assert "outbox mode" in args[-1]
    assert fresh.sim.emergency_calls == []


# `/run <action> [<target>]` in a note: proposed and approved by its author, down the same path.
def test_a_run_note_restarts_a_service_once_and_a_repeat_answers_already_done(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = pagerduty.add_incident("actions-run-note")
    text = "Restarting it.\n/run restart-service risk-manager"
    assert note_by(receiver, incident, text, "run-1").status_code == 202
    done = wait_note(pagerduty, incident, "[ACTION] restart-service on risk-manager: done")
    assert "Approved by PALLOWED via note; proposed by PALLOWED." in done
    assert note_by(receiver, incident, text, "run-2").status_code == 202  # typed again
    again = wait_note(pagerduty, incident, "runs nothing: already approved by PALLOWED")
    assert again.startswith("[ACTION] restart-service on risk-manager: /run by PALLOWED via note")
    barrier(fresh, pagerduty)
    assert len(fresh.restarts()) == 1


@pytest.fixture
def linked(fresh: World) -> Iterator[World]:
    """The engine's stop and start stop and start the simulated service, as the demo world's."""

    def changed(c: FakeContainer) -> None:
        if c.state == "running":
            fresh.sim.start_service(c.service)
        else:
            fresh.sim.stop_service(c.service)

    fresh.engine.on_change = changed
    yield fresh
    fresh.engine.on_change = None
    fresh.engine.set_state("risk-manager", "running")
    fresh.sim.start_service("risk-manager")


def test_safety_measures_docker_compose_stop_isolates_the_service_once_and_sees_it_down(
    linked: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = pagerduty.add_incident("actions-isolate")
    health = f"{linked.sim.url('risk-manager')}/healthz"
    assert requests.get(health, timeout=10).status_code == 200
    text = "Isolating it.\n/run isolate-service risk-manager"
    assert note_by(receiver, incident, text, "isolate-1").status_code == 202
    done = wait_note(pagerduty, incident, "[ACTION] isolate-service on risk-manager: done")
    assert "Approved by PALLOWED via note; proposed by PALLOWED." in done
    assert "Verification passed:\n- OK health down (HTTP 503 after " in done
    # One `docker stop` of that one container, through the Engine API; nothing else acted.
    [stop] = linked.engine.acted()
    assert re.fullmatch(
        rf"POST /v[\d.]+/containers/{container(linked, 'risk-manager').id}/stop.*", stop
    )
    assert container(linked, "risk-manager").state == "exited"
    assert requests.get(health, timeout=10).status_code == 503


@pytest.mark.parametrize(
    ("text", "author", "says"),
    [
        ("/run reboot-everything", "PALLOWED", "REFUSED: no action named 'reboot-everything'"),
        ("/run stop-trading", "PINTRUDER", "REFUSED: not allowed: PINTRUDER may not approve"),
        ("/run restart-service http://evil.example/x", "PALLOWED", "no catalog service named"),
        ("/run restart-service evil-container", "PALLOWED", "no catalog service named"),
    ],
)
def test_a_run_note_outside_what_is_allowed_gets_a_note_and_nothing_runs(
    fresh: World,
    pagerduty: FakePagerDuty,
    action_worker: None,
    receiver: str,
    text: str,
    author: str,
    says: str,
) -> None:
    incident = pagerduty.add_incident(f"actions-run-refused-{len(text)}-{author}")
    assert note_by(receiver, incident, text, f"run-no-{len(text)}-{author}", author).ok
    note = wait_note(pagerduty, incident, says)
    assert "Nothing ran." in note
    barrier(fresh, pagerduty)
    assert fresh.engine.acted() == [] and fresh.sim.emergency_calls == []


# Automatic rules: approved by the policy at once, at most once per target per limit.
def automatic_runtime(world: World, tmp_path: Path, **changes: object) -> Runtime:
    """Return a runtime whose policy restarts an exited container automatically (1 per 1h)."""
    policy = yaml.safe_load(Path(world.env["RESPONDER_POLICY"]).read_text())
    for rule in policy["actions"]["propose"]:
        if rule["name"] == "restart-exited-container":
            rule.update(automatic=True, at_most_once_per="1h")
    path = tmp_path / "automatic.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return Runtime(world.settings(policy_path=str(path), **changes))


def evidence_of_run(rt: Runtime, run_id: str, incident: str) -> tuple[RunState, list[dict]]:
    """Return a run's state and what the real docker collector finds in the fake engine now."""
    now = datetime.now(UTC)
    classification = Classification(Priority.P1, "sample-rule", "a sample")
    state = RunState(
        run_id, f"d-{run_id}", 1, f"key-{run_id}", "ServiceDown", "ServiceDown",
        classification, deadlines(Priority.P1, now, rt.policy), [], ["docker"],
        list(rt.policy.catalog), incident,
    )  # fmt: skip
    target = Target(services=tuple(rt.policy.catalog.values()))
    return state, [collect.collect_into_bundle(rt, run_id, "docker", target)]


def test_an_automatic_rule_runs_once_and_not_again_within_its_limit(
    exited: World, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    rt = automatic_runtime(exited, tmp_path)
    incident = pagerduty.add_incident("actions-automatic")
    sent: list[tuple[str, list]] = []
    state, entries = evidence_of_run(rt, "auto-r1", incident)

    def send(name: str, args: list) -> None:
        sent.append((name, args))

    [shown] = proposals.propose_actions(rt, state, entries, datetime.now(UTC), send)
    assert (shown["action"], shown["target"]) == ("restart-service", "risk-manager")
    assert shown["automatic"] and shown["rule"] == "restart-exited-container"
    assert sent == [("tasks.pipeline.act", [shown["id"]])]
    assert act.run_approved(rt, shown["id"], "test") == "done"
    assert len(exited.restarts()) == 1
    note = wait_note(pagerduty, incident, "[ACTION] restart-service on risk-manager: done")
    assert "Approved by policy (automatic) via automatic (rule restart-exited-container)" in note
    evidence = rt.voice.evidence(state.classification, "ServiceDown", [], "/b", proposals=[shown])
    assert f"({shown['id']}): its container exited" in evidence
    assert "AUTOMATIC by rule restart-exited-container: approved by the policy at once" in evidence

    # The evidence task retried: the same proposal, nothing approved again.
    sent.clear()
    assert proposals.propose_actions(rt, state, entries, datetime.now(UTC), send) == [shown]
    assert sent == []

    # It exits again within the hour: a new run proposes it for a person, runs nothing itself.
    container(exited, "risk-manager").state = "exited"
    state2, entries2 = evidence_of_run(rt, "auto-r2", incident)
    [waiting] = proposals.propose_actions(rt, state2, entries2, datetime.now(UTC), send)
    assert not waiting["automatic"] and sent == []
    assert (
        "not automatic this time: rule restart-exited-container runs it at most once per 1h"
        in (waiting["why"])
    )
    assert approval.proposals(rt).get(waiting["id"]).status == "proposed"  # type: ignore[union-attr]
    assert len(exited.restarts()) == 1


def test_an_automatic_action_in_a_dry_run_runs_nothing(
    exited: World, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    rt = automatic_runtime(exited, tmp_path, actions_dry_run=True)
    incident = pagerduty.add_incident("actions-automatic-dry")
    state, entries = evidence_of_run(rt, "auto-dry-r1", incident)
    [shown] = proposals.propose_actions(rt, state, entries, datetime.now(UTC), lambda n, a: None)
    assert shown["automatic"]
    assert act.run_approved(rt, shown["id"], "test") == "dry-run"
    assert "DRY RUN, nothing ran" in wait_note(pagerduty, incident, "restart-service")
    assert exited.engine.acted() == []


# The `validate` action: the runbook's Validation, checks only.
def test_validate_by_note_passes_every_check_and_lists_each(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = pagerduty.add_incident("actions-validate")
    assert note_by(receiver, incident, "/run validate", "validate", "PANYONE").ok
    note = wait_note(pagerduty, incident, "[ACTION] validate: validation")
    assert note.startswith("[ACTION] validate: validation PASSED: 10 of 10 checks passed in ")
    for service in SERVICES:
        assert f"- OK health {service}: ok" in note
    assert "- OK trading flow: a simulated tick makes a signal: " in note
    assert "- OK contract gui-gateway GET /api/reconcile/positions: HTTP 200, as expected" in note
    assert "- OK contract signal-generator GET /api/signals?limit=1: HTTP 200" in note
    assert "Run by PANYONE via note" in note and "FAILED" not in note
    assert fresh.engine.acted() == [] and fresh.sim.emergency_calls == []


def test_validate_reports_a_failing_check_first_and_says_failed(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("actions-validate-failing")
    fresh.sim.inject("reconciliation-failure")
    try:
        result = cli(fresh, "action", "run", "validate", "--incident", incident, "--as", "alice")
        assert result.exit_code == 0, result.output
        note = wait_note(pagerduty, incident, "[ACTION] validate: validation")
    finally:
        fresh.sim.clear()
    first, *lines = note.splitlines()
    assert first.startswith("[ACTION] validate: validation FAILED: 8 of 10 checks passed")
    assert lines[0].startswith("- FAILED ") and lines[1].startswith("- FAILED ")
    failed = "\n".join(lines[:2])
    assert "- FAILED health gui-gateway: degraded" in failed
    assert (
        "- FAILED contract gui-gateway GET /api/reconcile/positions: status=mismatch (expected ok)"
        in failed
    )
    record = approval.proposals(Runtime(fresh.settings())).get(proposed_id(result))
    assert record is not None and record.verified == "failed" and record.status == "done"


def test_an_expired_proposal_approved_by_note_gets_a_note_and_nothing_runs(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = pagerduty.add_incident("actions-expired-note")
    rt = Runtime(fresh.settings())
    long_ago = datetime.now(UTC) - timedelta(minutes=31)  # the policy's proposal_ttl is 30m
    proposal = approval.propose(rt, "restart-service", "risk-manager", incident, "bot", long_ago)
    assert note_by(receiver, incident, f"/approve {proposal.id}", "expired-note").ok
    note = wait_note(pagerduty, incident, "REFUSED: the proposal expired at")
    assert "approval by PALLOWED via note" in note and "Nothing ran." in note
    barrier(fresh, pagerduty)
    assert fresh.restarts() == []


# An approval re-checks what it approves (issue 24, finding 9): a proposal runs only while its
# incident is open and the reason its rule proposed it still holds; a resolved incident
# withdraws what still waits.


def resolve(rt: Runtime, incident: str) -> None:
    """Record PagerDuty's word that `incident` resolved."""
    event = Incident(id=incident, title="t", status="resolved", incident_key="")
    at = datetime.now(UTC)
    rt.incidents.apply(IncidentEvent(f"resolved-{incident}", "incident.resolved", at, event))


def restart_proposal(rt: Runtime, incident: str, run_id: str) -> str:
    """Propose restarting risk-manager as the run's rule does when its container exited."""
    found = [{"name": "docker", "status": "ok", "tables": {"containers": [
        {"service": "risk-manager", "state": "exited"}]}}]  # fmt: skip
    fits = fitting_proposals(rt.policy, run_facts(rt.policy, Priority.P1, True, found))
    [proposal] = approval.propose_for_run(rt, run_id, incident, fits, datetime.now(UTC))
    assert proposal.condition["service"] == "risk-manager"
    return proposal.id


def test_a_restart_approved_after_the_container_came_back_is_no_longer_needed_and_nothing_runs(
    exited: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("recheck-healthy")
    rt = Runtime(exited.settings())
    proposal = restart_proposal(rt, incident, "d-recheck-healthy")
    container(exited, "risk-manager").state = "running"  # it recovered on its own
    result = cli(exited, "action", "approve", proposal, "--as", "sre-eval")
    assert result.exit_code == 1, result.output
    assert (
        f"{proposal}: no longer needed: risk-manager's container is running now "
        "(proposed when it was exited or dead); nothing ran" in result.output
    )
    note = wait_note(pagerduty, incident, "no longer needed")
    assert "restart-service on risk-manager: approved by sre-eval: no longer needed" in note
    assert exited.restarts() == []
    history = "\n".join(e["what"] for e in rt.incidents.history(incident))
    assert f"action {proposal} not run: restart-service on risk-manager: no longer needed" in (
        history
    )


def test_a_restart_approved_while_the_container_is_still_exited_runs(
    exited: World, pagerduty: FakePagerDuty, action_worker: None
) -> None:
    incident = pagerduty.add_incident("recheck-still-exited")
    proposal = restart_proposal(Runtime(exited.settings()), incident, "d-recheck-exited")
    result = cli(exited, "action", "approve", proposal, "--as", "sre-eval")
    assert result.exit_code == 0, result.output
    wait_note(pagerduty, incident, "[ACTION] restart-service on risk-manager: done")
    assert len(exited.restarts()) == 1


def test_an_approved_action_whose_incident_resolved_before_it_ran_runs_nothing(
    fresh: World, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("recheck-resolved")
    rt = Runtime(fresh.settings())
    proposal = approval.propose(rt, "stop-trading", None, incident, "bot", announce=False)
    said, _ = approval.proposals(rt).add_approval(
        proposal.id, ALLOWED, "workflow", datetime.now(UTC), 1
    )
    assert said == "approved"
    resolve(rt, incident)
    assert act.run_approved(rt, proposal.id, "test") == "not needed"
    note = wait_note(pagerduty, incident, "no longer needed")
    assert f"no longer needed: incident {incident} is resolved. Nothing ran." in note
    assert fresh.sim.emergency_calls == [] and not fresh.sim.trading_stopped


def test_a_resolved_incident_withdraws_its_waiting_proposals_with_a_note_listing_them(
    fresh: World, pagerduty: FakePagerDuty
) -> None:
    incident = pagerduty.add_incident("recheck-withdraw")
    rt = Runtime(fresh.settings())
    ids = [
        proposed_id(
            cli(fresh, "action", "propose", name, *target, "--incident", incident, "--as", "b")
        )
        for name, target in (("stop-trading", ()), ("restart-service", ("risk-manager",)))
    ]
    resolve(rt, incident)
    assert closing.withdraw_proposals(rt, incident, "", datetime.now(UTC)) == 2
    note = wait_note(pagerduty, incident, "withdrawn")
    assert f"Incident {incident} resolved: 2 waiting proposals withdrawn; none will run" in note
    assert all(i in note for i in ids)
    result = cli(fresh, "action", "approve", ids[0], "--as", ALLOWED)
    assert result.exit_code == 1 and "already withdrawn" in result.output
    assert fresh.sim.emergency_calls == []


# Temporary Fixes, "4. Rollback - Return to known good state": the responder cannot deploy.
def test_rollback_approved_by_note_is_handed_to_a_person_with_the_exact_command_and_runs_nothing(
    fresh: World, pagerduty: FakePagerDuty, action_worker: None, receiver: str
) -> None:
    incident = pagerduty.add_incident("actions-rollback")
    rt = Runtime(fresh.settings())
    alert_at = datetime.now(UTC)
    before, deployed = "1" * 40, "2" * 40
    at = (alert_at - timedelta(minutes=12)).isoformat()
    row = {"commit": deployed[:7], "date": at, "revision": deployed, "parent": before}
    git = {"name": "git", "status": "ok", "tables": {"commits": [row]}}
    facts = run_facts(rt.policy, Priority.P1, True, [git], alert_at=alert_at)
    fits = [f for f in fitting_proposals(rt.policy, facts) if f.action == "rollback-deploy"]
    [proposal] = approval.propose_for_run(rt, "d-rollback-r1", incident, fits, alert_at)
    command = f"git checkout {before} && make docker-build && make docker-up"
    assert proposal.command == command and proposal.target == "deployment"

    assert note_by(receiver, incident, f"/approve {proposal.id}", "rb-1").status_code == 202
    note = wait_note(
        pagerduty, incident, "[ACTION] rollback-deploy: approved, TO BE RUN BY A PERSON"
    )
    assert f"Run exactly:\n{command}\n" in note
    assert "Approved by PALLOWED via note" in note
    record = approval.proposals(rt).get(proposal.id)
    assert record is not None and record.status == "by hand" and record.verified == "not run"
    assert record.ran == command
    # Nothing was called: no container acted on, no emergency endpoint.
    assert fresh.engine.acted() == [] and fresh.sim.emergency_calls == []
    history = "\n".join(e["what"] for e in rt.incidents.history(incident))
    assert f"action {proposal.id} by hand: rollback-deploy on deployment: {command}" in history
    # A person cannot propose it by hand: the revision comes from the git check only.
    refused = cli(fresh, "action", "run", "rollback-deploy", "--incident", incident, "--as", "x")
    assert refused.exit_code != 0
    wait_note(pagerduty, incident, "rollback-deploy is proposed by the policy when the git check")
