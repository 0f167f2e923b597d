"""`responder policy check|show` and `responder classify`, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tasks.cli import main

PROJECT = Path(__file__).resolve().parents[2]
POLICIES = PROJECT / "tests" / "testdata" / "policies"


@pytest.fixture
def run(monkeypatch):
    monkeypatch.delenv("RESPONDER_POLICY", raising=False)

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args))

    return invoke


def test_check_passes_the_builtin_policy(run) -> None:
    result = run("policy", "check")
    assert result.exit_code == 0
    assert result.output.startswith("builtin:default_policy.yaml: OK (21 rules, 6 services")


def test_check_lists_every_error_with_its_line_and_exits_2(run) -> None:
    # A broken policy is a configuration error in every command: exit 2.
    path = POLICIES / "bad" / "several-errors.yaml"
    result = run("policy", "check", str(path))
    assert result.exit_code == 2
    expected = (path.with_suffix(".expected")).read_text().replace("bad/", f"{path.parent}/")
    assert result.output == expected


def test_check_names_collectors_that_are_not_installed(run, tmp_path: Path) -> None:
    text = (
        (POLICIES / "good" / "minimal.yaml").read_text().replace("P1: [http]", "P1: [http, tarot]")
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    result = run("policy", "check", str(policy))
    assert result.exit_code == 2
    assert result.output == (
        f"{policy}:19: plan.P1[1]: no collector named 'tarot' "
        "(installed: docker, flow, git, host, http, network, performance, postgres, prometheus, "
        "redis, trading)\n"
    )


def test_check_names_validation_collectors_that_are_not_installed(run, tmp_path: Path) -> None:
    text = (POLICIES / "good" / "minimal.yaml").read_text() + (
        "on_resolved:\n  validate: [http, tarot]\n"
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    result = run("policy", "check", str(policy))
    assert result.exit_code == 2
    assert result.output == (
        f"{policy}:21: on_resolved.validate[1]: no collector named 'tarot' "
        "(installed: docker, flow, git, host, http, network, performance, postgres, prometheus, "
        "redis, trading)\n"
    )


def test_show_uses_the_configured_policy(run, monkeypatch) -> None:
    monkeypatch.setenv("RESPONDER_POLICY", str(POLICIES / "good" / "matchers.yaml"))
    result = run("policy", "show", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [r["name"] for r in data["rules"]] == ["slow", "not-test"]
    assert data["sla"]["P0"]["resolve"] == "2h of market hours"
    human = run("policy", "show")
    assert "Market hours: Sunday 17:00 to Friday 17:00 America/New_York" in human.output


def test_show_says_why_each_service_is_on_the_trading_path(run) -> None:
    human = run("policy", "show").output.splitlines()
    at = human.index(next(line for line in human if line.startswith("  gui-gateway ")))
    assert human[at].endswith("trading path")
    assert human[at + 1].split() == [
        "why:", "it", "serves", "/emergency/stop-trading", "and", "the", "positions", "and",
        "reconciliation", "endpoints", "the", "runbook", "uses",
    ]  # fmt: skip
    data = json.loads(run("policy", "show", "--json").output)
    assert (
        data["catalog"]["data-ingestor"]["why"]
        == "every signal starts from the market data it ingests"
    )


def test_classify_an_alertmanager_group_at_a_given_time(run) -> None:
    sample = PROJECT / "tasks" / "cli" / "samples" / "alertmanager.json"
    result = run("classify", str(sample), "--at", "2026-11-28T15:00Z", "--json")
    assert result.exit_code == 0, result.output
    [only] = json.loads(result.output)
    assert (only["priority"], only["rule"]) == ("P1", "signal-latency-over-5s")
    # Saturday: P1's 8 h resolution clock waits for Sunday 17:00 New York.
    assert only["deadlines"]["resolve"] == "2026-11-30T06:00:00+00:00"
    human = run("classify", str(sample), "--at", "2026-11-28T15:00Z")
    assert "the market is closed" in human.output
    assert "SignalLatencyHigh (firing): P1 by rule signal-latency-over-5s" in human.output


def test_classify_a_pagerduty_event(run) -> None:
    sample = PROJECT / "examples" / "pagerduty-incident-triggered.json"
    result = run("classify", str(sample), "--json", "--at", "2026-11-27T15:00Z")
    assert result.exit_code == 0, result.output
    [only] = json.loads(result.output)
    assert (only["priority"], only["rule"]) == ("P0", "risk-management-failure")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"version": "4", "alerts": []}',
            "cannot classify (alerts): alerts: expected a non-empty list",
        ),
        ('{"event": {"id": "x", "event_type": "pagey.ping"}}', "pagey.ping carries no incident"),
    ],
)
def test_classify_reports_bad_payloads(run, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "payload.json"
    path.write_text(content)
    result = run("classify", str(path))
    assert result.exit_code == 1
    assert message in result.output


def test_classify_rejects_a_time_without_zone(run) -> None:
    sample = PROJECT / "tasks" / "cli" / "samples" / "alertmanager.json"
    result = run("classify", str(sample), "--at", "2026-11-28T15:00")
    assert result.exit_code == 2
    assert "give a time zone" in result.output


def policy_with_templates(tmp_path: Path, template: str) -> Path:
    """Write the built-in policy with a `notes.templates` folder holding one closing note."""
    from triage.policy import builtin_text

    (tmp_path / "wording").mkdir()
    (tmp_path / "wording" / "closing.txt.j2").write_text(template)
    path = tmp_path / "policy.yaml"
    path.write_text(builtin_text() + "\nnotes:\n  templates: wording\n")
    return path


def test_check_finds_a_template_variable_the_note_does_not_have(run, tmp_path: Path) -> None:
    path = policy_with_templates(tmp_path, "[{{ priority }}] Resolved by {{ resolver }}\n")
    result = run("policy", "check", str(path))
    assert result.exit_code == 2  # a broken policy, as in every command
    line = len(path.read_text().splitlines())  # the templates setting, the policy's last line
    assert result.output == (
        f"{path}:{line}: notes.templates: {tmp_path / 'wording' / 'closing.txt.j2'}: uses "
        "'resolver', which this note does not have (it has: moments, priority)\n"
    )


def test_check_accepts_templates_beside_the_policy(run, tmp_path: Path) -> None:
    path = policy_with_templates(tmp_path, "[{{ priority }}] Resolved.\n")
    result = run("policy", "check", str(path))
    assert result.exit_code == 0, result.output


def policy_asking_management_with(message: str, folder: Path) -> Path:
    """Write the minimal policy with a management request whose message is `message`."""
    policy = folder / "p.yaml"
    policy.write_text(
        (POLICIES / "good" / "minimal.yaml").read_text()
        + "pagerduty:\n  management:\n    requester_id: PUSER01\n"
        + "    targets: [{id: PEP0001, type: escalation_policy_reference}]\n"
        + f"    message: {json.dumps(message)}\n"
    )
    return policy


def test_check_names_a_policy_message_jinja_cannot_read(run, tmp_path: Path) -> None:
    # A responder request's message in Jinja's syntax, its block never closed: found when the
    # policy is checked, not at 3 a.m. when the first P0 asks for management.
    policy = policy_asking_management_with(
        "EAFIX {{ priority }} {% if title %}{{ title }}", tmp_path
    )
    result = run("policy", "check", str(policy))
    assert result.exit_code == 2
    assert result.output.startswith(
        f"{policy}:24: pagerduty.management.message: not a valid template: Unexpected end of "
        "template."
    )


def test_check_leaves_a_message_in_the_placeholder_style_alone(run, tmp_path: Path) -> None:
    policy = policy_asking_management_with(
        "EAFIX {priority} {impact} {# stays text: {title}", tmp_path
    )
    result = run("policy", "check", str(policy))
    assert result.exit_code == 0, result.output
