"""The pure rules of runbook actions: which target an approval may name, who may approve,
where a call goes, whether a check passed. No network, no clock: time is an argument.

A target is a catalog service picked by its exact name; nothing an approver or an alert sends
ever becomes part of a URL, a container filter or an argument.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from triage.communication import trading_impact
from triage.models import Priority
from triage.policy import (
    Action,
    ActionCheck,
    ContractCheck,
    Policy,
    ProposalRule,
    Service,
    ServiceCondition,
    format_duration,
    service_endpoint,
)

ANYONE = "anyone"
# An approver kind: whoever the incident is assigned to in PagerDuty when they approve.
ASSIGNED = "assigned"
# The target of a validation: every catalog service (it names no single one).
ALL_SERVICES = "all-services"
# The target of a manual command (a rollback): the deployment, run by a person.
DEPLOYMENT = "deployment"
# What a revision put into a command may be: a git sha, nothing else (never label text).
REVISION = re.compile(r"[0-9a-f]{7,40}")


class ActionRefused(ValueError):
    """An action that cannot run as asked; the message says why, for the note and the caller."""


@dataclass(frozen=True)
class Resolved:
    """An action and the one catalog service it acts on."""

    action: Action
    service: Service


def resolve(policy: Policy, action_name: str, target: str | None) -> Resolved:
    """Return the action named and its catalog target; raise ActionRefused saying why not.

    A fixed target ignores nothing silently: naming another service is refused.
    """
    action = policy.actions.catalog.get(action_name)
    if action is None:
        known = ", ".join(sorted(policy.actions.catalog)) or "none"
        raise ActionRefused(f"no action named {_shown(action_name)} (known: {known})")
    if action.validation is not None:
        if target and target != ALL_SERVICES:
            raise ActionRefused(f"{action.name} checks every catalog service, not {_shown(target)}")
        return Resolved(action, Service(ALL_SERVICES, ""))
    if action.manual_command:
        if target and target != DEPLOYMENT:
            raise ActionRefused(f"{action.name} acts on the deployment, not {_shown(target)}")
        return Resolved(action, Service(DEPLOYMENT, ""))
    if action.named_at_approval:
        if not target:
            raise ActionRefused(f"{action.name} needs a catalog service to act on")
        service = policy.catalog.get(target)
        if service is None:
            known = ", ".join(sorted(policy.catalog))
            raise ActionRefused(f"no catalog service named {_shown(target)} (known: {known})")
        return Resolved(action, service)
    if target and target != action.service:
        raise ActionRefused(f"{action.name} acts on {action.service} only, not on {_shown(target)}")
    return Resolved(action, policy.catalog[action.service])


def may_approve(action: Action, approver: str, assignees: Iterable[str] = ()) -> bool:
    """Return True when `approver` (a PagerDuty user id, an e-mail or a name) may approve.

    `assignees`: the PagerDuty user ids the incident is assigned to now, for an action that
    lets "assigned" approve. An action the policy says needs no approval runs for whoever
    asks it through a path.
    """
    if not action.needs_approval:
        return True
    allowed = {a.lower() for a in action.approvers}
    who = approver.strip().lower()
    if ANYONE in allowed or who in allowed:
        return True
    return ASSIGNED in allowed and bool(who) and who in {a.strip().lower() for a in assignees}


def needs_assignees(action: Action, approver: str) -> bool:
    """Return True when only the incident's assignees can tell whether `approver` may approve."""
    return not may_approve(action, approver) and ASSIGNED in {a.lower() for a in action.approvers}


# Why an approval does not count toward an action's `approvals_required`.
APPROVED_ALREADY = "approved it already"
AUTHOR_NOT_SECOND = "proposed it, and its author never counts as a second approver"
# One person holds an e-mail (a personal link) and a PagerDuty id (a note): counted across the
# two, she could approve twice. The approvals of one proposal must all name people one way.
OTHER_KIND = (
    "is named by {kind}, the first approval by {first}: one person holds both an e-mail and a "
    "PagerDuty id, so every approval of a two-person action must come the way the first did"
)


def identity_kind(identity: str) -> str:
    """Return how an approver is named: "an e-mail" or "a PagerDuty id" (or a Slack mapping)."""
    return "an e-mail" if "@" in identity else "a PagerDuty id"


def uncounted_because(approvals: Sequence[str], approver: str, author: str) -> str:
    """Say why `approver` does not count toward a proposal's approvals ("" when they do).

    `approvals`: those counted so far. The same person twice counts once; the proposal's
    author (who ran `/run` or proposed it) may be its first approver, never a later one.
    """
    who = approver.strip().lower()
    if who in {a.strip().lower() for a in approvals}:
        return APPROVED_ALREADY
    if approvals and who == author.strip().lower():
        return AUTHOR_NOT_SECOND
    if approvals and identity_kind(approver) != identity_kind(approvals[0]):
        return OTHER_KIND.format(kind=identity_kind(approver), first=identity_kind(approvals[0]))
    return ""


