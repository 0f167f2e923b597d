"""Apply the policy's rules to an alert or a PagerDuty incident: the most severe match wins."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from triage.models import Alert, Classification, Incident, Priority
from triage.policy import DEFAULT_RULE, SEVERITY_FALLBACK_RULE, Condition, Policy, Rule
from triage.sla import is_market_open


@dataclass(frozen=True)
class Facts:
    """What rules can test, the same shape whatever the source."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    incident: Mapping[str, str]
    service: str


def facts_of(subject: Alert | Incident) -> Facts:
    """Return the testable facts of an Alertmanager alert or a PagerDuty incident."""
    if isinstance(subject, Incident):
        fields = {
            "service": subject.service,
            "priority": subject.priority,
            "urgency": subject.urgency,
            "title": subject.title,
        }
        return Facts({}, {}, {k: v for k, v in fields.items() if v}, subject.service)
    return Facts(subject.labels, subject.annotations, {}, service_of(subject.labels))


def service_of(labels: Mapping[str, str]) -> str:
    """Return the service an alert's labels name: `service`, else its `job` (eafix-<name>)."""
    return labels.get("service") or labels.get("job", "").removeprefix("eafix-")


def classify(subject: Alert | Incident, policy: Policy, now: datetime) -> Classification:
    """Return the priority of `subject` under `policy` at `now`, the rule and the reason."""
    known: list[bool] = []

    def market_open() -> bool:
        # Worked out only if a rule tests market hours, then once.
        if not known:
            known.append(is_market_open(now, policy.market_hours))
        return known[0]

    facts = facts_of(subject)
    # The rules first; those marked `fallback` only when none of the others matched.
    for fallbacks in (False, True):
        rules = (rule for rule in policy.rules if rule.fallback is fallbacks)
        if best := _most_severe_match(rules, facts, market_open, policy):
            return best
    return fallback(facts, policy)


def _most_severe_match(
    rules: Iterable[Rule], facts: Facts, market_open: Callable[[], bool], policy: Policy
) -> Classification | None:
    """Return the classification of the most severe rule that matches, the first on a tie."""
    best: Classification | None = None
    best_rank = math.inf
    for rule in rules:
        # Strictly more severe replaces; on a tie the earlier rule in the file stays.
        rank = _RANKS[rule.priority]
        if rank >= best_rank:
            continue
        for condition in rule.when:
            # Phrases are written only for the condition that holds: most fail a test early.
            if _holds(condition, facts, market_open, policy):
                why = "; ".join(_evidence(condition, facts, market_open, policy))
                reason = f"{rule.runbook}: {why}" if rule.runbook else why
                best, best_rank = Classification(rule.priority, rule.name, reason), rank
                break
    return best


def fallback(facts: Facts, policy: Policy) -> Classification:
    """Return the classification of what no rule matched: by its severity, else the default.

    The reason says so plainly, so that someone adds the rule the runbook is missing.
    """
    severity = facts.labels.get("severity", "")
    if (priority := policy.severity_fallback.get(severity.lower())) is not None:
        why = f"no runbook rule matched; the fallback for severity={severity} is {priority}"
        return Classification(priority, SEVERITY_FALLBACK_RULE, why)
    unmatched = f"no fallback for severity={severity}" if severity else "no severity label"
    default = policy.default_priority
    why = f"no runbook rule matched; the default priority is {default} ({unmatched})"
    return Classification(default, DEFAULT_RULE, why)


def most_severe(classifications: Iterable[Classification]) -> Classification | None:
    """Return the most severe of several classifications, the first one on a tie."""
    result: Classification | None = None
    for item in classifications:
        if result is None or item.priority.rank < result.priority.rank:
            result = item
    return result


# Priority.rank reads the enum's value each time; classification asks it for every rule.
_RANKS = {priority: priority.rank for priority in Priority}


def _holds(
    condition: Condition, facts: Facts, market_open: Callable[[], bool], policy: Policy
) -> bool:
    """Return True when every test of `condition` passes (no evidence written yet)."""
    # The same walk as _evidence's, kept apart: a shared generator made classify 40% slower.
    for tests, values in (
        (condition.labels, facts.labels),
        (condition.annotations, facts.annotations),
        (condition.incident, facts.incident),
    ):
        for name, matcher in tests:
            if not matcher.matches(values.get(name)):
                return False
    if condition.during_market_hours is not None and condition.during_market_hours != market_open():
        return False
    return condition.trading_path is None or _on_path(facts, policy) == condition.trading_path


def _evidence(
    condition: Condition, facts: Facts, market_open: Callable[[], bool], policy: Policy
) -> list[str]:
    """Return what made `condition`, which holds, hold: one phrase per test."""
    found = [
        matcher.describe(name, values.get(name))
        for tests, values in (
            (condition.labels, facts.labels),
            (condition.annotations, facts.annotations),
            (condition.incident, facts.incident),
        )
        for name, matcher in tests
    ]
    if condition.during_market_hours is not None:
        found.append("during market hours" if market_open() else "outside market hours")
    if condition.trading_path is not None:
        name = _service_of(facts, policy)
        service = policy.catalog.get(name)
        where = "on" if service is not None and service.trading_path else "off"
        why = f" ({service.why})" if service is not None and service.why else ""
        found.append(f"{name or 'the service'} is {where} the trading path{why}")
    return found


def _on_path(facts: Facts, policy: Policy) -> bool:
    service = policy.catalog.get(_service_of(facts, policy))
    return service is not None and service.trading_path


def _service_of(facts: Facts, policy: Policy) -> str:
    """Return the catalog service the subject is about, or its own service name."""
    if facts.service in policy.catalog:
        return facts.service
    # A PagerDuty incident's service is PagerDuty's (e.g. "EAFIX"); the title Alertmanager
    # gives it names the group's labels, among them the catalog service.
    title = facts.incident.get("title", "")
    named = (n for n in policy.catalog if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", title))
    return next(named, facts.service)
