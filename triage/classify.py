"""Apply the policy's rules to an alert or a PagerDuty incident: the most severe match wins."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from triage.models import Alert, Classification, Incident, Priority
from triage.policy import Condition, Matcher, Policy
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
    service = subject.labels.get("service") or subject.labels.get("job", "").removeprefix("eafix-")
    return Facts(subject.labels, subject.annotations, {}, service)


def classify(subject: Alert | Incident, policy: Policy, now: datetime) -> Classification:
    """Return the priority of `subject` under `policy` at `now`, the rule and the reason."""
    known: list[bool] = []

    def market_open() -> bool:
        # Worked out only if a rule tests market hours, then once.
        if not known:
            known.append(is_market_open(now, policy.market_hours))
        return known[0]

    facts = facts_of(subject)
    best: Classification | None = None
    best_rank = math.inf
    for rule in policy.rules:
        # Strictly more severe replaces; on a tie the earlier rule in the file stays.
        rank = _RANKS[rule.priority]
        if rank >= best_rank:
            continue
        for condition in rule.when:
            evidence = _evidence(condition, facts, market_open, policy)
            if evidence is not None:
                why = "; ".join(evidence)
                reason = f"{rule.runbook}: {why}" if rule.runbook else why
                best, best_rank = Classification(rule.priority, rule.name, reason), rank
                break
    return best or Classification(policy.default_priority, "default", "no rule matched")


def most_severe(classifications: Iterable[Classification]) -> Classification | None:
    """Return the most severe of several classifications, the first one on a tie."""
    result: Classification | None = None
    for item in classifications:
        if result is None or item.priority.rank < result.priority.rank:
            result = item
    return result


# Priority.rank reads the enum's value each time; classification asks it for every rule.
_RANKS = {priority: priority.rank for priority in Priority}


def _evidence(
    condition: Condition, facts: Facts, market_open: Callable[[], bool], policy: Policy
) -> list[str] | None:
    """Return what made `condition` hold, or None when it does not."""
    found: list[str] = []
    for tests, values in (
        (condition.labels, facts.labels),
        (condition.annotations, facts.annotations),
        (condition.incident, facts.incident),
    ):
        if not _all_match(tests, values, found):
            return None
    if condition.during_market_hours is not None:
        open_now = market_open()
        if condition.during_market_hours != open_now:
            return None
        found.append("during market hours" if open_now else "outside market hours")
    if condition.trading_path is not None:
        service = policy.catalog.get(facts.service)
        on_path = service is not None and service.trading_path
        if on_path != condition.trading_path:
            return None
        found.append(f"{facts.service} is {'on' if on_path else 'off'} the trading path")
    return found


def _all_match(
    tests: tuple[tuple[str, Matcher], ...], values: Mapping[str, str], found: list[str]
) -> bool:
    for name, matcher in tests:
        value = values.get(name)
        if not matcher.matches(value):
            return False
        found.append(matcher.describe(name, value))
    return True
