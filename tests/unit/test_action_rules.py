"""The action catalog's rules, as the runbook's Safety Measures and Containment read them."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.actions.execute import verify
from tasks.store.proposals import run_proposal_id
from triage.actions import (
    ALL_SERVICES,
    APPROVED_ALREADY,
    AUTHOR_NOT_SECOND,
    DEPLOYMENT,
    OTHER_KIND,
    ActionRefused,
    Fitting,
    call_url,
    check_passed,
    check_url,
    contract_problem,
    expired,
    fitting_proposals,
    manual_command,
    may_approve,
    needs_assignees,
    origin_first,
    resolve,
    run_facts,
    trading_resumed,
    uncounted_because,
)
from triage.models import Priority
from triage.policy import ActionCheck, ContractCheck, builtin, load_file

POLICIES = Path(__file__).resolve().parents[1] / "testdata" / "policies"
POLICY = builtin()


def test_the_builtin_catalog_ships_the_runbooks_actions_each_changing_one_needing_approval() -> (
    None
):
    actions = POLICY.actions
    assert sorted(actions.catalog) == [
        "isolate-service", "restart-service", "resume-trading", "rollback-deploy",
        "stop-execution-engine", "stop-trading", "validate",
    ]  # fmt: skip
    # A rollback is run by a person (the responder cannot deploy): nothing for it to verify.
    changing = [
        a for a in actions.catalog.values() if a.validation is None and not a.manual_command
    ]
    assert all(a.needs_approval and a.verify for a in changing)
    validate = actions.catalog["validate"]
    assert not validate.needs_approval  # checks only
    assert validate.validation is not None and validate.validation.health
    assert validate.validation.flow and len(validate.validation.contracts) == 3
    assert actions.proposal_ttl == timedelta(minutes=30)


def test_validate_checks_every_service_and_names_no_single_target() -> None:
    assert resolve(POLICY, "validate", None).service.name == ALL_SERVICES
    assert resolve(POLICY, "validate", ALL_SERVICES).action.name == "validate"
    with pytest.raises(ActionRefused, match="checks every catalog service, not 'risk-manager'"):
        resolve(POLICY, "validate", "risk-manager")


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (200, {"trading": "active", "status": "ok"}, ""),
        (None, None, "no answer"),
        (503, {"status": "ok"}, "HTTP 503"),
        (200, ["a", "list"], "HTTP 200, expected a JSON object"),
        (200, {"status": "ok"}, "missing trading"),
        (200, {"trading": "x", "status": "mismatch"}, "status=mismatch (expected ok)"),
    ],
)
def test_a_contract_check_says_what_the_answer_got_wrong(
    status: int | None, body: object, problem: str
) -> None:
    contract = ContractCheck("gui-gateway", "/s", fields=("trading",), expect={"status": "ok"})
    assert contract_problem(contract, status, body) == problem
    assert (
        contract_problem(ContractCheck("gui-gateway", "/s"), 200, None) == "HTTP 200, expected JSON"
    )


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


# Proposal rules: what the run found (the collectors' tables) -> the actions the note proposes.
def entries(containers: dict[str, str] = {}, health: dict[str, str] = {}) -> list[dict]:  # noqa: B006
    """Return manifest entries of the docker and http collectors showing these states."""
    return [
        {"name": "docker", "status": "failed", "tables": {"containers": [
            {"service": s, "container": f"eafix-{s}-1", "state": st} for s, st in containers.items()
        ]}},
        {"name": "http", "status": "failed", "tables": {"services": [
            {"service": s, "health": h} for s, h in health.items()
        ]}},
    ]  # fmt: skip


def proposed(priority: str = "P1", market_open: bool = True, **found: dict[str, str]) -> list:
    facts = run_facts(POLICY, Priority(priority), market_open, entries(**found))
    return [(f.rule.name, f.action, f.target) for f in fitting_proposals(POLICY, facts)]


def test_a_catalog_service_whose_container_exited_gets_restart_service_proposed_for_it() -> None:
    found = proposed(containers={"risk-manager": "exited", "gui-gateway": "running"})
    assert found == [("restart-exited-container", "restart-service", "risk-manager")]
    [fit] = fitting_proposals(
        POLICY, run_facts(POLICY, Priority.P1, True, entries({"risk-manager": "exited"}))
    )
    assert fit.why == "its container exited (risk-manager: container exited)"


def test_nothing_is_proposed_when_every_container_runs_and_every_service_is_healthy() -> None:
    assert (
        proposed("P0", containers={"risk-manager": "running"}, health={"risk-manager": "ok"}) == []
    )


def test_p0_in_market_hours_with_risk_management_down_proposes_stop_trading() -> None:
    unhealthy = proposed("P0", True, health={"risk-manager": "unreachable"})
    assert unhealthy == [("stop-trading-risk-down", "stop-trading", "gui-gateway")]
    exited = proposed("P0", True, containers={"risk-manager": "exited"})
    assert ("stop-trading-risk-down", "stop-trading", "gui-gateway") in exited
    assert ("restart-exited-container", "restart-service", "risk-manager") in exited


@pytest.mark.parametrize(
    ("priority", "market_open", "health"),
    [
        ("P1", True, {"risk-manager": "unreachable"}),  # not P0
        ("P0", False, {"risk-manager": "unreachable"}),  # the market is closed
        ("P0", True, {"risk-manager": "ok", "execution-engine": "unreachable"}),  # another one
    ],
)
def test_stop_trading_is_not_proposed_when_its_rule_does_not_hold(
    priority: str, market_open: bool, health: dict[str, str]
) -> None:
    assert proposed(priority, market_open, health=health) == []


@pytest.mark.parametrize("name", HOSTILE + ["evil-container", "eafix-risk-manager-1"])
def test_a_row_naming_anything_but_a_catalog_service_proposes_nothing(name: str) -> None:
    assert proposed("P0", containers={name: "exited"}, health={name: "unreachable"}) == []


def test_a_skipped_collector_and_a_rule_whose_action_left_the_catalog_propose_nothing() -> None:
    skipped = entries({"risk-manager": "exited"})
    skipped[0]["status"] = "skipped"
    assert fitting_proposals(POLICY, run_facts(POLICY, Priority.P0, True, skipped)) == []
    catalog = {k: v for k, v in POLICY.actions.catalog.items() if k != "restart-service"}
    smaller = replace(POLICY, actions=replace(POLICY.actions, catalog=catalog))
    facts = run_facts(smaller, Priority.P1, True, entries({"risk-manager": "exited"}))
    assert fitting_proposals(smaller, facts) == []


def test_trading_path_and_names_narrow_which_services_a_rule_picks() -> None:
    policy = load_file(POLICIES / "good" / "actions.yaml")
    [automatic, _] = policy.actions.propose
    assert automatic.automatic and automatic.at_most_once_per == timedelta(hours=1)
    facts = run_facts(policy, Priority.P2, False, entries({"api": "exited"}))
    assert [(f.action, f.target) for f in fitting_proposals(policy, facts)] == [
        ("restart-service", "api")  # api is not on the trading path
    ]
    on_path = replace(policy.catalog["api"], trading_path=True)
    moved = replace(policy, catalog={"api": on_path})
    assert fitting_proposals(moved, facts) == []


def test_two_rules_proposing_the_same_action_on_the_same_target_make_one_proposal() -> None:
    first = POLICY.actions.propose[0]
    twice = replace(
        POLICY, actions=replace(POLICY.actions, propose=(first, replace(first, name="again")))
    )
    facts = run_facts(twice, Priority.P1, True, entries({"risk-manager": "dead"}))
    assert [f.rule.name for f in fitting_proposals(twice, facts)] == ["restart-exited-container"]


def test_a_runs_proposal_ids_are_the_same_on_every_retry_and_differ_by_run_action_target() -> None:
    one = run_proposal_id("d1-r1", "restart-service", "risk-manager")
    assert re.fullmatch(r"act-[0-9a-f]{8}", one)
    assert one == run_proposal_id("d1-r1", "restart-service", "risk-manager")
    others = {
        run_proposal_id("d1-r2", "restart-service", "risk-manager"),
        run_proposal_id("d1-r1", "isolate-service", "risk-manager"),
        run_proposal_id("d1-r1", "restart-service", "gui-gateway"),
    }
    assert one not in others and len(others) == 3


def test_assigned_lets_approve_exactly_the_incidents_current_assignees() -> None:
    action = replace(POLICY.actions.catalog["resume-trading"], approvers=("assigned", "PLEAD"))
    assert may_approve(action, "PLEAD")  # named: no lookup needed
    assert not needs_assignees(action, "PLEAD")
    assert needs_assignees(action, "PDANA")
    assert may_approve(action, "PDANA", ["PBOB", "PDANA"])
    assert may_approve(action, "pdana", ["PDANA"])  # ids compare as the policy's names do
    assert not may_approve(action, "PDANA", ["PBOB"])
    assert not may_approve(action, "PDANA")  # nobody is assigned
    assert not may_approve(action, "", [""])
    plain = replace(action, approvers=("PLEAD",))
    assert not needs_assignees(plain, "PDANA") and not may_approve(plain, "PDANA", ["PDANA"])


def test_the_default_policy_ships_its_proposal_rules_and_none_automatic() -> None:
    rules = POLICY.actions.propose
    assert [(r.name, r.action) for r in rules] == [
        ("restart-exited-container", "restart-service"),
        ("stop-trading-risk-down", "stop-trading"),
        ("stop-trading-p0-on-trading-path", "stop-trading"),
        ("stop-trading-complete-outage", "stop-trading"),
        ("rollback-recent-deploy", "rollback-deploy"),
    ]
    assert not any(r.automatic for r in rules)


# The two-person rule: who counts toward an action's approvals_required.
@pytest.mark.parametrize(
    ("approvals", "approver", "author", "why"),
    [
        ([], "dana@eafix.example", "responder (rule x)", ""),
        ([], "dana@eafix.example", "dana@eafix.example", ""),  # the author may be the first
        (["dana@eafix.example"], "lee@eafix.example", "responder", ""),
        (["dana@eafix.example"], "Dana@EAFIX.example", "responder", APPROVED_ALREADY),
        (["lee@eafix.example"], "dana@eafix.example", "dana@eafix.example", AUTHOR_NOT_SECOND),
        (["PDANA"], "PDANA", "PDANA", APPROVED_ALREADY),  # ran /run, then /approve: still one
        (["PLEE01"], "PDANA01", "responder", ""),
        # Dana's note (her PagerDuty id), then her personal link (her e-mail): she is one person.
        (
            ["PDANA01"],
            "dana@eafix.example",
            "responder",
            OTHER_KIND.format(kind="an e-mail", first="a PagerDuty id"),
        ),
        (
            ["lee@eafix.example"],
            "PDANA01",
            "responder",
            OTHER_KIND.format(kind="a PagerDuty id", first="an e-mail"),
        ),
    ],
    ids=[
        "first",
        "author-first",
        "second-person",
        "same-twice",
        "author-second",
        "run-then-approve",
        "two-pagerduty-ids",
        "an-email-after-a-pagerduty-id",
        "a-pagerduty-id-after-an-email",
    ],
)
def test_the_same_person_twice_counts_once_and_the_author_is_never_the_second_approver(
    approvals: list[str], approver: str, author: str, why: str
) -> None:
    assert uncounted_because(approvals, approver, author) == why


def test_the_builtin_policy_needs_two_people_to_resume_trading_and_one_to_stop_it() -> None:
    catalog = builtin().actions.catalog
    assert catalog["stop-trading"].approvals_required == 1
    assert catalog["resume-trading"].approvals_required == 2


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (
            "risk-manager",
            [("stop-trading", "gui-gateway"), ("restart-service", "risk-manager"),
             ("restart-service", "execution-engine"), ("restart-service", "gui-gateway")],
        ),
        (
            None,
            [("stop-trading", "gui-gateway"), ("restart-service", "execution-engine"),
             ("restart-service", "risk-manager"), ("restart-service", "gui-gateway")],
        ),
    ],
    ids=["the origin's restart comes first, containment still before it", "no origin: rules order"],
)  # fmt: skip
def test_proposals_name_the_probable_origin_first_within_each_action(origin, expected) -> None:
    rule = builtin().actions.propose[0]
    fitting = [
        Fitting(rule, action, target, "why")
        for action, target in [("stop-trading", "gui-gateway"),
                               ("restart-service", "execution-engine"),
                               ("restart-service", "risk-manager"),
                               ("restart-service", "gui-gateway")]
    ]  # fmt: skip
    assert [(f.action, f.target) for f in origin_first(fitting, origin)] == expected


# Safety Measures ("If trading must be stopped immediately"): stop-trading for every runbook P0
# on the trading path while the market trades, by the first way whose target answers.
def trading(positions: str) -> dict:
    """Return the trading collector's entry: positions open, none, or unreadable (503)."""
    rows = {
        "open": [{"endpoint": "positions", "http_status": 200, "open_positions": 2}],
        "none": [{"endpoint": "positions", "http_status": 200, "open_positions": 0}],
        "unknown": [{"endpoint": "positions", "http_status": 503}],
    }[positions]
    return {"name": "trading", "status": "ok", "tables": {"endpoints": rows}}


