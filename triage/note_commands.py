"""Commands people type into a PagerDuty incident note: `/status identified <text>`, `/eta 30m`.

A command is a line of its own that starts with `/name`; the other lines of the note are
ordinary text. Commands count only in a note a person wrote (`refusal` says when not): never
in one of ours coming back, whatever was cut from it, nor in one our own PagerDuty user posted.
Each command is parsed by the function registered under its name in `PARSERS`, so a new one
(`/approve <id>`) is one function and one entry. A line naming no command of ours is `Unknown`
(ignored); one of ours written wrongly is `Malformed`, with what was expected, so that the
person can be told.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta

# The runbook's status words a person may set; "Resolved" comes from PagerDuty's resolve.
SETTABLE_STATUS = ("Investigating", "Identified", "Monitoring")
# Matched against a stripped line, and possessive throughout: no pattern here backtracks over
# what a person (or an alert quoted in a note) typed, so a 32 K line costs microseconds.
_LINE = re.compile(r"/([A-Za-z][\w-]*+)(?:\s++(.*+))?", re.S)
_DURATION = re.compile(r"(?:(\d++)\s*+h)?\s*+(?:(\d++)\s*+m)?")
_NO_ETA = ("unknown", "none", "-")
_PROPOSAL = re.compile(r"act-[0-9a-fA-F]{8}")
# What every note we post carries, or how it begins (first_response, evidence, SLA and action
# notes, status updates, answers to commands); tests/unit/test_note_acceptance.py renders every
# note template and holds each to one of these openings.
_OUR_MARKER = re.compile(r"\[ref [^\]\s]++\]")
_OUR_OPENING = re.compile(
    r"\s*+(?:\[(?:P[0-3][\]/ ]|ACTION\]|RESOLVED\])|INCIDENT UPDATE - |Note commands? not applied)"
)
_NAME_LIMIT = 64  # an action or service name longer than this is no name of ours
HELP = (
    "/status investigating|identified|monitoring <what>, /eta 30m (or unknown), "
    "/approve <proposal id>, /run <action> [<catalog service>]"
)


@dataclass(frozen=True)
class SetStatus:
    """`/status <word> <text>`: the incident is Investigating, Identified or Monitoring."""

    word: str
    text: str = ""


@dataclass(frozen=True)
class SetEta:
    """`/eta 30m`: resolution expected this long after the note; None: unknown again."""

    within: timedelta | None


@dataclass(frozen=True)
class Approve:
    """`/approve act-1a2b3c4d`: a person approves a proposed runbook action."""

    proposal_id: str


@dataclass(frozen=True)
class RunAction:
    """`/run restart-service risk-manager`: a person proposes and approves an action at once.

    The names are as typed: only the policy's catalogs say whether they name anything.
    """

    action: str
    target: str = ""


@dataclass(frozen=True)
class Malformed:
    """A command of ours written wrongly: the line and what was expected."""

    line: str
    problem: str


@dataclass(frozen=True)
class Unknown:
    """A line that looks like a command but names none of ours."""

    name: str


Command = SetStatus | SetEta | Approve | RunAction
Parsed = SetStatus | SetEta | Approve | RunAction | Malformed | Unknown


def parse(content: str) -> list[Parsed]:
    """Return the commands of a note, in order; lines that are no command are left out."""
    found: list[Parsed] = []
    for line in content.splitlines():
        match = _LINE.fullmatch(line.strip())
        if match is None:
            continue
        name, args = match.group(1).lower(), match.group(2) or ""
        parser = PARSERS.get(name)
        found.append(parser(line.strip(), args) if parser else Unknown(name))
    return found


def reads_as_command(line: str) -> bool:
    """Return True when `parse` would take this line for a command (ours or not)."""
    return _LINE.fullmatch(line.strip()) is not None


def refusal(content: str, author: str, own_authors: Collection[str]) -> str | None:
    """Return why the commands of a note are not obeyed; None when a person wrote it.

    The rule, in order: a note by the responder's own PagerDuty user is ours; a note that
    carries our reference marker anywhere, or opens as our notes open, is a copy of one of
    ours (trimmed by PagerDuty or cut by hand: the end may be gone, the start or the marker
    is not). Alert text inside our notes is quoted so that no line of it reads as a command
    (tasks/notes/quoting.py): a copy that lost both ends commands nothing either.
    """
    if author and author in own_authors:
        return "written by the responder's own PagerDuty user"
    if _OUR_MARKER.search(content):
        return "carries a marker of ours"
    if _OUR_OPENING.match(content):
        return "opens as a note of ours"
    return None


def _status(line: str, args: str) -> Parsed:
    word, _, text = args.partition(" ")
    chosen = next((s for s in SETTABLE_STATUS if s.lower() == word.lower()), None)
    if chosen is not None:
        return SetStatus(chosen, text.strip())
    if word.lower() == "resolved":
        return Malformed(line, "resolve the incident in PagerDuty; its status then says Resolved")
    wanted = ", ".join(s.lower() for s in SETTABLE_STATUS)
    return Malformed(line, f"expected one of {wanted}, then what you found or did")


def _eta(line: str, args: str) -> Parsed:
    text = args.strip().lower()
    if text in _NO_ETA:
        return SetEta(None)
    match = _DURATION.fullmatch(text)
    counts = (match.group(1) or "", match.group(2) or "") if match is not None else ("", "")
    # More digits than any ETA has is a typo (and int() refuses past 4300 of them).
    if text and any(counts) and max(map(len, counts)) <= 6:
        hours, minutes = int(counts[0] or 0), int(counts[1] or 0)
        if 0 < hours * 60 + minutes <= 14 * 24 * 60:  # beyond two weeks is a typo, not an ETA
            return SetEta(timedelta(hours=hours, minutes=minutes))
    return Malformed(line, "expected how long until resolved, such as 30m, 2h or 1h30m, or unknown")


def _approve(line: str, args: str) -> Parsed:
    if _PROPOSAL.fullmatch(args.strip()):
        return Approve(args.strip().lower())
    return Malformed(line, "expected the id of a proposal, such as act-1a2b3c4d")


def _run(line: str, args: str) -> Parsed:
    words = args.split()
    if 1 <= len(words) <= 2 and all(len(w) <= _NAME_LIMIT for w in words):
        return RunAction(words[0], words[1] if len(words) == 2 else "")
    return Malformed(
        line,
        "expected an action and, for some, a catalog service: /run restart-service risk-manager",
    )


PARSERS: dict[str, Callable[[str, str], Parsed]] = {
    "status": _status,
    "eta": _eta,
    "approve": _approve,
    "run": _run,
}