def expired(expires_at: datetime, now: datetime) -> bool:
    """Return True when a proposal expiring at `expires_at` can no longer be approved."""
    return now >= expires_at


def call_url(resolved: Resolved) -> str:
    """Return the URL of an HTTP action: the target's host and the catalog's path."""
    return service_endpoint(resolved.service, resolved.action.http_path)


def check_url(service: Service, check: ActionCheck) -> str:
    """Return the URL a verification check reads: the health URL or a path on the host."""
    return service_endpoint(service, check.get) if check.get else service.health_url


def check_passed(check: ActionCheck, status: int | None, body: Any) -> bool:
    """Return True when one read of a check's URL (status None: no answer) meets the check."""
    if check.health == "down":
        return status is None or status >= 500
    if status is None or status >= 400:
        return False
    if check.health == "ok":
        return not isinstance(body, Mapping) or body.get("status", "ok") == "ok"
    return isinstance(body, Mapping) and all(
        str(body.get(key)) == value for key, value in check.expect.items()
    )


def trading_resumed(reads: Iterable[tuple[ActionCheck, int | None, Any]]) -> bool | None:
    """Return whether one read of each check of a way to stop trading shows trading again.

    True when a check that answered no longer passes (the gateway says trading=active, the
    stopped engine answers healthy); False when every check still passes; None when a check
    failed without an answer and none showed trading: nothing can be told.
    """
    reads = list(reads)
    if not reads:
        return None
    passed = [check_passed(check, status, body) for check, status, body in reads]
    if any(not ok and status is not None for ok, (_, status, _) in zip(passed, reads, strict=True)):
        return True
    return False if all(passed) else None


def contract_problem(contract: ContractCheck, status: int | None, body: Any) -> str:
    """Say what one read of a contract check's path got wrong ("" when it meets the contract)."""
    if status is None:
        return "no answer"
    if status >= 400:
        return f"HTTP {status}"
    if (contract.fields or contract.expect) and not isinstance(body, Mapping):
        return f"HTTP {status}, expected a JSON object"
    if body is None:
        return f"HTTP {status}, expected JSON"
    missing = [f for f in contract.fields if f not in body]
    if missing:
        return f"missing {', '.join(missing)}"
    wrong = [f"{k}={body.get(k)} (expected {v})" for k, v in contract.expect.items()
             if str(body.get(k)) != v]  # fmt: skip
    return ", ".join(wrong)


def describe_contract(contract: ContractCheck) -> str:
    """Say what a contract check reads, for the validation's note."""
    return f"contract {contract.service} GET {contract.get}"


def describe_check(check: ActionCheck) -> str:
    """Say what a check waits for, for notes and the audit record."""
    if check.health:
        return f"health {check.health}"
    wanted = ", ".join(f"{k}={v}" for k, v in check.expect.items())
    return f"GET {check.get} says {wanted}"


def manual_command(action: Action, revision: str) -> str:
    """Return the exact command a person runs: the catalog's template with a checked git sha.

    Raise ActionRefused when `revision` is not a lowercase hex sha of 7 to 40 digits.
    """
    if not REVISION.fullmatch(revision):
        raise ActionRefused(f"{action.name} needs a git sha, not {_shown(revision)}")
    return action.manual_command.replace("{revision}", revision)


@dataclass(frozen=True)
class Deploy:
    """One deploy the git collector saw: its revision, the one before it, and when."""

    revision: str
    parent: str
    at: datetime
    subject: str = ""


def deploys_of(entries: Iterable[Mapping[str, Any]]) -> tuple[Deploy, ...]:
    """Read the deploys (commits of the deploy repository) from the git collector's table.

    A row without a sha, a parent sha or a readable time is left out: no rollback stands on it.
    """
    found = []
    for entry in entries:
        if entry.get("name") != "git" or entry.get("status") != "ok":
            continue
        for row in (entry.get("tables") or {}).get("commits") or ():
            if not isinstance(row, Mapping):
                continue
            revision, parent = str(row.get("revision", "")), str(row.get("parent", ""))
            if not (REVISION.fullmatch(revision) and REVISION.fullmatch(parent)):
                continue
            try:
                at = datetime.fromisoformat(str(row.get("date", "")))
            except ValueError:
                continue
            if at.tzinfo is None:
                continue
            found.append(Deploy(revision, parent, at, str(row.get("subject", ""))[:80]))
    return tuple(found)


def recent_deploys(
    deploys: Iterable[Deploy], alert_at: datetime | None, window: timedelta
) -> list[Deploy]:
    """Return the deploys at most `window` before the alert started, oldest first.

    A deploy after the alert started did not cause it; without the alert's time, none counts.
    """
    if alert_at is None:
        return []
    return sorted((d for d in deploys if alert_at - window <= d.at <= alert_at), key=lambda d: d.at)