GATEWAY_UP = {"gui-gateway": "ok"}
ALL_DOWN = {s: "down (503)" for s in POLICY.catalog}
ENGINE_SEEN = {"execution-engine": "exited"}


@pytest.mark.parametrize(
    ("line", "rule", "market_open", "positions", "health", "containers", "expected"),
    [
        ("risk management system failure", "risk-management-failure", True, "none",
         GATEWAY_UP, {}, ("stop-trading", "gui-gateway")),
        ("data corruption affecting positions", "data-corruption", True, "open",
         GATEWAY_UP, {}, ("stop-trading", "gui-gateway")),
        ("security breach with active exploitation (an unauthorized trade)", "security-breach",
         True, "none", GATEWAY_UP, {}, ("stop-trading", "gui-gateway")),
        ("complete outage with positions open", "complete-outage", True, "open",
         GATEWAY_UP, {}, ("stop-trading", "gui-gateway")),
        ("complete outage, positions unreadable, gateway down: stop the execution engine",
         "complete-outage", True, "unknown", ALL_DOWN, ENGINE_SEEN,
         ("stop-execution-engine", "execution-engine")),
        ("complete outage with no open position: nothing to stop", "complete-outage", True,
         "none", GATEWAY_UP, {}, None),
        ("a P0 while the market is closed: no trading to stop", "data-corruption", False, "open",
         GATEWAY_UP, {}, None),
    ],
)  # fmt: skip
def test_safety_measures_stop_trading_for_every_p0_on_the_trading_path_by_a_way_that_answers(
    line: str,
    rule: str,
    market_open: bool,
    positions: str,
    health: dict[str, str],
    containers: dict[str, str],
    expected: tuple[str, str] | None,
) -> None:
    found = [*entries(containers, health), trading(positions)]
    facts = run_facts(POLICY, Priority.P0, market_open, found, rule)
    stops = [
        (f.action, f.target)
        for f in fitting_proposals(POLICY, facts)
        if f.action in ("stop-trading", "stop-execution-engine")
    ]
    assert stops == ([expected] if expected else []), line


