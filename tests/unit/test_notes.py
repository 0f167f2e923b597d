"""Note rendering: first line says priority and what is broken; cuts never split a line."""

from datetime import UTC, datetime, timedelta

import pytest

from collectors.contract import Evidence, Status
from tasks import notes
from tasks.notes import (
    alert_headline,
    alert_lines,
    clip,
    evidence_note,
    first_response_note,
    incident_lines,
    market_line,
    resolved_note,
)
from tests.unit.test_classify import alert
from triage.classify import classify
from triage.models import Incident
from triage.policy import builtin
from triage.sla import deadlines

POLICY = builtin()


def test_first_response_note_leads_with_priority_and_reason() -> None:
    latency = alert(
        {"value_seconds": "7.2"},
        category="latency",
        severity="critical",
        service="signal-generator",
    )
    classification = classify(latency, POLICY, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    due = deadlines(classification.priority, datetime(2026, 11, 25, 15, 0, tzinfo=UTC), POLICY)
    now = datetime(2026, 11, 25, 15, 0, 30, tzinfo=UTC)
    pairs = [(latency, classification)]
    subjects = alert_lines(pairs, truncated=3)
    note = first_response_note(
        alert_headline(latency), subjects, classification, due, POLICY, "d1", now
    )
    lines = note.splitlines()
    assert lines[0] == "[P1] Test"  # name and summary are the same: said once
    assert lines[1].startswith("Why P1: signal-latency-over-5s - Significant latency increase")
    assert lines[2] == "Market: OPEN (closes Fri 17:00 New York time)"
    assert "acknowledge by 2026-11-25 15:15 UTC (15m)" in lines[3]
    assert "resolve by 2026-11-25 23:00 UTC (8h of market hours)" in lines[3]
    assert "- Test [P1] service=signal-generator severity=critical category=latency" in note
    assert "+ 3 more alerts not sent: Alertmanager truncated the group" in note


@pytest.mark.parametrize(
    ("now", "line"),
    [
        (
            datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
            "Market: closed (opens Sun 17:00 New York time)",
        ),
        (
            datetime(2026, 11, 29, 22, 0, tzinfo=UTC),
            "Market: OPEN (closes Fri 17:00 New York time)",
        ),
        (
            datetime(2026, 12, 24, 20, 0, tzinfo=UTC),
            "Market: OPEN (closes Fri 00:00 New York time)",
        ),
        (
            datetime(2026, 12, 25, 20, 0, tzinfo=UTC),
            "Market: closed (opens Sun 17:00 New York time)",
        ),
    ],
)
def test_market_line_answers_the_runbook_first_question(now: datetime, line: str) -> None:
    assert market_line(now, POLICY) == line


def test_evidence_note_lists_failures_first() -> None:
    classification = classify(
        alert(category="security"), POLICY, datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    )
    note = evidence_note(
        classification,
        "AuthFailureSpike",
        [
            Evidence("redis", Status.OK, "PONG", duration_seconds=0.01),
            Evidence("http", Status.FAILED, "5/6 services healthy", duration_seconds=1.2),
        ],
        "/bundles/x",
    )
    lines = note.splitlines()
    assert lines[0] == "[P0] AuthFailureSpike evidence: 1 of 2 checks found problems"
    assert lines[2].startswith("- FAILED http (1.2 s)")
    assert lines[3].startswith("- OK redis")
    assert lines[-1] == "Bundle: /bundles/x"


def test_clip_cuts_at_a_line_boundary_within_the_limit() -> None:
    text = "\n".join(f"line {n:04d}" for n in range(1000))
    clipped = clip(text, limit=500)
    assert len(clipped) <= 500
    body, _, marker = clipped.rpartition("\n")
    assert marker == "[... cut; the full text is in the bundle]"
    assert all(line.startswith("line ") and len(line) == 9 for line in body.splitlines())


def test_clip_leaves_short_text_alone_and_bounds_one_huge_line() -> None:
    assert clip("short", limit=100) == "short"
    assert len(clip("x" * 5000, limit=300)) <= 300


def test_incident_lines_name_the_pagerduty_incident() -> None:
    incident = Incident("PX1", "[FIRING:1] RiskManagerDown", "triggered", "high", "", "EAFIX")
    assert incident_lines(incident) == [
        "PagerDuty incident PX1: [FIRING:1] RiskManagerDown (urgency high, service EAFIX)"
    ]


def test_resolved_note_says_how_long_it_lasted() -> None:
    from dataclasses import replace

    fired = alert(category="latency")
    ended = replace(fired, status="resolved", ends_at=fired.starts_at + timedelta(minutes=32))
    note = resolved_note([ended], "d9")
    assert note.splitlines()[0] == "[RESOLVED] Test: resolved in Alertmanager"
    assert "after 32m" in note
    assert note.endswith("No diagnostics run for a resolution. (delivery d9)")


def test_evidence_note_shows_the_top_error_lines_before_the_bundle() -> None:
    classification = classify(
        alert(category="security"), POLICY, datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    )
    note = evidence_note(
        classification,
        "AuthFailureSpike",
        [Evidence("docker", Status.FAILED, "gui-gateway 2 error lines")],
        "/bundles/x",
        ["gui-gateway: 2026-11-27T10:01:00Z ERROR login storm"],
    )
    assert note.splitlines()[-4:] == [
        "Top error lines:",
        "  gui-gateway: 2026-11-27T10:01:00Z ERROR login storm",
        "",
        "Bundle: /bundles/x",
    ]


def test_top_error_lines_are_the_latest_across_services(tmp_path) -> None:
    from tasks.run.response import top_error_lines

    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "a.errors.log").write_text(
        "2026-11-27T10:00:00Z ERROR a1\n2026-11-27T10:03:00Z ERROR a2\n"
    )
    (tmp_path / "docker" / "b.errors.log").write_text("2026-11-27T10:02:00Z CRITICAL b1\n")
    assert top_error_lines(tmp_path, count=2) == [
        "b: 2026-11-27T10:02:00Z CRITICAL b1",
        "a: 2026-11-27T10:03:00Z ERROR a2",
    ]


def test_a_note_is_known_by_its_opening_only_when_long_enough_to_tell() -> None:
    long = "[P1] SignalLatencyHigh evidence: 2 of 4 checks found problems (4 skipped)\n- more"
    assert notes.opening(long) == notes.opening(long[: notes.OPENING_CHARS] + " trimmed")
    assert notes.opening(long) != notes.opening("[P0]" + long[4:])
    assert notes.opening("short note") is None
