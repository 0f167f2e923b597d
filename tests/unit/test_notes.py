"""Note rendering: first line says priority and what is broken; cuts never split a line."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import jinja2
import jinja2.bccache
import pytest

from collectors.contract import Evidence, Status
from tasks.notes import markers as notes
from tasks.notes.markers import clip
from tasks.notes.voice import (
    TEMPLATES,
    Voice,
    _CompiledTemplates,
    _environment,
    headline,
    names_read,
)
from tests.unit.test_classify import alert
from triage.classify import classify
from triage.incident_status import StatusNow
from triage.models import Classification, Incident, ListedAlert, Priority
from triage.policy import builtin
from triage.sla import deadlines

POLICY = builtin()
VOICE = Voice.of(POLICY)


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
    listed = [ListedAlert.of(latency, classification)]
    note = VOICE.first_response(
        headline(latency), classification, due, "d1", now, alerts=listed, truncated=3
    )
    lines = note.splitlines()
    assert lines[0] == "[P1 (PagerDuty: P2)] Test"  # name and summary are the same: said once
    assert lines[1].startswith("Why P1: signal-latency-over-5s - Significant latency increase")
    assert lines[2] == "Market: OPEN (closes Fri 17:00 New York time)"
    assert "acknowledge by 2026-11-25 15:15 UTC (15m)" in lines[3]
    assert "resolve by 2026-11-25 23:00 UTC (8h of market hours)" in lines[3]
    assert "- Test [P1] service=signal-generator severity=critical category=latency" in note
    assert "+ 3 more alerts not sent: Alertmanager truncated the group" in note


@pytest.mark.parametrize(
    ("labels", "said"),
    [
        (
            {"alertname": "DiskFull", "severity": "critical"},
            "NO RUNBOOK RULE MATCHED: P1 comes from the policy's severity_fallback, not from a "
            "runbook bullet. Add a rule for this alert to the policy.",
        ),
        (
            {"alertname": "BackupSlow", "severity": "info"},
            "NO RUNBOOK RULE MATCHED: P3 comes from the policy's default_priority, not from a "
            "runbook bullet. Add a rule for this alert to the policy.",
        ),
        ({"alertname": "SignalLatencyHigh", "category": "latency", "severity": "critical"}, None),
    ],
)
def test_the_first_note_says_plainly_when_no_runbook_rule_matched(
    labels: dict[str, str], said: str | None
) -> None:
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    subject = alert(**labels)
    classification = classify(subject, POLICY, now)
    due = deadlines(classification.priority, now, POLICY)
    note = VOICE.first_response(headline(subject), classification, due, "d1", now)
    lines = note.splitlines()
    if said is None:
        assert not any("NO RUNBOOK RULE MATCHED" in line for line in lines)
    else:
        assert lines[1].startswith(f"Why {classification.priority}: {classification.rule} - no ")
        assert lines[2] == said


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
    classification = classify(alert(category="latency"), POLICY, now)
    due = deadlines(classification.priority, now, POLICY)
    note = VOICE.first_response("Test", classification, due, "d1", now)
    assert note.splitlines()[2] == line


def test_evidence_note_lists_failures_first() -> None:
    classification = classify(
        alert(category="security"), POLICY, datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    )
    note = VOICE.evidence(
        classification,
        "AuthFailureSpike",
        [
            Evidence("redis", Status.OK, "PONG", duration_seconds=0.01),
            Evidence("http", Status.FAILED, "5/6 services healthy", duration_seconds=1.2),
        ],
        "/bundles/x",
    )
    lines = note.splitlines()
    assert (
        lines[0] == "[P1 (PagerDuty: P2)] AuthFailureSpike evidence: 1 of 2 checks found problems"
    )
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
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    classification = classify(incident, POLICY, now)
    due = deadlines(classification.priority, now, POLICY)
    note = VOICE.first_response(incident.title, classification, due, "d1", now, incident=incident)
    assert (
        "PagerDuty incident PX1: [FIRING:1] RiskManagerDown (urgency high, service EAFIX)"
        in note.splitlines()
    )


def test_resolved_note_says_how_long_it_lasted() -> None:
    from dataclasses import replace

    fired = alert(category="latency")
    ended = replace(fired, status="resolved", ends_at=fired.starts_at + timedelta(minutes=32))
    note = VOICE.resolved([ended], "d9")
    assert note.splitlines()[0] == "[RESOLVED] Test: resolved in Alertmanager"
    assert "after 32m" in note
    assert note.endswith("No diagnostics run while alerts of the group still fire. (delivery d9)")


CHECKS_OK = [
    {"collector": "http", "status": "ok", "summary": "6/6 services healthy"},
    {"collector": "flow", "status": "ok", "summary": "tick accepted; a signal 0.3 s after it"},
]
CHECK_FAILED = [{"collector": "flow", "status": "failed", "summary": "tick refused: HTTP 404"}]


# The whole group cleared: what was stopped, validated and done is said, whatever was done.
# settled, the lines the note has
@pytest.mark.parametrize(
    ("settled", "said"),
    [
        (
            {"stopped": ["acknowledge", "respond"], "checks": CHECKS_OK,
             "incident": "left to a person"},
            ["Every alert of the group cleared. Stopped the SLA clocks that waited on an answer "
             "to it: acknowledge, respond.",
             "- OK http: 6/6 services healthy",
             "- OK flow: tick accepted; a signal 0.3 s after it",
             "The PagerDuty incident stays open for a person to resolve after checking (policy: "
             "on_resolved.resolve_incident is off)."],
        ),
        (
            {"stopped": [], "checks": CHECKS_OK, "incident": "resolved"},
            ["Every alert of the group cleared. No SLA clock waited on an answer to it.",
             "The PagerDuty incident is resolved: every check passed (policy: "
             "on_resolved.resolve_incident)."],
        ),
        (
            {"stopped": ["acknowledge"], "checks": CHECK_FAILED,
             "incident": "left: a check did not pass"},
            ["- FAILED flow: tick refused: HTTP 404",
             "The PagerDuty incident stays open: a check did not pass. Resolve it once the "
             "system is well."],
        ),
        (
            {"stopped": [], "checks": CHECKS_OK, "incident": "refused: HTTP 403"},
            ["Resolving the PagerDuty incident failed (HTTP 403): resolve it by hand."],
        ),
        (
            {"stopped": [], "checks": CHECKS_OK, "incident": "already resolved"},
            ["The PagerDuty incident is already resolved (PagerDuty says so: Alertmanager's "
             "PagerDuty receiver or a person resolved it); every check passed."],
        ),
        (
            {"stopped": [], "checks": CHECK_FAILED,
             "incident": "already resolved: a check did not pass"},
            ["The PagerDuty incident is already resolved (PagerDuty says so: Alertmanager's "
             "PagerDuty receiver or a person resolved it), but a check did not pass: look at "
             "the system before trusting it."],
        ),
    ],
    ids=["left to a person", "resolved by policy", "a check failed", "PagerDuty refused",
         "PagerDuty already resolved it", "PagerDuty already resolved it, a check failed"],
)  # fmt: skip
def test_resolution_immediate_notification_says_what_was_validated_and_done(
    settled: dict, said: list[str]
) -> None:
    from dataclasses import replace

    fired = alert(category="latency")
    ended = replace(fired, status="resolved", ends_at=fired.starts_at + timedelta(minutes=32))
    lines = VOICE.resolved([ended], "d9", settled).splitlines()
    assert lines[:3] == [
        "[RESOLVED] Test: resolved in Alertmanager",
        "",
        "- Test: fired 2026-11-25 15:00 UTC, resolved 2026-11-25 15:32 UTC after 32m",
    ]
    assert set(said) <= set(lines), lines
    assert lines[-1] == "(delivery d9)"


def test_evidence_note_shows_the_top_error_lines_before_the_bundle() -> None:
    classification = classify(
        alert(category="security"), POLICY, datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    )
    note = VOICE.evidence(
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
    from tasks.run.evidence_note import top_error_lines

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


def test_a_deadline_already_passed_when_the_note_is_written_says_by_how_much() -> None:
    fired = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    classification = classify(alert(category="latency"), POLICY, fired)
    due = deadlines(classification.priority, fired, POLICY)
    note = VOICE.first_response("Test", classification, due, "d1", fired + timedelta(days=2))
    sla = note.splitlines()[3]
    assert "acknowledge by 2026-11-25 16:00 UTC (1h of business hours, overdue by 47h)" in sla
    assert "overdue" not in VOICE.first_response("Test", classification, due, "d1", fired)


def test_the_built_in_templates_pass_their_own_check() -> None:
    assert VOICE.check() == []


def test_a_policy_template_directory_overrides_a_note_by_file_name(tmp_path) -> None:
    (tmp_path / "sla_gave_up.txt.j2").write_text(
        "{{ priority }} {{ kind }}: {{ why }} -> {{ by_hand }}\n"
    )
    voice = Voice(POLICY, str(tmp_path))
    assert voice.check() == []
    assert voice.sla_gave_up("P1", "next_update", "refused", "post it") == (
        "P1 next_update: refused -> post it"
    )
    # The others keep the built-in wording.
    assert VOICE.sla_gave_up("P1", "next_update", "refused", "post it").startswith(
        "[P1 (PagerDuty: P2)] SLA"
    )


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        # A name the note does not have, in a branch the sample never takes: found all the same.
        (
            "closing.txt.j2",
            "{% if false %}{{ incident_url }}{% endif %}Resolved",
            "uses 'incident_url', which this note does not have",
        ),
        # The same in a template that uses the voice's filters, as most built-in ones do.
        (
            "closing.txt.j2",
            "{{ priority|with_pagerduty }}{% if false %}{{ incident_url|local }}{% endif %}",
            "uses 'incident_url', which this note does not have",
        ),
        ("evidence.txt.j2", "{{ bundle.nosuch }}", "has no attribute 'nosuch'"),
        ("status_update.txt.j2", "{% if %}", "line 1: "),
        ("first_reponse.txt.j2", "typo", "not a template the responder writes"),
    ],
)
def test_a_broken_override_is_an_error_that_names_the_template(
    tmp_path, name: str, text: str, problem: str
) -> None:
    (tmp_path / name).write_text(text)
    problems = Voice(POLICY, str(tmp_path)).check()
    assert len(problems) == 1 and name in problems[0] and problem in problems[0], problems


@pytest.mark.parametrize(
    "name", sorted(p.name for p in TEMPLATES.glob("*.j2") if not p.name.startswith("_"))
)
def test_the_names_each_built_in_note_template_reads_are_found(name: str) -> None:
    # Raises, as a check would swallow, if a filter the template uses is unknown to the parser.
    assert names_read((TEMPLATES / name).read_text())


def test_a_missing_override_directory_is_an_error(tmp_path) -> None:
    assert Voice(POLICY, str(tmp_path / "nowhere")).check() == [
        f"{tmp_path / 'nowhere'}: the note template directory does not exist"
    ]


def test_notes_keep_their_text_as_written_and_their_blank_lines_where_they_were() -> None:
    # Rendered by the old f-strings before the templates: the same, byte for byte.
    fired = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    many = [
        (alert(category="latency", alertname=f"A{n}"), classify(alert(), POLICY, fired))
        for n in range(22)
    ]
    joined = VOICE.joined_alerts(many, ["d1", "d9"], timedelta(minutes=10), fired, shown=20)
    tail = (
        "category=latency\n+ 2 more (responder deliveries lists them)\n\n(2 deliveries: d1 .. d9;"
    )
    assert tail in joined
    empty = VOICE.evidence(classify(alert(), POLICY, fired), "T", [], "/b")
    assert empty == "[P3 (PagerDuty: P4)] T evidence: all 0 checks passed\n\n\nBundle: /b"
    spaced = alert({"summary": "para one\n\n\npara two  "})
    listed = [ListedAlert.of(spaced, classify(spaced, POLICY, fired))]
    due = deadlines(Priority.P3, fired, POLICY)
    note = VOICE.first_response(
        "T", classify(spaced, POLICY, fired), due, "d1", fired, alerts=listed
    )
    assert "  para one\n\n\npara two  \n\nRunbook:" in note


def test_an_override_that_fails_on_unforeseen_facts_falls_back_to_the_built_in_note(
    tmp_path,
) -> None:
    # Passes the check (the samples have no such alert) but fails on a real one.
    (tmp_path / "resolved.txt.j2").write_text(
        "{% for a in alerts %}{{ a.name }} {{ (a.lasted.total_seconds() / 60)|int }}m{% endfor %}"
    )
    voice = Voice(POLICY, str(tmp_path))
    fired = alert()
    same = replace(fired, status="resolved", ends_at=fired.starts_at)  # lasted: None
    assert voice.resolved([same], "d1") == VOICE.resolved([same], "d1")


def test_the_check_takes_every_branch_of_a_note(tmp_path) -> None:
    from tasks.notes.voice import TEMPLATES

    parts = (TEMPLATES / "_parts.j2").read_text().replace("incident.title", "incident.tittle")
    (tmp_path / "_parts.j2").write_text(parts)  # only PagerDuty-started first notes use it
    (tmp_path / "report.txt.j2").write_text("{% for row in rows %}{{ row.mtaa }}{% endfor %}")
    (tmp_path / "README.md").write_text("what these templates change")  # not a template
    (tmp_path / ".gitkeep").write_text("")
    problems = Voice(POLICY, str(tmp_path)).check()
    # The report table is also part of the management summary, which includes it.
    assert len(problems) == 3, problems
    assert "first_response.txt.j2" in problems[0] and "'tittle'" in problems[0]
    assert "management_summary.txt.j2" in problems[1] and "'mtaa'" in problems[1]
    assert "report.txt.j2" in problems[2] and "'mtaa'" in problems[2]


@pytest.mark.parametrize(
    ("ours", "named"),
    [
        ("P0", "P0 (PagerDuty: P1)"),
        ("P1", "P1 (PagerDuty: P2)"),
        ("P2", "P2 (PagerDuty: P3)"),
        ("P3", "P3 (PagerDuty: P4)"),
    ],
)
def test_our_p0_is_pagerdutys_p1_every_note_names_both(ours: str, named: str) -> None:
    fired = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    due = deadlines(Priority(ours), fired, POLICY)
    group = Classification(Priority(ours), "r", "why")
    assert VOICE.first_response("T", group, due, "d1", fired).startswith(f"[{named}] T\n")
    assert VOICE.evidence(group, "T", [], "/b").startswith(f"[{named}] T evidence")
    assert VOICE.sla_missed(ours, "acknowledge", fired, "5m", 2).startswith(f"[{named}] SLA")
    update = VOICE.status_update("PX", StatusNow("Investigating"), "T", fired, ours)
    assert update.startswith(f"INCIDENT UPDATE - PX [{named}]\n")


def test_without_a_pagerduty_name_a_priority_is_ours_alone() -> None:
    from dataclasses import replace as changed

    policy = changed(POLICY, pagerduty=changed(POLICY.pagerduty, priorities={}))
    assert Voice.of(policy).with_pagerduty("P0") == "P0"


@pytest.mark.parametrize(
    ("outcome", "extra", "first_line"),
    [
        # "Trading Desk: [Phone - Market Hours Only]": nobody for PagerDuty to call in, so the
        # note's first line asks a person to phone, with the policy's number.
        ("phone", {"called": "+1 212 555 0100"},
         "[P0 (PagerDuty: P1)] Phone the trading desk now: +1 212 555 0100. Critical trading "
         "impact (not checked: open positions unknown); the policy names nobody for PagerDuty "
         "to call in (communication.trading_desk.call.targets)."),
        ("requested", {"called": "PDESK01 (escalation policy)"},
         "[P0 (PagerDuty: P1)] Trading desk: critical trading impact (not checked: open "
         "positions unknown): called in by a PagerDuty responder request to PDESK01 "
         "(escalation policy)."),
    ],
)  # fmt: skip
def test_phone_call_for_critical_trading_impacts_the_note_says_who_calls(
    outcome: str, extra: dict[str, str], first_line: str
) -> None:
    note = VOICE.desk_call("P0", outcome, "not checked: open positions unknown", **extra)
    assert note.splitlines()[0] == first_line


# The runbook's update template, "Impact: [Service affected, user impact]":
# services the alert names, the alert's title, the trading impact -> the Impact line
@pytest.mark.parametrize(
    ("services", "title", "user_impact", "line"),
    [
        (["risk-manager"], "RiskCheckErrors", "2 open positions at risk",
         "Impact: risk-manager affected (RiskCheckErrors); user impact: 2 open positions at risk"),
        (["gui-gateway", "execution-engine"], "EAFIXCompleteOutage",
         "open positions unknown (unreadable)",
         "Impact: gui-gateway, execution-engine affected (EAFIXCompleteOutage); user impact: "
         "open positions unknown (unreadable)"),
        ([], "SignalLatencyHigh", "no trading impact found",
         "Impact: SignalLatencyHigh; user impact: no trading impact found"),
        ([], "SignalLatencyHigh", "",
         "Impact: SignalLatencyHigh; user impact: not known yet (see the evidence note)"),
    ],
    ids=["one service, positions at risk", "a complete outage", "no service named",
         "the run's evidence is gone"],
)  # fmt: skip
def test_update_template_impact_service_affected_user_impact(
    services: list[str], title: str, user_impact: str, line: str
) -> None:
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    update = VOICE.status_update(
        "PX", StatusNow("Investigating"), title, now, "P1", services, user_impact
    )
    assert update.splitlines()[:3] == ["INCIDENT UPDATE - PX [P1 (PagerDuty: P2)]",
                                       "Status: Investigating", line]  # fmt: skip


# "Management: P1 incidents: Within 30 minutes", resolved before it fell due: whoever was
# e-mailed -> the note's last line (a summary already e-mailed is not handed on by a person)
@pytest.mark.parametrize(
    ("emailed", "last"),
    [
        ("engineering-management@eafix.example",
         "This summary was e-mailed to engineering management "
         "(engineering-management@eafix.example); no one is called in for a resolved incident."),
        ("", "No responder request for a resolved incident: pass this summary on to engineering "
             "management."),
    ],
    ids=["e-mailed", "no e-mail"],
)  # fmt: skip
def test_management_p1_incidents_within_30_minutes_resolved_before_it_fell_due(
    emailed: str, last: str
) -> None:
    note = VOICE.management_resolved("P1", None, emailed)
    assert note.splitlines()[0].startswith("[P1 (PagerDuty: P2)] Management notification (30m)")
    assert note.splitlines()[-1] == last


# "Immediate notification for P0/P1 incidents": every e-mail names our priority and PagerDuty's
# kind, outcome -> the subject
@pytest.mark.parametrize(
    ("kind", "outcome", "subject"),
    [
        ("desk_alert", "", "P0 (PagerDuty: P1) incident during market hours: Down"),
        ("desk_summary", "", "Resolved P0 (PagerDuty: P1): Down - summary for the trading desk"),
        ("management", "notify", "P0 (PagerDuty: P1) incident for management: Down"),
        ("management", "resolved", "Resolved P0 (PagerDuty: P1) for management: Down"),
    ],
)  # fmt: skip
def test_immediate_notification_for_p0_p1_incidents_emails_name_pagerdutys_priority_too(
    kind: str, outcome: str, subject: str
) -> None:
    said = VOICE.email_subject(kind, priority="P0", title="Down", outcome=outcome)
    assert said == f"[EAFIX] {subject}"


# The runbook's "Evidence collection" told twice, in the note and on the bundle's page:
# how the checks ended -> the count both say
@pytest.mark.parametrize(
    ("statuses", "said"),
    [
        (["failed", "timeout", "ok"] + ["skipped"] * 5, "2 of 3 checks found problems (5 skipped)"),
        (["ok", "ok"], "all 2 checks passed"),
        (["ok", "skipped"], "all 1 checks passed (1 skipped)"),
        (["failed"], "1 of 1 checks found problems"),
    ],
    ids=["problems and skipped", "all passed", "passed and skipped", "one problem"],
)  # fmt: skip
def test_evidence_collection_the_note_and_the_bundle_page_count_the_checks_alike(
    statuses: list[str], said: str
) -> None:
    from pathlib import Path

    evidence = [
        Evidence(collector=f"c{n}", status=Status(status), summary="s")
        for n, status in enumerate(statuses)
    ]
    group = Classification(Priority.P1, "r", "why")
    note = VOICE.evidence(group, "T", evidence, "/b").splitlines()[0]
    assert note == f"[P1 (PagerDuty: P2)] T evidence: {said}"
    manifest = {
        "created_at": "2026-11-29T14:00:00+00:00",
        "classification": {"priority": "P1", "rule": "r", "reason": "why"},
        "collectors": [
            {"name": f"c{n}", "status": status, "summary": "s", "duration_seconds": 0,
             "files": [], "tables": {}}
            for n, status in enumerate(statuses)
        ],
    }  # fmt: skip
    page = VOICE.bundle_index(manifest, Path("/none"))
    assert f"<b>{said[0].upper()}{said[1:]}</b>" in page


def test_compiled_templates_are_kept_on_disk_for_the_next_process(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = jinja2.DictLoader({"t.txt.j2": "hello {{ name }}"})
    first = _environment(loader, _CompiledTemplates(tmp_path))
    assert first.get_template("t.txt.j2").render(name="x") == "hello x"
    assert len(list(tmp_path.glob("*.cache"))) == 1

    def compile_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again although the disk holds its code")

    monkeypatch.setattr(jinja2.Environment, "compile", compile_again)
    # A fresh cache, as a new process has: the code comes from the folder.
    later = _environment(loader, _CompiledTemplates(tmp_path))
    assert later.get_template("t.txt.j2").render(name="y") == "hello y"


def test_a_folder_that_cannot_keep_compiled_templates_leaves_them_in_memory(tmp_path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    env = _environment(jinja2.DictLoader({"t.txt.j2": "hi"}), _CompiledTemplates(not_a_folder))
    assert env.get_template("t.txt.j2").render() == "hi"
    assert env.get_template("t.txt.j2").render() == "hi"


def test_a_check_kept_for_the_same_sources_is_done_again_once_an_override_changes(
    tmp_path,
) -> None:
    (tmp_path / "closing.txt.j2").write_text("Resolved")
    assert Voice(POLICY, str(tmp_path)).check() == []
    assert Voice(POLICY, str(tmp_path)).check() == []  # the same sources: the kept answer
    (tmp_path / "closing.txt.j2").write_text("{{ nosuch }}")
    (problem,) = Voice(POLICY, str(tmp_path)).check()
    assert "closing.txt.j2: uses 'nosuch'" in problem


def test_a_damaged_compiled_template_on_disk_is_compiled_again_and_written_over(
    tmp_path,
) -> None:
    loader = jinja2.DictLoader({"t.txt.j2": "hello {{ name }}"})
    _environment(loader, _CompiledTemplates(tmp_path)).get_template("t.txt.j2")
    (kept,) = tmp_path.glob("*.cache")
    kept.write_bytes(jinja2.bccache.bc_magic + b"not a pickle, not code")
    later = _environment(loader, _CompiledTemplates(tmp_path))
    assert later.get_template("t.txt.j2").render(name="z") == "hello z"
    assert kept.read_bytes() != jinja2.bccache.bc_magic + b"not a pickle, not code"
