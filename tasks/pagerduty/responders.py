"""Responders requested on a PagerDuty incident, once: the security team, the trading desk's
call, management, the CTO. One way to ask, record it and say so in the timeline; the caller
words the note from what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tasks.gateways.pagerduty import IncidentRef, PagerDutyUnavailable
from tasks.retries import decide
from tasks.runtime import Runtime


@dataclass(frozen=True)
class ResponderRequest:
    """Whom to ask (PagerDuty's targets), as whom, and the message they read."""

    requester_id: str
    targets: Sequence[tuple[str, str]]
    message: str


@dataclass(frozen=True)
class Requested:
    """What came of a request: asked now, asked before, or refused for good (and why)."""

    how: Literal["requested", "already", "refused"]
    why: str = ""  # PagerDuty's answer to a refused request


def describe_targets(targets: Sequence[tuple[str, str]]) -> str:
    """Name responder-request targets as a note does: `PSEC789 (escalation policy)`."""
    return ", ".join(
        f"{target_id} ({kind.removesuffix('_reference').replace('_', ' ')})"
        for target_id, kind in targets
    )


def request_responders_once(
    rt: Runtime,
    incident: IncidentRef,
    effect: str,
    request: ResponderRequest,
    timeline: str,
    *,
    detail: str = "",
) -> Requested:
    """Ask for responders on `incident` once (once-record `effect`, kept per incident), then
    put `timeline` in the incident's timeline.

    PagerDuty refusing for good (400, 402 without coordinated responding, 404) is returned,
    for a note that asks for it by hand; a failure worth retrying (429, 5xx, the network) is
    raised, and the task tries again. The once-record is written after PagerDuty took it:
    a worker that dies in between asks again, which PagerDuty shows as one more request.
    """
    scope = str(incident.id)
    if rt.deliveries.effect_done(scope, effect):
        return Requested("already")
    try:
        rt.pagerduty.request_responders(
            incident, request.requester_id, request.targets, request.message
        )
    except PagerDutyUnavailable as exc:
        if decide(exc.status, exc.headers, 1).retry:
            raise
        return Requested("refused", str(exc))
    rt.deliveries.mark_effect(scope, effect, detail)
    if incident.id:
        rt.incidents.log(incident.id, timeline, "responder")
    return Requested("requested")
