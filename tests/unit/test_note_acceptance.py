"""A note command counts only in a note a person wrote; alert text in our notes never reads as one.

Issue 24, finding 5: an alert's summary with a `/run resume-trading` line landed verbatim in
our note, and a copy of that note that lost its marker was obeyed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.notes import markers
from tasks.notes.quoting import quote_commands
from tasks.notes.voice import Voice, _samples
from triage.classify import classify
from triage.models import Alert, Classification, ListedAlert, Priority
from triage.note_commands import Approve, RunAction, parse, reads_as_command, refusal
from triage.policy import builtin
from triage.sla import deadlines

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
VOICE = Voice.of(builtin())
OURS = "PBOT01"  # the PagerDuty user our notes are posted as
HOSTILE = (
    "Risk checks failing\n/run resume-trading\n  /status identified all good\n"
    "/approve act-1a2b3c4d\r/eta 5m\u2028/run stop-trading"
)


def hostile_first_note() -> str:
    """Return our first note for an alert whose name, summary and labels carry commands."""
    alert = Alert(
        "firing",
        {"alertname": "/run resume-trading", "service": "risk-manager", "job": "\n/run x y"},
        {"summary": HOSTILE},
        NOW,
        NOW.isoformat(),
        None,
        "",
        "f1",
    )
    classification = classify(alert, VOICE.policy, NOW)
    text = VOICE.first_response(
        f"{alert.name}: {alert.summary}",
        classification,
        deadlines(classification.priority, NOW, VOICE.policy),
        "d-1",
        NOW,
        alerts=[ListedAlert.of(alert, classification)],
    )
    return f"{text}\n{markers.reference('run-1', 'first_note')}"


def commands_obeyed(content: str, author: str) -> list[object]:
    """Return what the receiver acts on in a note: nothing unless a person wrote it."""
    return [] if refusal(content, author, {OURS}) else parse(content)


def middle(note: str) -> str:
    """Return a copy of a note with its first and last lines cut away by hand."""
    return "\n".join(note.splitlines()[1:-1])


@pytest.mark.parametrize(
    ("case", "content", "author", "obeyed"),
    [
        ("a person's /approve is obeyed", "Checked it.\n/approve act-1a2b3c4d", "PDANA",
         [Approve("act-1a2b3c4d")]),
        ("a person's /run is obeyed", "/run restart-service risk-manager", "PDANA",
         [RunAction("restart-service", "risk-manager")]),
        ("a person quoting a [P1] in the middle is still a person",
         "Re the [P1] note:\n/approve act-1a2b3c4d", "PDANA", [Approve("act-1a2b3c4d")]),
        ("our note, with its marker, is ignored", "[P1] x\n/approve act-1a2b3c4d\n[ref r/s]",
         "PDANA", []),
        ("our note without its marker (cut, not flagged trimmed) is ignored",
         "[P1 (PagerDuty: P2)] x\n/approve act-1a2b3c4d", "PDANA", []),
        ("our marker anywhere makes it ours", "/approve act-1a2b3c4d\n[ref r/s] and more",
         "PDANA", []),
        ("an [ACTION] note is ours", "[ACTION] restart-service\n/run resume-trading", "PDANA", []),
        ("a [P2/P3] summary is ours", "  [P2/P3] Next business day\n/run x", "PDANA", []),
        ("a status update is ours", "INCIDENT UPDATE - PX1\n/status identified", "PDANA", []),
        ("an answer to a command is ours", "Note command not applied:\n/eta 5m", "PDANA", []),
        ("a note by our own PagerDuty user is ours, whatever it says",
         "/approve act-1a2b3c4d", OURS, []),
        ("our hostile first note, whole, is ignored", hostile_first_note(), "PDANA", []),
        ("our hostile first note, trimmed by PagerDuty, is ignored",
         hostile_first_note()[:200], "PDANA", []),
        ("our hostile first note with header and marker cut away commands nothing",
         middle(hostile_first_note()), "PDANA", []),
        ("the same cut copy posted by our user commands nothing",
         middle(hostile_first_note()), OURS, []),
    ],
)  # fmt: skip
def test_a_command_counts_only_in_a_note_a_person_wrote(
    case: str, content: str, author: str, obeyed: list[object]
) -> None:
    assert commands_obeyed(content, author) == obeyed, case


def test_the_refusal_says_why_a_note_is_not_a_persons() -> None:
    assert refusal("/run x", OURS, {OURS}) == "written by the responder's own PagerDuty user"
    assert refusal("x [ref a/b]", "P1", set()) == "carries a marker of ours"
    assert refusal("[P0] x", "P1", set()) == "opens as a note of ours"
    assert refusal("/run x", "", {OURS}) is None  # no agent: judged by its content


def test_no_line_of_our_note_reads_as_a_command_though_the_alert_wrote_them() -> None:
    note = hostile_first_note()
    assert [line for line in note.splitlines() if reads_as_command(line)] == []
    assert parse(note) == []
    # The alert's words are still there, quoted, for the person reading the note.
    assert "> /run resume-trading" in note
    assert "  > /status identified all good" in note


def test_evidence_lines_from_logs_and_titles_never_read_as_commands() -> None:
    classification = Classification(Priority.P1, "r", "why")
    note = VOICE.evidence(
        classification, "/run stop-trading", [], "/var/b", error_lines=["/approve act-1a2b3c4d"]
    )
    assert parse(note) == []
    assert "> /approve act-1a2b3c4d" in note


def test_slack_and_email_texts_never_carry_a_command_line() -> None:
    facts = VOICE.incident_facts(
        "/run resume-trading",
        Classification(Priority.P1, "r", "why"),
        deadlines(Priority.P1, NOW, VOICE.policy),
        NOW,
        incident_id="PX",
    )
    assert parse(VOICE.slack_incident(facts, None)) == []
    assert parse(VOICE.slack_note("[P1] x\n/run resume-trading")) == []


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("/run resume-trading", "> /run resume-trading"),
        ("a\n  /eta 5m\nb", "a\n  > /eta 5m\nb"),
        ("x\r\n/run a\r\n", "x\r\n> /run a\r\n"),
        ("see /var/log/app.log\n/var/log/x is full", "see /var/log/app.log\n/var/log/x is full"),
        ("/deploy now", "> /deploy now"),  # not ours today; a command tomorrow
        ("> /run resume-trading", "> /run resume-trading"),  # quoting twice changes nothing
    ],
)  # fmt: skip
def test_quoting_puts_a_mark_before_each_line_that_reads_as_a_command(
    text: str, quoted: str
) -> None:
    assert quote_commands(text) == quoted
    assert [line for line in quoted.splitlines() if reads_as_command(line)] == []


# management_cto: a line appended to the management note (which opens as ours), not a note.
NOT_NOTES = ("email_", "report.", "slack_", "bundle_index", "management_cto")


def test_every_note_we_post_opens_as_ours_so_a_copy_without_its_marker_is_known() -> None:
    seen = set()
    for name, render in _samples(VOICE):
        if name.startswith(NOT_NOTES):
            continue
        text = render()
        assert isinstance(text, str)
        seen.add(name)
        assert refusal(text, "PDANA", set()) == "opens as a note of ours", (name, text[:80])
    assert {"first_response.txt.j2", "evidence.txt.j2", "command_answer.txt.j2"} <= seen


@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", "\u2060", "\x00"])
def test_a_command_behind_an_invisible_character_is_quoted_too(invisible: str) -> None:
    # An editor or a sanitiser may drop the invisible character and leave a bare command.
    quoted = quote_commands(f"x\n{invisible}/run resume-trading")
    assert quoted.splitlines()[1].startswith("> ")
    assert parse(quoted.replace(invisible, "")) == []
