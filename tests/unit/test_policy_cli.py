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
    assert result.output.startswith("builtin:default_policy.yaml: OK (18 rules, 6 services")


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
        "(installed: docker, git, host, http, postgres, prometheus, redis, trading)\n"
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


def test_classify_an_alertmanager_group_at_a_given_time(run) -> None:
    sample = PROJECT / "examples" / "alertmanager-sample.json"
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
    sample = PROJECT / "examples" / "alertmanager-sample.json"
    result = run("classify", str(sample), "--at", "2026-11-28T15:00")
    assert result.exit_code == 2
    assert "give a time zone" in result.output
