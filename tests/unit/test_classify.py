"""The built-in policy's first rules: alert labels of alert-rules.yml -> runbook priority."""

from datetime import UTC, datetime

import pytest

from triage.classify import classify, most_severe
from triage.models import Alert, Classification, Priority
from triage.policy import builtin

POLICY = builtin()
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def alert(**labels: str) -> Alert:
    return Alert(
        status="firing",
        labels={"alertname": "Test", **labels},
        annotations={},
        starts_at=NOW,
        starts_at_raw=NOW.isoformat(),
        ends_at=None,
        generator_url="",
        fingerprint="f",
    )


@pytest.mark.parametrize(
    ("labels", "priority", "rule"),
    [
        (
            {"category": "outage", "scope": "complete", "severity": "critical"},
            "P0",
            "complete-outage",
        ),
        ({"category": "data-corruption", "service": "risk-manager"}, "P0", "data-corruption"),
        ({"category": "security", "service": "gui-gateway"}, "P0", "security-breach"),
        (
            {"category": "risk-management", "service": "risk-manager"},
            "P0",
            "risk-management-failure",
        ),
        ({"category": "outage", "scope": "partial"}, "P1", "partial-outage"),
        ({"category": "latency", "severity": "critical"}, "P1", "signal-latency-over-5s"),
        ({"category": "reconciliation"}, "P1", "reconciliation-failure"),
        ({"category": "market-data", "service": "data-ingestor"}, "P1", "market-data-interruption"),
        (
            {"category": "outage", "scope": "single", "service": "gui-gateway"},
            "P2",
            "non-critical-service-outage",
        ),
        ({"category": "latency", "severity": "warning"}, "P2", "performance-degradation"),
        ({"category": "data-quality"}, "P2", "data-quality"),
        ({"category": "monitoring"}, "P2", "monitoring-issue"),
        ({"category": "cosmetic", "severity": "info"}, "P3", "minor-issue"),
        ({"severity": "critical", "service": "execution-engine"}, "P1", "critical-on-trading-path"),
    ],
)
def test_runbook_bullets(labels: dict[str, str], priority: str, rule: str) -> None:
    result = classify(alert(**labels), POLICY)
    assert (result.priority, result.rule) == (Priority(priority), rule)
    assert result.reason


def test_no_match_gives_the_default_and_says_so() -> None:
    result = classify(alert(severity="critical", service="gui-gateway"), POLICY)
    assert result == Classification(Priority.P3, "default", "no rule matched")


def test_the_most_severe_rule_wins_over_file_order() -> None:
    # critical-on-trading-path (P1) is listed before nothing more severe; a P0 bullet wins.
    result = classify(
        alert(severity="critical", service="risk-manager", category="risk-management"), POLICY
    )
    assert result.priority is Priority.P0


def test_most_severe_of_a_group() -> None:
    p2 = Classification(Priority.P2, "a", "")
    p0 = Classification(Priority.P0, "b", "")
    assert most_severe([p2, p0, p2]) is p0
    assert most_severe([]) is None
