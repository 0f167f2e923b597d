"""One-line texts from templates: the incident timeline's lines say exactly what they said as
f-strings (the page and `responder action show` read their words), and a policy's responder
request message fills its placeholders, old `{priority}` and Jinja `{{ priority }}` alike."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.contract import Evidence, Status
from tasks.notes import lines, vocabulary
from tasks.notes.bundle_view import index_view
from tasks.notes.lines import TEMPLATES
from tasks.notes.voice import Voice
from tasks.store.proposals import Proposal
from triage.models import Classification, Priority
from triage.policy import builtin
from webhooks import incident_page_view
from webhooks.slack import slack_mentions

P = Proposal(
    "act-1a2b3c4d", "stop-trading", "gui-gateway", "PINC1", "dana", "2026-01-05T10:00:00+00:00",
    "2026-01-05T11:00:00+00:00",
)  # fmt: skip

TIMELINE: list[tuple[str, dict[str, Any], str]] = [
    ("note_posted", {"first_line": "EAFIX P1 first response"}, "note: EAFIX P1 first response"),
    ("email_sent", {"kind": "desk_alert", "to": ("a@x", "b@y")},
     "e-mail desk_alert sent to a@x, b@y"),
    ("approval_links_sent", {"count": 1}, "personal approval links e-mailed (1 approver)"),
    ("approval_links_sent", {"count": 3}, "personal approval links e-mailed (3 approvers)"),
    ("desk_called", {"called": "PDESK (user)"}, "trading desk called: PDESK (user)"),
    ("security_requested", {"called": "PSEC (escalation policy)"},
     "security team requested from PSEC (escalation policy)"),
    ("responders_requested", {"called": "PMGT (user)"}, "responders requested from PMGT (user)"),
    ("cto_called", {"called": "PCTO (user)"}, "CTO called in: PCTO (user)"),
    ("escalated", {"level": 3}, "escalated to level 3"),
    ("merged", {"incident_id": "PB", "alert_name": "OrdersFailing"}, "merged PB (OrdersFailing)"),
    ("watch_period", {"sentence": "fired again 3h after PA was resolved"},
     "watch period: fired again 3h after PA was resolved"),
    ("watch_period_fired_again", {"incident_id": "PB"}, "watch period: fired again as PB"),
    ("status_update_posted", {}, "status update posted"),
    ("status_update_posted", {"word": "monitoring"}, "status update posted: monitoring"),
    ("urgency_raised", {}, "urgency set to high"),
    ("urgency_lowered_after_hours", {}, "urgency set to low until business hours"),
    ("urgency_restored_business_hours", {}, "urgency set to high: business hours"),
    ("judged_again", {"was": "P2", "now": "P1", "market_open": True},
     "judged again: P2 -> P1 (market open)"),
    ("judged_again", {"was": "P1", "now": "P2", "market_open": False},
     "judged again: P1 -> P2 (market closed)"),
    ("judged_again_left", {"would_be": "P2", "was": "P1"},
     "judged again: would now be P2; left P1 (acknowledged)"),
    ("resolved_validated", {}, "resolved: every alert cleared and validated"),
    ("note_added", {}, "note added"),
    ("status_said", {"word": "identified"}, "status identified"),
    ("eta_said", {"eta": datetime(2026, 1, 5, 14, 30)}, "ETA 2026-01-05 14:30 UTC"),
    ("eta_said", {"eta": None}, "ETA unknown"),
    ("action_proposed", {"p": P}, "action act-1a2b3c4d proposed: stop-trading on gui-gateway"),
    ("action_proposed", {"p": P, "rule": "stop-on-loss", "why": "orders failing"},
     "action act-1a2b3c4d proposed: stop-trading on gui-gateway by rule stop-on-loss: "
     "orders failing"),
    ("action_proposed_again", {"p": P, "why": "trading resumed"},
     "action act-1a2b3c4d proposed: stop-trading on gui-gateway: trading resumed"),
    ("action_approved", {"p": P, "via": "cli"},
     "action act-1a2b3c4d approved: stop-trading on gui-gateway (via cli)"),
    ("action_approved_partly", {"p": P, "count": 1, "required": 2, "via": "slack"},
     "action act-1a2b3c4d approved 1 of 2: stop-trading on gui-gateway (via slack); it runs "
     "when another person approves"),
    ("action_denied", {"p": P, "via": "incident page"},
     "action act-1a2b3c4d denied: stop-trading on gui-gateway (via incident page)"),
    ("action_refused", {"p": P, "why": "not allowed"}, "action act-1a2b3c4d refused: not allowed"),
    ("action_held", {"p": P, "rule": "r", "limit": "1h", "held": "act-99"},
     "action act-1a2b3c4d not run automatically: rule r ran stop-trading on gui-gateway within "
     "1h (act-99); it waits for a person"),
    ("action_ran", {"p": P, "status": "done", "ran": "POST http://gw/stop", "answer": "200",
                    "seconds": 0.25, "verified": "passed"},
     "action act-1a2b3c4d done: stop-trading on gui-gateway: POST http://gw/stop answered 200 in "
     "0.2 s; verification passed"),
    ("action_not_needed", {"p": P, "why": "the alert cleared"},
     "action act-1a2b3c4d not run: stop-trading on gui-gateway: no longer needed: the alert "
     "cleared"),
    ("action_withdrawn", {"p": P},
     "action act-1a2b3c4d withdrawn: stop-trading on gui-gateway: the incident resolved"),
    ("alert_fired", {"name": "OrdersFailing", "priority": "P1"}, "alert fired: OrdersFailing (P1)"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "facts", "said"), TIMELINE, ids=lambda v: str(v)[:30])
def test_a_timeline_line_says_what_it_always_said(line: str, facts: dict[str, Any], said: str):
    assert lines.timeline(line, **facts) == said


def test_every_timeline_line_of_the_template_is_checked_here() -> None:
    source = (TEMPLATES / "_timeline.txt.j2").read_text("utf-8")
    defined = set(re.findall(r"\{% macro (\w+)\(", source))
    assert defined == {line for line, _, _ in TIMELINE}


def test_a_line_missing_a_fact_fails_rather_than_saying_less() -> None:
    with pytest.raises(Exception, match="called"):
        lines.timeline("desk_called")


@pytest.mark.parametrize(
    ("message", "facts", "said"),
    [
        ("EAFIX {priority} security incident: {title}", {"priority": "P0", "title": "Orders"},
         "EAFIX P0 security incident: Orders"),
        ("EAFIX {{ priority }} incident: {{ title }}", {"priority": "P1", "title": "Orders"},
         "EAFIX P1 incident: Orders"),
        ("Desk: {impact} ({title})", {"priority": "P1", "title": "T", "impact": "orders failing"},
         "Desk: orders failing (T)"),
        # A placeholder the message has no value for stays as written, as it always did.
        ("{priority}: {impact}", {"priority": "P2", "title": "T"}, "P2: {impact}"),
        # Braces in the text or in a value are text, never a template.
        ("{priority} {# not a comment", {"priority": "P3"}, "P3 {# not a comment"),
        ("{title}", {"title": "{{ 7 * 7 }} {% if %}"}, "{{ 7 * 7 }} {% if %}"),
    ],
)  # fmt: skip
def test_a_policy_message_fills_its_placeholders(
    message: str, facts: dict[str, str], said: str
) -> None:
    assert lines.policy_message(message, **facts) == said


def test_a_policy_message_renders_sandboxed() -> None:
    with pytest.raises(Exception, match="unsafe|not safely|access"):
        lines.policy_message("{{ title.__class__.__mro__ }}", title="T")


DONE = Proposal(
    "act-1a2b3c4d", "stop-trading", "gui-gateway", "PINC1", "dana", "2026-01-05T10:00:00+00:00",
    "2026-01-05T11:00:00+00:00", status="done", approved_by="erin and femi", via="cli",
)  # fmt: skip
DENIED = Proposal(
    "act-1a2b3c4d", "stop-trading", "gui-gateway", "PINC1", "dana", "2026-01-05T10:00:00+00:00",
    "2026-01-05T11:00:00+00:00", status="denied", approved_by="erin",
    reason="denied by erin via slack",
)  # fmt: skip
ANSWERS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown", {"proposal_id": "act-x"}, "no proposal 'act-x' (unknown or past retention)"),
    ("vanished", {}, "vanished"),
    ("checking", {"approver": "erin", "incident_id": "PINC1"},
     "checking that erin is assigned to incident PINC1; a note on the incident says what "
     "happens"),
    ("approved_already_by_you", {"approver": "erin", "action": "stop-trading"},
     "erin approved stop-trading already; it waits for a second, different approver"),
    ("partly", {"p": P, "count": 1, "required": 2},
     "approved 1 of 2: stop-trading on gui-gateway runs when a second, different person "
     "approves"),
    ("approved", {"p": P}, "approved: stop-trading on gui-gateway"),
    ("may_not_deny", {"who": "erin", "action": "stop-trading"},
     "not allowed: erin may not deny stop-trading"),
    ("denied", {"p": P}, "denied: stop-trading on gui-gateway"),
    ("run_already", {"who": "erin", "first": "act-00000001", "p": P, "minutes": 10},
     "already approved by erin (act-00000001): stop-trading on gui-gateway runs once within 10 "
     "minutes"),
    ("refused", {"why": "not allowed"}, "refused: not allowed; nothing ran"),
    ("done_already", {"p": DONE},
     "already done by erin and femi (via cli, done); nothing runs again"),
    ("closed_already", {"p": DENIED}, "already denied: denied by erin via slack; nothing runs"),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "facts", "said"), ANSWERS, ids=lambda v: str(v)[:30])
def test_an_approval_answer_says_what_it_always_said(
    answer: str, facts: dict[str, Any], said: str
) -> None:
    assert lines.approval_answer(answer, **facts) == said


def test_every_approval_answer_of_the_template_is_checked_here() -> None:
    source = (TEMPLATES / "_approval_answers.txt.j2").read_text("utf-8")
    assert set(re.findall(r"\{% macro (\w+)\(", source)) == {a for a, _, _ in ANSWERS}


@pytest.mark.parametrize(
    ("answer", "facts", "said"),
    [
        ("done_already", {"p": DONE},
         "already done by <@U1> and femi (via cli, done); nothing runs again"),
        ("closed_already", {"p": DENIED},
         "already denied: denied by <@U1> via slack; nothing runs"),
        ("run_already", {"who": "erin", "first": "act-00000001", "p": P, "minutes": 10},
         "already approved by <@U1> (act-00000001): stop-trading on gui-gateway runs once "
         "within 10 minutes"),
    ],
)  # fmt: skip
def test_an_answer_to_slack_names_approvers_as_mentions(
    answer: str, facts: dict[str, Any], said: str
) -> None:
    mention = slack_mentions({"U1": "erin"})
    assert lines.approval_answer(answer, name=mention, **facts) == said


def test_notes_bundle_view_and_page_tell_checks_in_one_order_with_one_vocabulary() -> None:
    entries = [
        {"name": name, "status": status, "summary": "", "files": [], "duration_seconds": 1.0}
        for name, status in [("git", "skipped"), ("http", "ok"), ("host", "timeout"),
                             ("docker", "failed"), ("prometheus", "ok")]
    ]  # fmt: skip
    told = ["docker", "host", "http", "prometheus", "git"]
    page = incident_page_view.evidence({"collectors": entries})
    assert [row["name"] for row in page] == told
    assert [row["label"] for row in page] == [vocabulary.collector_label(n) for n in told]
    bundle = index_view({"collectors": entries}, Path("/nonexistent"))["collectors"]
    assert [c["label"] for c in bundle] == [row["label"] for row in page]
    assert [c["status_label"] for c in bundle] == [row["status_words"] for row in page]
    evidence = [Evidence(e["name"], Status(e["status"]), "") for e in entries]
    note = Voice.of(builtin()).evidence(Classification(Priority.P1, "r", "why"), "T", evidence, "")
    assert [line.split()[2] for line in note.splitlines() if line.startswith("- ")] == told


def test_a_collectors_files_the_shared_store_refused_are_said_to_be_on_their_host() -> None:
    said = lines.bundle_line(
        "files_not_shared", why="AccessDenied", host="resp-1", path="/var/lib/responder/b/r1"
    )
    assert said == (
        " (its files are not in the shared store (AccessDenied): they are on host resp-1 in "
        "/var/lib/responder/b/r1)"
    )