@dataclass(frozen=True)
class RunFacts:
    """What a run found, as proposal rules read it: only catalog services appear here."""

    priority: Priority
    market_open: bool
    containers: Mapping[str, str] = field(default_factory=dict)  # service -> container state
    health: Mapping[str, str] = field(default_factory=dict)  # service -> its health ("ok", ...)
    rule: str = ""  # the classification rule that gave the priority
    positions: str = "unknown"  # open, none or unknown: what the trading collector could read
    deploys: tuple[Deploy, ...] = ()  # what the git collector saw of the deploy repository
    alert_at: datetime | None = None  # when the run's first alert started


@dataclass(frozen=True)
class Fitting:
    """An action a proposal rule proposes for a run: on which catalog service, and why."""

    rule: ProposalRule
    action: str
    target: str
    why: str
    service: str | None = None  # the service whose evidence met the rule (may differ from target)
    command: str = ""  # a manual action's exact command, for the person who runs it


def run_facts(
    policy: Policy,
    priority: Priority,
    market_open: bool,
    entries: Iterable[Mapping[str, Any]],
    rule: str = "",
    alert_at: datetime | None = None,
) -> RunFacts:
    """Read the facts proposal rules use from a run's manifest entries (the collectors' tables).

    A row naming anything but a catalog service is ignored: what an alert names never
    becomes a target.
    """
    containers: dict[str, str] = {}
    health: dict[str, str] = {}
    entries = list(entries)
    for entry in entries:
        if entry.get("status") == "skipped":
            continue
        tables = entry.get("tables") or {}
        for row in tables.get("containers") or ():
            if isinstance(row, Mapping) and row.get("service") in policy.catalog:
                containers[str(row["service"])] = str(row.get("state", "unknown"))
        for row in tables.get("services") or ():
            if isinstance(row, Mapping) and row.get("service") in policy.catalog:
                health[str(row["service"])] = str(row.get("health", "unknown"))
    return RunFacts(
        priority,
        market_open,
        containers,
        health,
        rule,
        positions_of(entries),
        deploys_of(entries),
        alert_at,
    )


def positions_of(entries: Iterable[Mapping[str, Any]]) -> str:
    """Say what the trading collector read of open positions: open, none or unknown."""
    impact = trading_impact(entries)
    if not impact.positions_read:
        return "unknown"
    return "open" if impact.open_positions else "none"


def fitting_proposals(policy: Policy, facts: RunFacts) -> list[Fitting]:
    """Return the actions the policy's proposal rules propose for a run, each (action, target)
    once, in the rules' order; a rule whose action left the catalog proposes nothing."""
    found: dict[tuple[str, str], Fitting] = {}
    for rule in policy.actions.propose:
        action = policy.actions.catalog.get(rule.action)
        when = rule.when
        if action is None:
            continue
        if when.priorities and facts.priority not in when.priorities:
            continue
        if when.during_market_hours is not None and when.during_market_hours != facts.market_open:
            continue
        if when.rules and facts.rule not in when.rules:
            continue
        if when.positions and facts.positions not in when.positions:
            continue
        if when.deployed_within is not None:
            recent = recent_deploys(facts.deploys, facts.alert_at, when.deployed_within)
            if not recent:
                continue
            if action.manual_command:
                fit = _rollback(rule, action, recent, facts)
                found.setdefault((fit.action, fit.target), fit)
                continue
        services = [None] if when.service is None else _matching(policy, when.service, facts)
        for service in services:
            chosen, how = first_answering(policy, action, service, facts)
            target = chosen.service or service
            if target is None or target not in policy.catalog:
                continue
            why = rule.why if service is None else f"{rule.why} ({_seen(service, facts)})"
            if when.positions:
                why += f"; open positions: {facts.positions}"
            found.setdefault(
                (chosen.name, target),
                Fitting(rule, chosen.name, target, why + how, service),
            )
    return list(found.values())


def _rollback(rule: ProposalRule, action: Action, recent: list[Deploy], facts: RunFacts) -> Fitting:
    """Return the proposal to return to the revision before the first recent deploy."""
    first, last = recent[0], recent[-1]
    assert facts.alert_at is not None  # recent deploys are measured from it
    before = format_duration(facts.alert_at - last.at)
    seen = f"deploy {last.revision[:12]} {last.subject!r} {before} before the alert"
    if len(recent) > 1:
        seen += f", the first of {len(recent)} recent deploys {first.revision[:12]}"
    command = manual_command(action, first.parent)
    why = f"{rule.why} ({seen}); back to {first.parent[:12]}, run by a person: {command}"
    return Fitting(rule, action.name, DEPLOYMENT, why, None, command)