def test_the_proposal_says_which_way_to_stop_trading_it_took_and_why() -> None:
    found = [*entries(ENGINE_SEEN, ALL_DOWN), trading("unknown")]
    facts = run_facts(POLICY, Priority.P0, True, found, "complete-outage")
    [fit] = [f for f in fitting_proposals(POLICY, facts) if f.action == "stop-execution-engine"]
    # Risk management is down too in a complete outage: the first rule that fits says why.
    assert fit.why == (
        "P0 during market hours with risk management down (risk-manager: health down (503)); "
        "by stop-execution-engine "
        "on execution-engine, which answers (container exited), not stop-trading (gui-gateway: "
        "health down (503))"
    )
    # Neither way answers: the first is proposed anyway, and the note says so.
    facts = run_facts(POLICY, Priority.P0, True, [trading("unknown")], "complete-outage")
    [fit] = fitting_proposals(POLICY, facts)
    assert (fit.action, fit.target) == ("stop-trading", "gui-gateway")
    assert fit.why.endswith(
        "no way answers (stop-trading (gui-gateway: health not checked); stop-execution-engine "
        "(execution-engine: container not seen)): stop-trading is proposed anyway"
    )


# Temporary Fixes, "4. Rollback - Return to known good state", after "Check recent deployments"
# (`git log --since="24 hours ago"`): a deploy within the policy's window (30m) before the
# alert proposes returning to the revision before it, by the catalog's exact command.
ALERT_AT = datetime(2027, 3, 3, 14, 0, tzinfo=UTC)
SHA = {n: (c * 40) for n, c in zip(("a", "b", "c", "d"), "abcd", strict=True)}


