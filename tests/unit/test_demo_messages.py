"""What `make demo` prints of Slack and e-mail: read from files the real outbox writers wrote."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from demo.messages import EmailOutbox, SlackOutbox, told_email, trimmed, without_marker
from tasks.gateways.email import OutboxEmail
from tasks.gateways.email_compose import Mail, build_message
from tasks.gateways.slack import OutboxGateway
from tasks.gateways.slack_blocks import build


def test_the_slack_thread_its_replies_its_update_and_a_channel_post_as_they_were_written(
    tmp_path: Path,
) -> None:
    gateway = OutboxGateway(tmp_path / "slack")
    gateway.post(build("OLD/parent", "#eafix-incidents", "*an earlier run*"))
    watcher = SlackOutbox(tmp_path / "slack")  # what was there before is not this run's
    assert watcher() == []
    parent_text = "*[P0] RiskManagerDown*: Risk manager is down\n:rotating_light: Open\nWhy P0: x"
    parent = gateway.post(build("PINC1/parent", "#eafix-incidents", parent_text))
    body = "\n".join(f"- check {n}" for n in range(10))
    gateway.post(build("PINC1/note:e", "#eafix-incidents", f"evidence: 2 of 5\n{body}"), parent.ts)
    gateway.post(build("PINC1/trading", "#trading-operations", "P0 during market hours"))
    resolved = parent_text.replace(":rotating_light: Open", ":white_check_mark: Resolved")
    gateway.update(parent.channel, parent.ts, build("PINC1/parent", "#eafix-incidents", resolved))
    gateway.update(parent.channel, parent.ts, build("PINC1/parent", "#eafix-incidents", resolved))

    lines = watcher()

    assert [line.text for line in lines] == [
        "Slack #eafix-incidents (PINC1) thread: [P0] RiskManagerDown: Risk manager is down",
        "Slack #eafix-incidents (PINC1) reply: evidence: 2 of 5",
        "Slack #trading-operations (PINC1) post: P0 during market hours",
        "Slack #eafix-incidents (PINC1) updated: [P0] RiskManagerDown: Risk manager is down",
        "Slack #eafix-incidents (PINC1) updated: [P0] RiskManagerDown: Risk manager is down",
    ]
    assert lines[0].detail == (":rotating_light: Open", "Why P0: x")
    # A long reply: its first lines and how many more; never the internal marker.
    assert lines[1].detail == (
        "- check 0",
        "- check 1",
        "- check 2",
        "- check 3",
        "... (6 more lines)",
    )
    assert not any("[ref slack:" in row for line in lines for row in (line.text, *line.detail))
    # An update says what changed: the parent's status line.
    assert lines[3].detail == (":white_check_mark: Resolved",)
    assert lines[4].detail == ("(no change)",)
    assert watcher() == []  # each told once


def test_a_half_written_slack_call_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "slack"
    folder.mkdir()
    (folder / "20261129T000000.000000Z-chat.postMessage-1.part").write_text("{")
    assert SlackOutbox(tmp_path / "nothing-yet")() == []
    assert SlackOutbox(folder)() == []


def test_the_marker_goes_and_long_lines_are_cut() -> None:
    assert without_marker("hello\nworld\n[ref slack:PINC1/parent]") == "hello\nworld"
    assert (
        without_marker("a [ref slack:x] in the middle stays")
        == "a [ref slack:x] in the middle stays"
    )
    assert trimmed("x" * 200, 20) == "x" * 17 + "..."


def test_an_email_the_outbox_wrote_its_recipients_subject_and_first_lines(tmp_path: Path) -> None:
    outbox = OutboxEmail(tmp_path)
    old = Mail("desk_alert", "OLD", ("a@eafix.example",), "old", "old", "<p>old</p>")
    outbox.send(build_message(old, "r@eafix.example", datetime.now(UTC)), lambda: None)
    watcher = EmailOutbox(tmp_path / "email")
    assert watcher() == []
    text = "\n".join(
        ["EAFIX P0 incident during market hours", "", *(f"line {n}" for n in range(8))]
    )
    mail = Mail(
        "desk_alert",
        "run-1",
        ("trading-desk@eafix.example", "ops@eafix.example"),
        "[EAFIX] P0 RiskManagerDown: Risk manager is down",
        text,
        "<p>html only</p>",
        "P0",
        "PINC1",
    )
    outbox.send(
        build_message(mail, "eafix-responder@eafix.example", datetime.now(UTC)), lambda: None
    )

    [line] = watcher()

    assert line.text == (
        "e-mail to trading-desk@eafix.example, ops@eafix.example: "
        "[EAFIX] P0 RiskManagerDown: Risk manager is down"
    )
    assert line.detail == (
        "EAFIX P0 incident during market hours",
        "line 0",
        "line 1",
        "line 2",
        "... (5 more lines)",  # blank lines are not counted
    )
    assert watcher() == []


def test_an_email_without_a_text_part_still_says_to_whom_and_what() -> None:
    raw = (
        b"To: desk@eafix.example\r\nSubject: [EAFIX]\r\n  folded\r\n"
        b"Content-Type: text/html\r\n\r\n<p>x</p>\r\n"
    )
    line = told_email(raw)
    assert line.text == "e-mail to desk@eafix.example: [EAFIX] folded"
    assert line.detail == ()
