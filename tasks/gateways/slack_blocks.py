"""Slack messages as data: Block Kit blocks and their plain-text fallback, the marker a retry
finds its message by, and the Approve / Deny buttons.

Pure: no network, clock or Redis; the texts come rendered from the note templates (Voice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SECTION_LIMIT = 3000  # Block Kit: a section's text holds at most 3000 characters
BLOCK_LIMIT = 50  # Block Kit: a message holds at most 50 blocks
TEXT_LIMIT = 4000  # Slack cuts a message's `text` longer than this (its documented advice)
APPROVE, DENY = "approve", "deny"  # the buttons' action_id
PROPOSAL_BLOCK = "proposal:"  # block_id prefix of a proposal's buttons
_MARKER = re.compile(r"\[ref slack:([^\]\s]++)\]")


@dataclass(frozen=True)
class SlackMessage:
    """One message: where it goes, its fallback text (ending with its marker) and its blocks."""

    key: str  # what the once-record and the marker name it by
    channel: str  # the policy's channel ("#name" or an id)
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def marker(key: str) -> str:
    """Return the marker that ends a message's fallback text, as a retry looks for it."""
    return f"[ref slack:{key}]"


def marker_of(text: str) -> str | None:
    """Return the key of the marker that ends `text`, or None when it has none."""
    # Matched from the last `[ref ` only (the marker holds no space): linear in the text.
    tail = (text or "").rstrip()
    start = tail.rfind("[ref ")
    found = _MARKER.fullmatch(tail, start) if start >= 0 else None
    return found.group(1) if found else None


def plain(mrkdwn: str) -> str:
    """Return a plain-text fallback of mrkdwn: links as their label, no bold.

    The escapes stay: Slack reads a message's `text` as mrkdwn too (and shows `&lt;` as
    `<`), so an alert's `<!channel>` or `<https://...|label>` must stay escaped there.
    """
    # A link's label holds no `<` (Slack escapes it): with `[^<>]` a text of many `<a|` and no
    # `>` is read once, not once from each `<`.
    text = re.sub(r"<([^|<>]++)\|([^<>]++)>", r"\2 (\1)", mrkdwn)
    return re.sub(r"(?<![\w*])\*([^*\n]++)\*(?![\w*])", r"\1", text)


def sections(mrkdwn: str) -> list[dict[str, Any]]:
    """Return mrkdwn as section blocks, each under Slack's limit, cut at line boundaries."""
    blocks, chunk = [], ""
    for line in mrkdwn.splitlines():
        while len(line) > SECTION_LIMIT:  # one enormous line: cut inside it
            if chunk:
                blocks.append(chunk)
                chunk = ""
            blocks.append(line[:SECTION_LIMIT])
            line = line[SECTION_LIMIT:]
        if chunk and len(chunk) + 1 + len(line) > SECTION_LIMIT:
            blocks.append(chunk)
            chunk = line
        else:
            chunk = f"{chunk}\n{line}" if chunk else line
    if chunk.strip():
        blocks.append(chunk)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": b}} for b in blocks]


def build(
    key: str,
    channel: str,
    mrkdwn: str,
    *,
    context: str = "",
    actions: list[dict[str, Any]] | None = None,
) -> SlackMessage:
    """Return a message of mrkdwn (plus a context line and buttons) and its plain fallback."""
    blocks = sections(mrkdwn)
    room = BLOCK_LIMIT - (1 if context else 0) - (1 if actions else 0)
    if len(blocks) > room:
        blocks = blocks[: room - 1] + sections("_... cut; the full text is in the bundle_")
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    if actions:
        blocks.extend(actions)
    ref = marker(key)
    fallback = plain(mrkdwn)
    if len(fallback) + len(ref) + 1 > TEXT_LIMIT:
        fallback = fallback[: TEXT_LIMIT - len(ref) - 5] + " ..."
    return SlackMessage(key, channel, f"{fallback}\n{ref}", blocks)


def proposal_buttons(proposal_id: str, action: str, target: str) -> list[dict[str, Any]]:
    """Return the Approve / Deny buttons of a proposal (Approve asks to confirm first)."""
    return [
        {
            "type": "actions",
            "block_id": f"{PROPOSAL_BLOCK}{proposal_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": proposal_id,
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Run this action?"},
                        "text": {"type": "mrkdwn", "text": f"`{action}` on `{target}`"},
                        "confirm": {"type": "plain_text", "text": "Approve"},
                        "deny": {"type": "plain_text", "text": "Cancel"},
                    },
                },
                {
                    "type": "button",
                    "action_id": DENY,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Deny"},
                    "value": proposal_id,
                },
            ],
        }
    ]