def git(*commits: tuple[str, str, timedelta]) -> dict:
    """Return the git collector's entry: (revision, parent, time before the alert), newest first."""
    rows = [
        {"commit": rev[:7], "date": (ALERT_AT - before).isoformat(), "author": "dev",
         "revision": rev, "parent": parent, "subject": f"Deploy {rev[:4]}"}
        for rev, parent, before in commits
    ]  # fmt: skip
    return {"name": "git", "status": "ok", "tables": {"commits": rows}}


M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("line", "entry", "alert_at", "expected_revision"),
    [
        ("a deploy 12 minutes before the alert: back to the revision before it",
         git((SHA["b"], SHA["a"], 12 * M)), ALERT_AT, SHA["a"]),
        ("a deploy exactly at the window's edge (30 minutes) still counts",
         git((SHA["b"], SHA["a"], 30 * M)), ALERT_AT, SHA["a"]),
        ("a deploy 31 minutes before: outside the window, nothing proposed",
         git((SHA["b"], SHA["a"], 31 * M)), ALERT_AT, None),
        ("a deploy after the alert started did not cause it", git((SHA["b"], SHA["a"], -5 * M)),
         ALERT_AT, None),
        ("two deploys in the window: back to before the first of them",
         git((SHA["c"], SHA["b"], 5 * M), (SHA["b"], SHA["a"], 20 * M)), ALERT_AT, SHA["a"]),
        ("no commit in the window", git(), ALERT_AT, None),
        ("a parent that is not a sha (text, not git's) is never put into a command",
         git((SHA["b"], "main; rm -rf /", 5 * M)), ALERT_AT, None),
        ("the git check did not run (skipped): no deploy is known",
         {"name": "git", "status": "skipped", "tables": {}}, ALERT_AT, None),
        ("the alert's start is unknown: no deploy counts", git((SHA["b"], SHA["a"], 5 * M)),
         None, None),
    ],
)  # fmt: skip
def test_rollback_return_to_known_good_state_when_a_deploy_came_shortly_before_the_alert(
    line: str, entry: dict, alert_at: datetime | None, expected_revision: str | None
) -> None:
    facts = run_facts(POLICY, Priority.P1, True, [entry], "partial-outage", alert_at=alert_at)
    rollbacks = [f for f in fitting_proposals(POLICY, facts) if f.action == "rollback-deploy"]
    if expected_revision is None:
        assert rollbacks == [], line
        return
    [fit] = rollbacks
    assert fit.target == DEPLOYMENT, line
    assert fit.command == (
        f"git checkout {expected_revision} && make docker-build && make docker-up"
    ), line
    assert fit.command in fit.why, line  # the proposal shows the command exactly


def test_the_rollback_proposal_says_which_deploy_and_that_a_person_runs_it() -> None:
    facts = run_facts(
        POLICY, Priority.P1, True, [git((SHA["b"], SHA["a"], 12 * M))], "", alert_at=ALERT_AT
    )
    [fit] = fitting_proposals(POLICY, facts)
    assert fit.why == (
        f"a deploy shortly before the alert (deploy {SHA['b'][:12]} 'Deploy bbbb' 12m before "
        f"the alert); back to {SHA['a'][:12]}, run by a person: git checkout {SHA['a']} && "
        "make docker-build && make docker-up"
    )


@pytest.mark.parametrize(
    "revision",
    ["main", "HEAD~1", "abc", "ABCDEF1", "a" * 41, "abcdef1 && curl evil", "$(id)", ""],
)
def test_a_rollback_command_takes_a_git_sha_and_nothing_else(revision: str) -> None:
    action = POLICY.actions.catalog["rollback-deploy"]
    with pytest.raises(ActionRefused, match="needs a git sha"):
        manual_command(action, revision)
    assert manual_command(action, "abcdef1") == (
        "git checkout abcdef1 && make docker-build && make docker-up"
    )


def test_a_rollback_acts_on_the_deployment_only() -> None:
    assert resolve(POLICY, "rollback-deploy", None).service.name == DEPLOYMENT
    assert resolve(POLICY, "rollback-deploy", DEPLOYMENT).service.name == DEPLOYMENT
    with pytest.raises(ActionRefused, match="acts on the deployment"):
        resolve(POLICY, "rollback-deploy", "risk-manager")


