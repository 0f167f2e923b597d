"""`/run` and a workflow's run claim (incident, action, target) for ten minutes so that a
repeat acts no more; a refused run must not hold that claim against an allowed person."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis
import yaml

from tasks.actions import approval
from tasks.names import ACT
from tasks.runtime import Runtime
from tasks.settings import Settings
from triage.policy import builtin_text


def runtime(settings: Settings, tmp_path: Path) -> Runtime:
    policy = yaml.safe_load(builtin_text())
    for action in policy["actions"]["catalog"]:
        if action["name"] == "stop-trading":
            action["approvers"] = ["PALLOWED"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return Runtime(replace(settings, policy_path=str(path)))


def test_a_refused_run_does_not_make_an_allowed_persons_run_answer_already(
    settings: Settings, tmp_path: Path, redis_client: redis.Redis
) -> None:
    rt = runtime(settings, tmp_path)
    sent: list[tuple[str, list[Any]]] = []

    def send(name: str, args: list[Any]) -> None:
        sent.append((name, args))

    incident = f"PCLAIM{secrets.token_hex(3)}"  # the claim outlives a test run
    refused = approval.run(rt, "stop-trading", None, incident, "PINTRUDER", "note", send)
    assert refused.status == "refused"
    allowed = approval.run(rt, "stop-trading", None, incident, "PALLOWED", "note", send)
    assert allowed.status == "approved", allowed.message
    assert [args for name, args in sent if name == ACT] == [[allowed.proposal_id]]
    # A repeat by anyone within the window is still answered "already", and acts no more.
    again = approval.run(rt, "stop-trading", None, incident, "PALLOWED", "note", send)
    assert again.status == "already" and again.proposal_id == allowed.proposal_id
    assert len([name for name, _ in sent if name == ACT]) == 1


def test_a_second_approval_of_a_runs_proposal_leaves_its_claim_alone(
    settings: Settings, tmp_path: Path
) -> None:
    rt = runtime(settings, tmp_path)
    incident = f"PCLAIM{secrets.token_hex(3)}"
    first = approval.run(rt, "stop-trading", None, incident, "PALLOWED", "note", lambda *_: None)
    assert first.status == "approved"
    # Another approval of the same proposal is "already", and the claim still holds.
    assert approval.approve(rt, first.proposal_id, "PINTRUDER", "note", lambda *_: None).status == (
        "already"
    )
    again = approval.run(rt, "stop-trading", None, incident, "PALLOWED", "note", lambda *_: None)
    assert again.status == "already"
