"""What the responder tells people, as `make demo` prints it: the Slack messages and the e-mails.

The demo world sets neither a Slack token nor an SMTP host, so the responder writes each Slack
Web API call it would make to `<outbox>/slack/*.json` (tasks/gateways/slack.py's OutboxGateway)
and each e-mail, as it would be sent, to `<outbox>/email/<day>/*.eml` (tasks/gateways/email.py's
OutboxEmail). These watchers read what is new there, once each file is whole (both writers
write then rename), and say it in a line an engineer reads at a glance: the channel, whether
it opens a thread, replies in one or updates a message, and its text; an e-mail's recipients,
subject and the first lines of its text part.

Files that were there when a watcher was made are not told: only this run's messages count.
"""

from __future__ import annotations

import json
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from demo.story import Line
from tasks.gateways.slack_blocks import marker_of

DETAIL_LINES = 4  # lines of a message shown under its headline; the rest is counted
LINE_WIDTH = 140  # characters of one shown line


def trimmed(text: str, width: int = LINE_WIDTH) -> str:
    """Return `text` cut to `width` characters, an ellipsis saying it was cut."""
    text = text.rstrip()
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def without_marker(text: str) -> str:
    """Return a Slack fallback text without the `[ref slack:...]` marker that ends it."""
    if marker_of(text) is None:
        return text.rstrip()
    return text.rstrip().rpartition("[ref slack:")[0].rstrip()


def shown_lines(lines: list[str], limit: int = DETAIL_LINES) -> tuple[str, ...]:
    """Return up to `limit` non-blank lines, trimmed, and how many more there were."""
    kept = [trimmed(line) for line in lines if line.strip()]
    if len(kept) <= limit:
        return tuple(kept)
    more = len(kept) - limit
    return (*kept[:limit], f"... ({more} more line{'s' if more > 1 else ''})")


class SlackOutbox:
    """Tell each Slack call the outbox holds that was not there when this watcher was made."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.texts: dict[tuple[str, str], str] = {}  # (channel, ts) -> its text: for updates
        self.seen: set[str] = {p.name for p in self._files()}

    def _files(self) -> list[Path]:
        # The writer names files by time (UTC, microseconds) first: sorted is written order.
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.json"))

    def __call__(self) -> list[Line]:
        lines = []
        for path in self._files():
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            try:
                call = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                lines.append(Line(f"Slack: could not read {path.name}: {exc}"))
                continue
            lines.append(self.told(call))
        return lines

    def told(self, call: dict[str, Any]) -> Line:
        """Return the Line of one outbox call (chat.postMessage, chat.update, ...)."""
        method = str(call.get("method", "?"))
        body = call.get("json") or {}
        channel = str(body.get("channel", "?"))
        key = marker_of(str(body.get("text", ""))) or ""
        # The marker names the incident (`PINC0001/parent`): which thread, when several are open.
        where = f"{channel} ({key.partition('/')[0]})" if "/" in key else channel
        text = without_marker(str(body.get("text", "")))
        # As Slack shows it: the fallback keeps mrkdwn's escapes of <, > and &.
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        rows = text.splitlines() or [""]
        ts = str(body.get("ts", ""))
        if method == "chat.postMessage":
            self.texts[(channel, ts)] = text
            if body.get("thread_ts"):
                kind = "reply"
            elif key.endswith("/parent"):
                kind = "thread"  # the incident's parent: its replies follow under it
            else:
                kind = "post"
            return Line(f"Slack {where} {kind}: {trimmed(rows[0])}", shown_lines(rows[1:]))
        if method == "chat.update":
            before = self.texts.get((channel, ts), "")
            self.texts[(channel, ts)] = text
            old = set(before.splitlines())
            # What the update changed (the parent's status line), not the whole message again.
            changed = [row for row in rows if row not in old] if before else rows[1:]
            detail = shown_lines(changed) if changed or not before else ("(no change)",)
            return Line(f"Slack {where} updated: {trimmed(rows[0])}", detail)
        if method == "chat.postEphemeral":
            user = body.get("user", "?")
            return Line(f"Slack {channel} to {user} only: {trimmed(rows[0])}")
        return Line(f"Slack {method} {channel}: {trimmed(rows[0])}")


class EmailOutbox:
    """Tell each e-mail the outbox holds (`<day>/*.eml`) that was not there when made."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: set[str] = {str(p) for p in self._files()}

    def _files(self) -> list[Path]:
        # Days, then `<unix time>-<id>.eml` within a day: sorted is written order.
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*/*.eml"))

    def __call__(self) -> list[Line]:
        lines = []
        for path in self._files():
            if str(path) in self.seen:
                continue
            self.seen.add(str(path))
            try:
                lines.append(told_email(path.read_bytes()))
            except (OSError, ValueError) as exc:
                lines.append(Line(f"e-mail: could not read {path.name}: {exc}"))
        return lines


def told_email(raw: bytes) -> Line:
    """Return the Line of one e-mail: to, subject, the first lines of its text part."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # policy.default parses into EmailMessage
    part = message.get_body(preferencelist=("plain",))
    text = part.get_content() if part is not None else ""
    subject = " ".join(str(message.get("Subject", "")).split())
    return Line(
        f"e-mail to {message.get('To', '?')}: {subject}",
        shown_lines(str(text).splitlines()),
    )


def watchers(outbox: Path) -> list[SlackOutbox | EmailOutbox]:
    """Return the watchers of the Slack and e-mail outboxes under `outbox`."""
    return [SlackOutbox(outbox / "slack"), EmailOutbox(outbox / "email")]