# Safety Measures while the cause persists: after a way to stop trading ran, one read of its
# own checks tells whether trading resumed.
STOPPED = ActionCheck(within=timedelta(seconds=10), get="/api/trading/status",
                      expect={"trading": "stopped"})  # fmt: skip
ENGINE_DOWN = ActionCheck(within=timedelta(seconds=30), health="down")


@pytest.mark.parametrize(
    ("line", "reads", "expected"),
    [
        ("the gateway says trading=active: resumed", [(STOPPED, 200, {"trading": "active"})],
         True),
        ("the gateway says trading=stopped: still stopped", [(STOPPED, 200,
         {"trading": "stopped"})], False),
        ("the gateway does not answer: nothing can be told", [(STOPPED, None, None)], None),
        ("the gateway answers 503: it answered, and trading is not stopped there",
         [(STOPPED, 503, None)], True),
        ("the stopped execution engine answers healthy again: resumed",
         [(ENGINE_DOWN, 200, {"status": "ok"})], True),
        ("the execution engine still does not answer: still stopped",
         [(ENGINE_DOWN, None, None)], False),
        ("no check to read: nothing can be told", [], None),
    ],
)  # fmt: skip
def test_safety_measures_trading_resumed_while_the_cause_persists_is_read_from_the_ways_checks(
    line: str, reads: list, expected: bool | None
) -> None:
    assert trading_resumed(reads) is expected, line


def test_the_builtin_policy_reads_trading_again_every_minute_by_each_way_to_stop_it() -> None:
    again = POLICY.actions.stop_again
    assert again is not None and again.every == timedelta(minutes=1)
    assert POLICY.actions.ways_to_stop() == ("stop-trading", "stop-execution-engine")
