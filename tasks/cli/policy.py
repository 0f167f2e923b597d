"""`responder policy check|show` and `responder classify`: the triage core, offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from collectors.registry import available
from tasks.cli.options import ConfigurationError, WholeSummaryGroup, settings_or_usage_error
from tasks.cli.terminal import say
from tasks.notes.lines import policy_message_problem
from tasks.notes.voice import Voice
from triage.classify import classify
from triage.models import PayloadError, parse_alertmanager, parse_pagerduty
from triage.policy import (
    WEEKDAYS,
    Policy,
    PolicyError,
    Problem,
    builtin_text,
    format_duration,
    line_of,
    load,
    relative_to,
)
from triage.sla import deadlines, is_market_open


def _policy_text(path: str | None) -> tuple[str, str]:
    """Return (text, source) of the named policy, the configured one, or the built-in one."""
    path = path or settings_or_usage_error().policy_path
    if not path:
        return builtin_text(), "builtin:default_policy.yaml"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except OSError as exc:
        # As the server's loader says it (triage.policy.load_file), and so exits 2.
        raise PolicyError([Problem(path, 0, "(file)", f"cannot read: {exc.strerror}")]) from None


def check_policy(text: str, source: str) -> tuple[Policy | None, list[Problem]]:
    """Validate policy text, including that every planned collector is installed."""
    try:
        policy = load(text, source)
    except PolicyError as exc:
        return None, exc.problems
    if not source.startswith("builtin:"):
        policy = relative_to(policy, source)
    installed = available()  # read once: each call scans the installed packages' entry points
    problems = [
        Problem(
            source,
            line_of(text, ["plan", priority.value, index]),
            f"plan.{priority.value}[{index}]",
            f"no collector named {name!r} (installed: {', '.join(installed)})",
        )
        for priority, names in policy.plan.items()
        for index, name in enumerate(names)
        if name not in installed
    ]
    problems += [
        Problem(
            source,
            line_of(text, ["on_resolved", "validate", index]),
            f"on_resolved.validate[{index}]",
            f"no collector named {name!r} (installed: {', '.join(installed)})",
        )
        for index, name in enumerate(policy.on_resolved.validate)
        if name not in installed
    ]
    messages = [
        (["pagerduty", "management", "message"], policy.pagerduty.management),
        (["pagerduty", "security", "message"], policy.pagerduty.security),
        (
            ["communication", "trading_desk", "call", "message"],
            policy.communication.trading_desk.call,
        ),
    ]
    problems += [
        Problem(source, line_of(text, path), ".".join(path), problem)
        for path, holder in messages
        if holder is not None and (problem := policy_message_problem(holder.message))
    ]
    templates_line = line_of(text, ["notes", "templates"])
    problems += [
        Problem(source, templates_line, "notes.templates", message)
        for message in Voice.of(policy).check()
    ]
    return (None if problems else policy), problems


@click.group("policy", cls=WholeSummaryGroup)
def policy_group() -> None:
    """Check or show the classification policy."""


@policy_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def policy_check(file: str | None) -> None:
    """Validate FILE (default: RESPONDER_POLICY or the built-in policy); list every error."""
    text, source = _policy_text(file)
    policy, problems = check_policy(text, source)
    if problems:
        for problem in problems:
            say(str(problem))
        raise SystemExit(ConfigurationError.exit_code)  # a broken policy, as in every command
    assert policy is not None
    say(
        f"{source}: OK ({len(policy.rules)} rules, {len(policy.catalog)} services, "
        f"{len(policy.actions.catalog)} actions, {_proposal_summary(policy)}, "
        f"market {_market_summary(policy)})"
    )


@policy_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def policy_show(as_json: bool) -> None:
    """Show the policy in force: market hours, SLA matrix, rules, catalog, plan."""
    text, source = _policy_text(None)
    policy, problems = check_policy(text, source)
    if policy is None:
        raise ConfigurationError("\n".join(str(p) for p in problems))
    if as_json:
        say(json.dumps(_policy_data(policy), indent=2))
        return
    say(f"Policy: {source}")
    say(f"Market hours: {_market_summary(policy)}")
    holidays = ", ".join(sorted(d.isoformat() for d in policy.market_hours.holidays)) or "none"
    say(f"Holidays: {holidays}\n")
    say(f"{'':4}{'acknowledge':<13}{'respond':<10}{'resolve':<22}{'updates':<9}management")
    for priority, row in policy.sla.items():
        say(
            f"{priority.value:<4}{row.acknowledge!s:<13}{row.respond!s:<10}{row.resolve!s:<22}"
            f"{row.update_every!s:<9}{row.notify_management}"
        )
    say(f"\nRules (the most severe match wins; no match: {_fallback_summary(policy)}):")
    for rule in policy.rules:
        only = " (fallback: only when no other rule matches)" if rule.fallback else ""
        say(f"  {rule.priority}  {rule.name:<38} {rule.runbook}{only}")
    say("\nCatalog:")
    for service in policy.catalog.values():
        path = "trading path" if service.trading_path else "off the trading path"
        say(f"  {service.name:<18} {service.health_url:<40} {path}")
        if service.why:
            say(f"  {'':<18} why: {service.why}")
    say("\nPlan:")
    for priority, names in policy.plan.items():
        say(f"  {priority}  {', '.join(names) or '(nothing)'}")
    resolved = policy.on_resolved
    say(
        f"\nA whole group resolved: stop {', '.join(resolved.stop_clocks) or 'no clocks'}; "
        f"validate with {', '.join(resolved.validate) or 'nothing'}; the incident is "
        + ("resolved when every check passed" if resolved.resolve_incident else "left to a person")
    )
    storm = _storm_data(policy)
    say(
        f"\nStorms: P2/P3 use at most {storm['routine_budget_share']:.0%} of PagerDuty's budget; "
        f"evidence refreshed at most every {storm['evidence_refresh']}; joined alerts noted "
        f"every {storm['joined_alerts_every']}; failing writes given up after "
        f"{storm['give_up_after']}"
    )


@click.command("classify")
@click.argument("payload", type=click.File("r"))
@click.option("--at", "at", help="Classify as if received at this ISO 8601 time (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def classify_command(payload: Any, at: str | None, as_json: bool) -> None:
    """Classify each alert of an Alertmanager PAYLOAD, or a PagerDuty v3 event, with deadlines."""
    text, source = _policy_text(None)
    policy, problems = check_policy(text, source)
    if policy is None:
        raise ConfigurationError("\n".join(str(p) for p in problems))
    now = _moment(at) if at else datetime.now(UTC)
    try:
        results = classify_payload(json.load(payload), policy, now, anchor_at=at is not None)
    except ValueError as exc:
        where = f" ({exc.field})" if isinstance(exc, PayloadError) else ""
        raise click.ClickException(f"{payload.name}: cannot classify{where}: {exc}") from None
    if as_json:
        say(json.dumps(results, indent=2))
        return
    market = "open" if is_market_open(now, policy.market_hours) else "closed"
    say(f"At {now:%Y-%m-%d %H:%M %Z} the market is {market} (policy {source}).")
    for result in results:
        say(f"\n{result['subject']}: {result['priority']} by rule {result['rule']}")
        say(f"  why: {result['reason']}")
        for name in ("acknowledge", "respond", "resolve", "next_update", "notify_management"):
            say(f"  {name.replace('_', ' '):<18} {result['deadlines'][name]}")


def classify_payload(
    payload: Any, policy: Policy, now: datetime, *, anchor_at: bool
) -> list[dict[str, Any]]:
    """Classify an Alertmanager group or a PagerDuty event; return one result per subject."""
    if isinstance(payload, dict) and "event" in payload:
        event = parse_pagerduty(payload)
        if event.incident is None:
            raise PayloadError("event.data", f"{event.event_type} carries no incident")
        start = now if anchor_at or event.occurred_at is None else event.occurred_at
        subjects = [(f"incident {event.incident.id} {event.incident.title}", event.incident, start)]
    else:
        group = parse_alertmanager(payload)
        subjects = [
            (f"{a.name} ({a.status})", a, now if anchor_at else a.starts_at) for a in group.alerts
        ]
    results = []
    for label, subject, start in subjects:
        result = classify(subject, policy, now)
        due = deadlines(result.priority, start, policy).to_dict()
        results.append({"subject": label, **result.to_dict(), "deadlines": due})
    return results


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO 8601 time, got {text!r}", param_hint="--at"
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-11-27T15:00Z", param_hint="--at")
    return moment


def _market_summary(policy: Policy) -> str:
    hours = policy.market_hours
    opens = f"{WEEKDAYS[hours.opens.weekday].title()} {hours.opens.at:%H:%M}"
    closes = f"{WEEKDAYS[hours.closes.weekday].title()} {hours.closes.at:%H:%M}"
    return f"{opens} to {closes} {hours.timezone}"


def _fallback_summary(policy: Policy) -> str:
    by_severity = [f"severity={k} {v}" for k, v in policy.severity_fallback.items()]
    return ", ".join([*by_severity, f"otherwise {policy.default_priority}"])


def _policy_data(policy: Policy) -> dict[str, Any]:
    return {
        "source": policy.source,
        "market_hours": _market_summary(policy),
        "holidays": sorted(d.isoformat() for d in policy.market_hours.holidays),
        "default_priority": policy.default_priority.value,
        "severity_fallback": {k: v.value for k, v in policy.severity_fallback.items()},
        "sla": {
            p.value: {name: str(getattr(row, name)) for name in row.__dataclass_fields__}
            for p, row in policy.sla.items()
        },
        "rules": [
            {
                "name": r.name,
                "priority": r.priority.value,
                "runbook": r.runbook,
                "fallback": r.fallback,
            }
            for r in policy.rules
        ],
        "catalog": {
            s.name: {
                "health_url": s.health_url,
                "trading_path": s.trading_path,
                "why": s.why,
                "flow_test": dict(s.flow_test),
            }
            for s in policy.catalog.values()
        },
        "plan": {p.value: list(names) for p, names in policy.plan.items()},
        "on_resolved": {
            "stop_clocks": list(policy.on_resolved.stop_clocks),
            "validate": list(policy.on_resolved.validate),
            "resolve_incident": policy.on_resolved.resolve_incident,
        },
        "storm": _storm_data(policy),
    }


def _storm_data(policy: Policy) -> dict[str, Any]:
    storm = policy.storm
    return {
        "routine_budget_share": storm.routine_budget_share,
        "evidence_refresh": format_duration(storm.evidence_refresh),
        "joined_alerts_every": format_duration(storm.joined_alerts_every),
        "give_up_after": format_duration(storm.give_up_after),
    }


def _proposal_summary(policy: Policy) -> str:
    """Say how many proposal rules the policy has and how many of them act automatically."""
    rules = policy.actions.propose
    automatic = sum(rule.automatic for rule in rules)
    return f"{len(rules)} proposal rules ({automatic} automatic)"
