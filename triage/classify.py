"""Apply the policy's rules to an alert: the most severe matching rule wins."""

from __future__ import annotations

from collections.abc import Iterable

from triage.models import Alert, Classification
from triage.policy import Policy, Rule


def classify(alert: Alert, policy: Policy) -> Classification:
    """Return the priority of `alert` under `policy`, the rule that chose it and why."""
    best: Rule | None = None
    for rule in policy.rules:
        # Strictly more severe replaces; on a tie the earlier rule in the file stays.
        if _matches(rule, alert, policy) and (
            best is None or rule.priority.rank < best.priority.rank
        ):
            best = rule
    if best is None:
        return Classification(policy.default_priority, "default", "no rule matched")
    return Classification(best.priority, best.name, _reason(best, alert))


def most_severe(classifications: Iterable[Classification]) -> Classification | None:
    """Return the most severe of several classifications, the first one on a tie."""
    result: Classification | None = None
    for item in classifications:
        if result is None or item.priority.rank < result.priority.rank:
            result = item
    return result


def _matches(rule: Rule, alert: Alert, policy: Policy) -> bool:
    for label, accepted in rule.labels.items():
        if alert.labels.get(label) not in accepted:
            return False
    if rule.trading_path is not None:
        service = policy.catalog.get(alert.labels.get("service", ""))
        on_path = service is not None and service.trading_path
        if on_path != rule.trading_path:
            return False
    return True


def _reason(rule: Rule, alert: Alert) -> str:
    conditions = [f"{k}={alert.labels.get(k)}" for k in rule.labels]
    if rule.trading_path is not None:
        where = "on" if rule.trading_path else "off"
        conditions.append(f"service {alert.labels.get('service', '?')} {where} the trading path")
    why = ", ".join(conditions)
    return f"{rule.runbook} ({why})" if rule.runbook else why
