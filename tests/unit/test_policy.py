"""Policy files: the good ones load, each bad one gives exactly the messages beside it."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from triage.models import Priority
from triage.policy import PolicyError, builtin, line_of, load, load_file, parse_span

POLICIES = Path(__file__).resolve().parents[1] / "testdata" / "policies"
GOOD = sorted((POLICIES / "good").glob("*.yaml"))
BAD = sorted((POLICIES / "bad").glob("*.yaml"))


def test_builtin_policy_encodes_the_runbook_tables() -> None:
    policy = builtin()
    assert [str(policy.sla[p].acknowledge) for p in Priority] == [
        "5m", "15m", "1h of business hours", "4h of business hours",
    ]  # fmt: skip
    assert [str(policy.sla[p].respond) for p in Priority] == [
        "15m", "30m", "4h of business hours", "24h, day and night",
    ]  # fmt: skip
    assert [str(policy.sla[p].resolve) for p in Priority] == [
        "2h of market hours", "8h of market hours", "24h", "5 business days",
    ]  # fmt: skip
    assert [str(policy.sla[p].initial_update) for p in Priority] == ["immediately"] * 4
    assert [str(policy.sla[p].update_every) for p in Priority] == ["30m", "30m", "2h", "2h"]
    assert [str(policy.sla[p].notify_management) for p in Priority] == [
        "immediately", "30m", "next business day summary", "next business day summary",
    ]  # fmt: skip
    assert set(policy.business_hours_only) == {Priority.P2, Priority.P3}
    assert policy.summary_to == "incident_notes"
    hours = policy.market_hours
    assert (hours.opens.weekday, hours.opens.at) == (6, time(17))  # Sunday 17:00
    assert (hours.closes.weekday, hours.closes.at) == (4, time(17))  # Friday 17:00
    assert str(hours.timezone) == "America/New_York"
    assert len(policy.catalog) == 6
    # The gateway serves /emergency/stop-trading and the positions and reconciliation calls.
    assert all(s.trading_path and s.why for s in policy.catalog.values())


@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
def test_good_policies_load(path: Path) -> None:
    policy = load_file(path)
    assert policy.rules and policy.catalog


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_policies_give_exactly_the_expected_messages(path: Path) -> None:
    relative = path.relative_to(POLICIES).as_posix()
    with pytest.raises(PolicyError) as caught:
        load(path.read_text(), source=relative)
    expected = path.with_suffix(".expected").read_text().rstrip("\n")
    assert str(caught.value) == expected


def test_management_targets_load_with_their_priorities() -> None:
    policy = load_file(POLICIES / "good" / "management.yaml")
    management = policy.pagerduty.management
    assert management is not None
    assert management.requester_id == "PREQ001"
    assert management.targets == (
        ("PEP0001", "escalation_policy_reference"),
        ("PUSR001", "user_reference"),
    )
    assert management.request_for == {Priority.P0}
    assert load_file(POLICIES / "good" / "minimal.yaml").pagerduty.management is None


def test_the_security_team_loads_with_the_rule_that_pages_it() -> None:
    policy = load_file(POLICIES / "good" / "security.yaml")
    security = policy.pagerduty.security
    assert security is not None
    assert (security.requester_id, security.targets, security.message) == (
        "PREQ001",
        (("PSEC001", "escalation_policy_reference"),),
        "Security: {title}",
    )
    assert policy.security_rule(["other", "api-key-leaked"]) is policy.rules[0]
    assert policy.security_rule(["other"]) is None
    assert load_file(POLICIES / "good" / "minimal.yaml").pagerduty.security is None


def test_every_bad_fixture_has_its_expected_messages() -> None:
    assert BAD, "no bad policy fixtures"
    assert all(p.with_suffix(".expected").is_file() for p in BAD)


def test_a_missing_file_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="nope.yaml:0: \\(file\\): cannot read"):
        load_file(tmp_path / "nope.yaml")


def test_line_of_finds_nested_fields() -> None:
    text = (POLICIES / "good" / "minimal.yaml").read_text()
    assert line_of(text, ["rules", 0, "priority"]) == 15
    assert line_of(text, ["plan", "P3"]) == 19


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5m", "5m"), ("2h", "2h"), ("24h", "24h"), ("90m", "1h30m"), ("immediately", "immediately"),
     ("5 business days", "5 business days"), ("next business day", "next business day"),
     ({"within": "2h", "clock": "market_hours"}, "2h of market hours")],
)  # fmt: skip
def test_spans_read_like_the_runbook(text, expected: str) -> None:
    assert str(parse_span(text)) == expected


def test_communication_loads_the_desk_its_phone_call_and_management() -> None:
    communication = load_file(POLICIES / "good" / "communication.yaml").communication
    assert (communication.email.sender, communication.email.subject_prefix) == (
        "responder@example.com",
        "[API]",
    )
    desk = communication.trading_desk
    assert desk.email == ("desk@example.com", "desk-lead@example.com")
    assert desk.notify == {Priority.P0}
    assert desk.call is not None and desk.call.targets == (("PDESK01", "user_reference"),)
    assert desk.call.when == {"positions_at_risk"} and not desk.call.market_hours_only
    assert communication.management.email == ("cto@example.com",)
    assert not communication.management.summary
    # Without the section: nobody is e-mailed, the desk is never called.
    minimal = load_file(POLICIES / "good" / "minimal.yaml").communication
    assert minimal.trading_desk.email == () and minimal.trading_desk.call is None
    assert minimal.management.email == ()
