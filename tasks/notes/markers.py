"""How a note of ours is known again and kept short: its reference marker, its opening, cuts.

May import nothing of ours: the receiver reads it to recognise our notes' webhooks.
"""

from __future__ import annotations

import hashlib
import re

NOTE_LIMIT = 24_000  # PagerDuty documents no limit; stay well below anything plausible.
# A trimmed webhook copy keeps at least this much of the note, far below any plausible trim.
OPENING_CHARS = 80
# Every note we post ends with this reference to (pipeline run, step). Matched whole from the
# last `[ref ` on: searched for anywhere, `[ref a/` repeated cost time quadratic in the note.
_REFERENCE = re.compile(r"\[ref [^\]\s/]++/[^\]\s]++\]")


def reference(run_id: str, step: str) -> str:
    """Return the marker that ends a note we post for (run, step)."""
    return f"[ref {run_id}/{step}]"


def is_ours(content: str) -> bool:
    """Return True when a note's content ends with our reference marker."""
    tail = content.rstrip()
    # The marker holds no space, so no `[ref ` after its own start: it is the last one.
    start = tail.rfind("[ref ")
    return start >= 0 and _REFERENCE.fullmatch(tail, start) is not None


def opening(content: str) -> str | None:
    """Return what identifies a note by its start, or None when it is too short to tell.

    PagerDuty trims a long note's content in its webhook, which cuts our marker off the end;
    the start survives, so we remember it before posting and recognise the trimmed copy by it.
    """
    if len(content) < OPENING_CHARS:
        return None
    return "opening:" + hashlib.sha256(content[:OPENING_CHARS].encode()).hexdigest()


def clip(text: str, limit: int = NOTE_LIMIT) -> str:
    """Cut text to at most `limit` characters at a line boundary, saying that it was cut."""
    if len(text) <= limit:
        return text
    marker = "\n[... cut; the full text is in the bundle]"
    room = limit - len(marker)
    cut = text.rfind("\n", 0, room + 1)
    if cut <= 0:
        cut = room  # one enormous line: cut inside it rather than exceed the limit
    return text[:cut] + marker
