"""Alert text in what we write is quoted, so that no line of a note ever reads as a command.

An alert's summary, a log line or an incident title can hold a line such as
`/run resume-trading`. Our notes are never obeyed (`note_commands.refusal`), but a copy of one
that lost its opening and its marker would be: so every such line is quoted with `> ` where it
is written, and the words stay visible as what the alert said.
"""

from __future__ import annotations

import unicodedata

from triage.note_commands import reads_as_command

QUOTE = "> "


def _visible(line: str) -> str:
    """Return `line` without format and control characters (zero-width spaces, BOMs, NULs):
    an editor or a sanitiser may drop them and leave a bare command behind."""
    return "".join(c for c in line if unicodedata.category(c) not in ("Cf", "Cc") or c in "\t")


def quote_commands(text: str) -> str:
    """Return text with `> ` before every line that the note-command parser would read."""
    if "/" not in text:
        return text
    quoted = []
    for line in text.splitlines(keepends=True):
        if reads_as_command(line) or reads_as_command(_visible(line)):
            body = line.lstrip()
            line = line[: len(line) - len(body)] + QUOTE + body
        quoted.append(line)
    return "".join(quoted)
