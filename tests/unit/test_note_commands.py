"""Note commands people type on a PagerDuty incident, and what a status update then says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.notes.voice import Voice
from triage.incident_status import status_now
from triage.note_commands import (
    Approve,
    Malformed,
    RunAction,
    SetEta,
    SetStatus,
    Unknown,
    parse,
)
from triage.policy import builtin

EXPECTED_WORD = "expected one of investigating, identified, monitoring, then what you found or did"
EXPECTED_ETA = "expected how long until resolved, such as 30m, 2h or 1h30m, or unknown"
EXPECTED_RUN = (
    "expected an action and, for some, a catalog service: /run restart-service risk-manager"
)


@pytest.mark.parametrize(
    ("note", "commands"),
    [
        ("/status identified db connection pool exhausted",
         [SetStatus("Identified", "db connection pool exhausted")]),
        ("/STATUS Monitoring", [SetStatus("Monitoring")]),
        ("/status investigating", [SetStatus("Investigating")]),
        ("Rolled back the deploy.\n/status monitoring error rate falling\n  /eta 30m",
         [SetStatus("Monitoring", "error rate falling"), SetEta(timedelta(minutes=30))]),
        ("/eta 1h30m", [SetEta(timedelta(hours=1, minutes=30))]),
        ("/eta 2h", [SetEta(timedelta(hours=2))]),
        ("/eta unknown", [SetEta(None)]),
        ("/eta soon", [Malformed("/eta soon", EXPECTED_ETA)]),
        ("/eta 400h", [Malformed("/eta 400h", EXPECTED_ETA)]),
        (f"/eta {'1' * 5000}h", [Malformed(f"/eta {'1' * 5000}h", EXPECTED_ETA)]),
        ("/status fixed it", [Malformed("/status fixed it", EXPECTED_WORD)]),
        ("/status resolved",
         [Malformed("/status resolved",
                    "resolve the incident in PagerDuty; its status then says Resolved")]),
        ("/approve act-1A2b3c4d", [Approve("act-1a2b3c4d")]),
        ("/approve 42", [Malformed("/approve 42",
                                   "expected the id of a proposal, such as act-1a2b3c4d")]),
        ("/run restart-service risk-manager", [RunAction("restart-service", "risk-manager")]),
        ("Containing it.\n/RUN stop-trading", [RunAction("stop-trading")]),
        ("/run reboot-everything", [RunAction("reboot-everything")]),  # the policy refuses it
        ("/run restart-service risk-manager; docker rm -f x",
         [Malformed("/run restart-service risk-manager; docker rm -f x", EXPECTED_RUN)]),
        ("/run", [Malformed("/run", EXPECTED_RUN)]),
        (f"/run {'x' * 65}", [Malformed(f"/run {'x' * 65}", EXPECTED_RUN)]),
        ("/deploy now", [Unknown("deploy")]),  # not ours: ignored
        ("see /var/log/app.log", []),
        ("/var/log/app.log is full", []),  # a path, not a command
        ("", []),
    ],
)  # fmt: skip
def test_note_commands_a_person_types(note: str, commands: list[object]) -> None:
    assert parse(note) == commands


T0 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
VOICE = Voice.of(builtin())


def said(word: str, text: str = "", at: datetime = T0, by: str = "Dana") -> dict[str, str]:
    return {"word": word, "text": text, "by": by, "at": at.isoformat()}


@pytest.mark.parametrize(
    ("case", "record", "status", "actions", "eta"),
    [
        ("triggered: Investigating", {"status": "triggered"}, "Investigating",
         "automated diagnostics attached; waiting for acknowledgement", "unknown"),
        ("acknowledged is not Identified", {"status": "acknowledged"}, "Investigating",
         "automated diagnostics attached; on-call engineer engaged", "unknown"),
        ("Identified when a person says so",
         {"status": "triggered", "said_status": said("Identified", "pool exhausted")},
         "Identified", "pool exhausted (Dana)", "unknown"),
        ("Monitoring, with an ETA",
         {"status": "acknowledged", "said_status": said("Monitoring", "rolled back"),
          "said_eta": {"eta": "2026-11-30T15:30:00+00:00", "by": "Dana", "at": T0.isoformat()}},
         "Monitoring", "rolled back (Dana)", "2026-11-30 15:30 UTC"),
        ("an ETA that passed says so",
         {"status": "acknowledged",
          "said_eta": {"eta": "2026-11-30T14:00:00+00:00", "by": "Dana", "at": T0.isoformat()}},
         "Investigating", "automated diagnostics attached; on-call engineer engaged",
         "2026-11-30 14:00 UTC (passed)"),
        ("Resolved when PagerDuty says so",
         {"status": "resolved", "resolved_by": "Dana", "said_status": said("Monitoring")},
         "Resolved", "resolved by Dana", "resolved"),
        ("a word from before a reopen is not this cycle's",
         {"status": "triggered", "reopened_at": "2026-11-30T16:00:00+00:00",
          "said_status": said("Identified")},
         "Investigating", "automated diagnostics attached; waiting for acknowledgement",
         "unknown"),
    ],
)  # fmt: skip
def test_status_investigating_identified_monitoring_resolved(
    case: str, record: dict[str, object], status: str, actions: str, eta: str
) -> None:
    now = T0 + timedelta(minutes=20)
    next_update = None if status == "Resolved" else now + timedelta(minutes=30)
    update = VOICE.status_update(
        "PX1",
        status_now(record, now),
        "RiskCheckErrors",
        next_update,
        "",
        ["risk-manager"],
        "2 open positions at risk",
    )
    lines = update.splitlines()
    impact = (
        "Impact: risk-manager affected (RiskCheckErrors); user impact: 2 open positions at risk"
    )
    assert lines[1:5] == [
        f"Status: {status}", impact, f"Actions: {actions}", f"ETA: {eta}",
    ], case  # fmt: skip
    last = "Next Update: none, this is the last" if next_update is None else "Next Update: "
    assert lines[5].startswith(last), case
