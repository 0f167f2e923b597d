"""The action catalog's rules, as the runbook's Safety Measures and Containment read them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.actions.execute import verify
from triage.actions import (
    ActionRefused,
    call_url,
    check_passed,
    check_url,
    expired,
    may_approve,
    resolve,
)
from triage.policy import ActionCheck, builtin, load_file

POLICIES = Path(__file__).resolve().parents[1] / "testdata" / "policies"
POLICY = builtin()


def test_the_builtin_catalog_ships_the_runbooks_four_actions_each_needing_approval() -> None:
    actions = POLICY.actions
    assert sorted(actions.catalog) == [
        "isolate-service", "restart-service", "resume-trading", "stop-trading",
    ]  # fmt: skip
    assert all(a.needs_approval and a.verify for a in actions.catalog.values())
    assert actions.proposal_ttl == timedelta(minutes=30)


def test_stop_trading_posts_the_runbooks_emergency_endpoint_on_the_gateway() -> None:
    resolved = resolve(POLICY, "stop-trading", None)
    assert call_url(resolved) == "http://gui-gateway:8080/emergency/stop-trading"
    assert resolved.action.call == "POST /emergency/stop-trading"


def test_restart_service_acts_on_the_catalog_service_named_at_approval() -> None:
    resolved = resolve(POLICY, "restart-service", "risk-manager")
    assert (resolved.service.name, resolved.action.docker) == ("risk-manager", "restart")


# Every name an approver, a workflow field or an alert label might send: only an exact catalog
# name picks a service, and nothing of the name reaches a URL, a container or an argument.
HOSTILE = [
    "risk-manager; docker rm -f $(docker ps -q)",
    "$(id)",
    "`id`",
    "../../etc/passwd",
    "risk-manager\nexecution-engine",
    "--help",
    "http://evil.example/",
    "risk-manager/../gui-gateway",
    "RISK-MANAGER",
    " risk-manager",
    "risk-manager ",
    "eafix-risk-manager-1",
    "*",
    "",
    "x" * 10_000,
]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_a_target_name_outside_the_catalog_is_refused(name: str) -> None:
    with pytest.raises(ActionRefused) as caught:
        resolve(POLICY, "restart-service", name)
    assert len(str(caught.value)) < 300  # a 10 KB name is not echoed back whole


@pytest.mark.parametrize("name", HOSTILE[:-2], ids=range(len(HOSTILE) - 2))
def test_a_fixed_target_cannot_be_swapped_for_another_name(name: str) -> None:
    with pytest.raises(ActionRefused, match="acts on gui-gateway only"):
        resolve(POLICY, "stop-trading", name)


@pytest.mark.parametrize(
    "name", ["stop-trading; rm -rf /", "../stop-trading", "STOP-TRADING", "", "shell"]
)
def test_an_action_outside_the_catalog_is_refused(name: str) -> None:
    with pytest.raises(ActionRefused, match="no action named"):
        resolve(POLICY, name, None)


def test_a_target_named_at_approval_must_be_named() -> None:
    with pytest.raises(ActionRefused, match="needs a catalog service"):
        resolve(POLICY, "isolate-service", None)


@pytest.mark.parametrize(
    ("approver", "allowed"),
    [
        ("PABC123", True),
        ("oncall@example.com", True),
        ("OnCall@Example.com", True),  # e-mails compare without case
        ("PXYZ999", False),
        ("someone@example.com", False),
        ("anyone", False),  # the word is a rule, not a person
    ],
)
def test_only_the_listed_people_may_approve_a_restricted_action(
    approver: str, allowed: bool
) -> None:
    action = load_file(POLICIES / "good" / "actions.yaml").actions.catalog["stop-api"]
    assert may_approve(action, approver) is allowed


def test_an_action_that_needs_no_approval_runs_for_whoever_asks() -> None:
    action = load_file(POLICIES / "good" / "actions.yaml").actions.catalog["stop-api"]
    assert may_approve(replace(action, needs_approval=False), "PXYZ999")


def test_anyone_may_approve_an_action_open_to_anyone() -> None:
    assert may_approve(POLICY.actions.catalog["restart-service"], "PANY")


def test_a_proposal_expires_at_its_expiry() -> None:
    at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert not expired(at, at - timedelta(seconds=1))
    assert expired(at, at)


@pytest.mark.parametrize(
    ("check", "status", "body", "passed"),
    [
        (ActionCheck(timedelta(seconds=5), health="ok"), 200, {"status": "ok"}, True),
        (ActionCheck(timedelta(seconds=5), health="ok"), 200, {"status": "degraded"}, False),
        (ActionCheck(timedelta(seconds=5), health="ok"), 503, {"status": "down"}, False),
        (ActionCheck(timedelta(seconds=5), health="ok"), None, None, False),
        (ActionCheck(timedelta(seconds=5), health="down"), None, None, True),
        (ActionCheck(timedelta(seconds=5), health="down"), 503, {}, True),
        (ActionCheck(timedelta(seconds=5), health="down"), 200, {"status": "ok"}, False),
        (
            ActionCheck(timedelta(seconds=5), get="/s", expect={"trading": "stopped"}),
            200,
            {"trading": "stopped"},
            True,
        ),
        (
            ActionCheck(timedelta(seconds=5), get="/s", expect={"trading": "stopped"}),
            200,
            {"trading": "active"},
            False,
        ),
        (
            ActionCheck(timedelta(seconds=5), get="/s", expect={"trading": "stopped"}),
            200,
            ["not", "a", "mapping"],
            False,
        ),
    ],
)
def test_a_verification_check_passes_only_on_what_it_expects(check, status, body, passed) -> None:
    assert check_passed(check, status, body) is passed


def test_a_check_reads_the_health_url_or_a_path_on_the_targets_own_host() -> None:
    gateway = POLICY.catalog["gui-gateway"]
    [stopped] = POLICY.actions.catalog["stop-trading"].verify
    [healthy] = POLICY.actions.catalog["restart-service"].verify
    assert check_url(gateway, stopped) == "http://gui-gateway:8080/api/trading/status"
    assert check_url(gateway, healthy) == gateway.health_url


def test_verification_reads_until_the_check_passes_or_its_time_is_up() -> None:
    resolved = resolve(POLICY, "restart-service", "risk-manager")  # health ok within 60s
    answers = iter([(503, {"status": "down"}), (None, None), (200, {"status": "ok"})])
    moments = iter([0.0, 1.0, 2.0, 3.0])
    [result] = verify(resolved, read=lambda url: next(answers), sleep=lambda s: None,
                      clock=lambda: next(moments))  # fmt: skip
    assert result == {"check": "health ok", "passed": True, "seconds": 3.0, "last": "HTTP 200"}


def test_verification_fails_a_check_that_never_passes_within_its_time() -> None:
    resolved = resolve(POLICY, "stop-trading", None)  # trading stopped within 10s
    moments = iter([0.0, 4.0, 8.0, 12.0])
    [result] = verify(resolved, read=lambda url: (200, {"trading": "active"}),
                      sleep=lambda s: None, clock=lambda: next(moments))  # fmt: skip
    assert result["passed"] is False and result["seconds"] == 12.0  # read on till 10 s passed
