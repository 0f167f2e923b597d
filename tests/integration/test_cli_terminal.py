"""Issue 24, finding 11: an alert's name never drives the terminal of whoever lists it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from tasks.cli import main
from tasks.cli.terminal import printable
from tasks.settings import Settings
from tasks.store.sla_clock import SlaClock, deadlines_for
from tests.integration import test_delivery_cli as cli
from tests.support import sample_payload
from triage.models import Priority
from triage.policy import builtin
from triage.sla import deadlines

HOSTILE = "\x1b[2J\x1b]0;pwned\x07"  # clear the screen, retitle the window, ring the bell
SHOWN = "\\u001b[2J\\u001b]0;pwned\\u0007"


def hostile_payload() -> dict:
    payload = sample_payload()
    for alert in payload["alerts"]:
        alert["labels"]["alertname"] = HOSTILE
    payload["commonLabels"]["alertname"] = HOSTILE
    return payload


def no_controls(text: str) -> bool:
    return not any(ord(c) < 0x20 and c not in "\n\t" or 0x7F <= ord(c) <= 0x9F for c in text)


@pytest.fixture
def env(settings: Settings, redis_client, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RESPONDER_QUEUE", cli.QUEUE)
    yield
    redis_client.delete(cli.QUEUE, cli.URGENT)


def test_responder_deliveries_shows_an_escape_sequence_in_a_name_escaped(
    env: None, settings: Settings
) -> None:
    delivery = cli.post(settings, hostile_payload())
    human = CliRunner().invoke(main, ["deliveries", "--since", "1h"])
    assert human.exit_code == 0, human.output
    assert no_controls(human.output)
    [line] = [line for line in human.output.splitlines() if delivery in line]
    assert SHOWN in line
    # --json stays JSON, and says the name as it was.
    rows = json.loads(CliRunner().invoke(main, ["deliveries", "--since", "1h", "--json"]).output)
    assert [r["what"] for r in rows if r["id"] == delivery] == [HOSTILE]


def test_responder_sla_shows_an_escape_sequence_in_a_title_escaped(
    settings: Settings, redis_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    at = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    due = deadlines(Priority.P1, at, builtin()).to_dict()
    SlaClock(redis_client).register(deadlines_for("PESC1", "run-esc", HOSTILE, due))
    human = CliRunner().invoke(main, ["sla"]).output
    assert no_controls(human)
    assert all(SHOWN in line for line in human.splitlines() if line.startswith("PESC1"))
    rows = json.loads(CliRunner().invoke(main, ["sla", "--json"]).output)
    assert {r["title"] for r in rows if r["incident_id"] == "PESC1"} == {HOSTILE}
    SlaClock(redis_client).cancel("PESC1")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (HOSTILE, SHOWN),
        ("a\tb\nc", "a\tb\nc"),  # the CLI's own layout stays
        ("\x9b2J", "\\u009b2J"),  # a C1 CSI on its own
        ("\x7f\x00", "\\u007f\\u0000"),
        ("abc\u202edcba", "abc\\u202edcba"),  # a right-to-left override
        ("caf\u00e9 \u2713", "caf\u00e9 \u2713"),  # letters and symbols are not controls
    ],
)
def test_printable_shows_every_terminal_control_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown
