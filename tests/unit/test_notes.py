"""Note rendering: first line says priority and what is broken; cuts never split a line."""

from datetime import UTC, datetime

from collectors.contract import Evidence, Status
from tasks.notes import clip, evidence_note, first_response_note
from tests.unit.test_classify import alert
from triage.classify import classify
from triage.policy import builtin
from triage.sla import deadlines

POLICY = builtin()


def test_first_response_note_leads_with_priority_and_reason() -> None:
    latency = alert(category="latency", severity="critical", service="signal-generator")
    classification = classify(latency, POLICY)
    due = deadlines(classification.priority, datetime(2026, 11, 25, 15, 0, tzinfo=UTC), POLICY)
    note = first_response_note([(latency, classification)], classification, due, POLICY, "d1")
    lines = note.splitlines()
    assert lines[0] == "[P1] Test: Test"
    assert lines[1].startswith("Why P1: signal-latency-over-5s - Significant latency increase")
    assert "acknowledge by 2026-11-25 15:15 UTC (15m)" in lines[2]
    assert "resolve by 2026-11-25 23:00 UTC (8h)" in lines[2]
    assert "- Test [P1] service=signal-generator severity=critical category=latency" in note


def test_evidence_note_lists_failures_first() -> None:
    classification = classify(alert(category="security"), POLICY)
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
