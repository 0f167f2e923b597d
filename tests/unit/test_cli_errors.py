"""Every `responder` command ends the same way on the same mistake: a message, no traceback.

Exit status: 2 for a setting or policy it cannot run with, 1 when Redis cannot be reached.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tasks.cli import main

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = str(PROJECT / "tasks" / "cli" / "samples" / "alertmanager.json")
PASSWORD = "hunter2-77c0"
# Port 1 on loopback: nothing listens, so the connection is refused at once.
UNREACHABLE = f"redis://:{PASSWORD}@127.0.0.1:1/0"

EVERY_COMMAND = [
    ["run"],
    ["status"],
    ["deliveries"],
    ["replay", "20261127T114444Z-bc9ec3b3"],
    ["replay", "--since", "1h"],
    ["sla"],
    ["report"],
    ["diagnose", "risk-manager", "--dry-run"],
    ["classify", SAMPLE],
    ["policy", "check"],
    ["policy", "show"],
    ["demo-alert"],
]
NEEDS_REDIS = [
    ["run"],
    ["status"],
    ["deliveries"],
    ["deliveries", "--failed"],
    ["replay", "20261127T114444Z-bc9ec3b3"],
    ["replay", "--failed"],
    ["sla"],
    ["report"],
]


@pytest.fixture
def responder(monkeypatch: pytest.MonkeyPatch):
    """Return a function running `responder ARGS` with only the given RESPONDER_* settings."""
    for variable in list(os.environ):
        if variable.startswith("RESPONDER_"):
            monkeypatch.delenv(variable)

    def invoke(args: list[str], **environment: str):
        return CliRunner().invoke(main, args, env=environment)

    return invoke


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=" ".join)
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "RESPONDER_REDIS_URL",
            "not-a-url",
            "not a URL: expected one starting with redis://, rediss:// or sentinel://",
        ),
        (
            "RESPONDER_REDIS_URL",
            "redis://127.0.0.1:port/0",
            "the port is not a number from 0 to 65535",
        ),
        (
            "RESPONDER_REDIS_URL",
            "redis://127.0.0.1:6379/abc",
            "the database 'abc' is not a number (redis://host:port/NUMBER)",
        ),
        (
            "RESPONDER_PROMETHEUS_URL",
            "prometheus:9090",
            "not a URL: expected one starting with http:// or https://",
        ),
    ],
    ids=["no-scheme", "bad-port", "bad-database", "prometheus"],
)
def test_a_bad_url_setting_is_a_configuration_error_in_every_command(
    responder, args: list[str], variable: str, value: str, message: str
) -> None:
    result = responder(args, **{variable: value})
    assert result.exit_code == 2, result.output
    assert result.output == f"Error: {variable}: {message}\n"


@pytest.mark.parametrize("args", NEEDS_REDIS, ids=" ".join)
def test_an_unreachable_redis_is_named_without_its_password(responder, args: list[str]) -> None:
    result = responder(args, RESPONDER_REDIS_URL=UNREACHABLE)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(
        "Error: cannot reach Redis at redis://:***@127.0.0.1:1/0 (ConnectionError: "
    )
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output


BROKEN_POLICY = PROJECT / "tests" / "testdata" / "policies" / "bad" / "several-errors.yaml"


# demo-alert only posts to a receiver, which loads the policy itself.
POLICY_COMMANDS = [args for args in EVERY_COMMAND if args != ["demo-alert"]]


@pytest.mark.parametrize("args", POLICY_COMMANDS + [["deliveries", "--failed"]], ids=" ".join)
@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        (str(BROKEN_POLICY), f"{BROKEN_POLICY}:2: version: expected 1, got 2\n"),
        ("/nonexistent/policy.yaml", "/nonexistent/policy.yaml:0: (file): cannot read: "),
    ],
    ids=["broken", "unreadable"],
)
def test_a_broken_policy_is_a_configuration_error_in_every_command(
    responder, args: list[str], policy: str, problem: str
) -> None:
    # UNREACHABLE: the policy is checked first, as the server does; Redis is never asked.
    result = responder(args, RESPONDER_POLICY=policy, RESPONDER_REDIS_URL=UNREACHABLE)
    assert result.exit_code == 2, result.output
    assert problem in result.output
    assert "Traceback" not in result.output
