"""Policy loading: the built-in policy is valid; bad files name the field that is wrong."""

import pytest

from triage.models import Priority
from triage.policy import PolicyError, builtin, builtin_text, load, parse_span


def test_builtin_policy_loads_with_all_four_priorities() -> None:
    policy = builtin()
    assert set(policy.sla) == set(Priority)
    assert len(policy.catalog) == 6
    assert policy.plan[Priority.P1] == ("http", "redis")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("version: 1", "version: 2", "version: expected 1, got 2"),
        ("acknowledge: 5m,", "acknowledge: soon,", "sla.P0.acknowledge: expected a duration"),
        (
            "priority: P0, runbook: Complete",
            "priority: P9, runbook: Complete",
            "rules[0].priority: expected one of P0, P1, P2, P3, got 'P9'",
        ),
        (
            'health_url: "http://gui-gateway:8080/healthz"',
            'health_url: "file:///etc/passwd"',
            "catalog[0].health_url: expected an http:// or https:// URL",
        ),
        (
            "timezone: America/New_York",
            "timezone: Mars/Olympus",
            "timezone: unknown time zone 'Mars/Olympus'",
        ),
    ],
)
def test_errors_name_source_and_field(old: str, new: str, message: str) -> None:
    text = builtin_text()
    assert old in text
    with pytest.raises(PolicyError) as caught:
        load(text.replace(old, new, 1), source="ops.yaml")
    assert str(caught.value).startswith(f"ops.yaml: {message}")


def test_invalid_yaml_is_reported_with_the_source() -> None:
    with pytest.raises(PolicyError, match="^p.yaml: not valid YAML"):
        load("rules: [", source="p.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", "5m"),
        ("2h", "2h"),
        ("immediately", "immediately"),
        ("5 business days", "5 business days"),
        ("next business day", "1 business day"),
    ],
)
def test_spans_round_trip_to_runbook_wording(text: str, expected: str) -> None:
    assert str(parse_span(text)) == expected