def first_answering(
    policy: Policy, action: Action, service: str | None, facts: RunFacts
) -> tuple[Action, str]:
    """Return the first of an action and its catalog `otherwise` ways whose target answers,
    and a clause saying so ("" when the action has no other way).

    An HTTP action's target answers when its health check read ok; a Docker action's when the
    Docker engine reported its container. When none answers, the first is kept and said to be
    unanswered: a person may still try it.
    """
    catalog = policy.actions.catalog
    ways = [action, *(catalog[name] for name in action.otherwise if name in catalog)]
    if len(ways) == 1:
        return action, ""
    tried = []
    for way in ways:
        target = way.service or service
        if target is None:
            continue
        answers, seen = _answers(way, target, facts)
        if answers:
            skipped = f", not {'; '.join(tried)}" if tried else ""
            return way, f"; by {way.name} on {target}, which answers ({seen}){skipped}"
        tried.append(f"{way.name} ({target}: {seen})")
    return action, f"; no way answers ({'; '.join(tried)}): {action.name} is proposed anyway"


def _answers(action: Action, target: str, facts: RunFacts) -> tuple[bool, str]:
    """Return whether an action's target answers, from the run's evidence, and what was seen."""
    if action.docker:
        state = facts.containers.get(target)
        return state is not None, f"container {state}" if state else "container not seen"
    health = facts.health.get(target)
    return health == "ok", f"health {health}" if health else "health not checked"


def origin_first(fitting: list[Fitting], origin: str | None) -> list[Fitting]:
    """Return the proposals with, for each action, the one on the probable origin first: the
    actions keep the rules' order (containment before restarts), the targets the topology's."""
    rank = {action: n for n, action in reversed(list(enumerate(f.action for f in fitting)))}
    return sorted(fitting, key=lambda f: (rank[f.action], f.target != origin))


def _matching(policy: Policy, condition: ServiceCondition, facts: RunFacts) -> list[str]:
    """Return the catalog services whose evidence meets `condition`, in catalog order."""
    matched = []
    for name, service in policy.catalog.items():
        if condition.names and name not in condition.names:
            continue
        if condition.trading_path is not None and service.trading_path != condition.trading_path:
            continue
        state = facts.containers.get(name)
        if condition.container and state not in condition.container:
            continue
        if condition.down and not _down(name, facts):
            continue
        matched.append(name)
    return matched


def _down(service: str, facts: RunFacts) -> bool:
    """Return True when the evidence shows a service down: unhealthy, or its container stopped."""
    health = facts.health.get(service)
    state = facts.containers.get(service)
    return (health is not None and health != "ok") or (state is not None and state != "running")


def _seen(service: str, facts: RunFacts) -> str:
    """Say what the evidence showed of a service, for the proposal's why."""
    seen = []
    if (state := facts.containers.get(service)) is not None:
        seen.append(f"container {state}")
    if (health := facts.health.get(service)) is not None:
        seen.append(f"health {health}")
    return f"{service}: {', '.join(seen)}" if seen else service


def _shown(name: str) -> str:
    """Return a name as a message may quote it: short, one line, repr-escaped."""
    return repr(name[:60] + ("..." if len(name) > 60 else ""))


def condition_of(rule: ProposalRule, service: str | None) -> dict[str, Any]:
    """Return what a rule's proposal stands on, kept with it and checked again before it runs."""
    facets = rule.when.service
    return {
        "service": service,
        "container": list(facets.container) if facets else [],
        "down": bool(facets.down) if facets else False,
        "during_market_hours": rule.when.during_market_hours,
    }


def collectors_for(condition: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the collectors whose evidence shows whether `condition` still holds."""
    if not condition.get("service"):
        return ()
    if condition.get("down"):
        return ("docker", "http")
    return ("docker",) if condition.get("container") else ()


def unmet(condition: Mapping[str, Any], facts: RunFacts) -> tuple[bool | None, str]:
    """Return (holds, why) for a stored proposal condition against fresh facts.

    holds is True when it still holds, False when it no longer does (why says what changed),
    None when the facts cannot tell (why says what is missing).
    """
    market = condition.get("during_market_hours")
    if market is not None and market != facts.market_open:
        return False, "the market is " + ("open" if facts.market_open else "closed") + " now"
    service = condition.get("service")
    if not service:
        return True, ""
    state = facts.containers.get(service)
    health = facts.health.get(service)
    if container := condition.get("container"):
        if state is None:
            return None, f"the container of {service} could not be checked"
        if state not in container:
            was = " or ".join(container)
            return False, f"{service}'s container is {state} now (proposed when it was {was})"
    if condition.get("down"):
        if state is None and health is None:
            return None, f"{service} could not be checked"
        if not _down(service, facts):
            return False, f"{service} is up now ({_seen(service, facts)})"
    return True, ""
