"""Every text the responder writes to PagerDuty: short, first line first, never cut mid-line.

May import: `triage`, `collectors.contract`. Pure: no Redis, no network, no clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from collectors.contract import Evidence, Status
from triage.classify import most_severe
from triage.models import Alert, Classification, Incident
from triage.policy import Policy, format_duration
from triage.sla import Deadlines, next_market_change

NOTE_LIMIT = 24_000  # PagerDuty documents no limit; stay well below anything plausible.
# A trimmed webhook copy keeps at least this much of the note, far below any plausible trim.
OPENING_CHARS = 80
# Every note we post ends with this reference to (pipeline run, step).
_REFERENCE = re.compile(r"\[ref [^\]\s/]+/[^\]\s]+\]\s*$")
_SHOWN_LABELS = ("service", "severity", "category", "scope", "job", "instance")
_STATUS_ORDER = {Status.FAILED: 0, Status.TIMEOUT: 1, Status.OK: 2, Status.SKIPPED: 3}


def reference(run_id: str, step: str) -> str:
    """Return the marker that ends a note we post for (run, step)."""
    return f"[ref {run_id}/{step}]"


def is_ours(content: str) -> bool:
    """Return True when a note's content ends with our reference marker."""
    return _REFERENCE.search(content) is not None


def opening(content: str) -> str | None:
    """Return what identifies a note by its start, or None when it is too short to tell.

    PagerDuty trims a long note's content in its webhook, which cuts our marker off the end;
    the start survives, so we remember it before posting and recognise the trimmed copy by it.
    """
    if len(content) < OPENING_CHARS:
        return None
    return "opening:" + hashlib.sha256(content[:OPENING_CHARS].encode()).hexdigest()


def first_response_note(
    headline: str,
    subjects: Sequence[str],
    group: Classification,
    due: Deadlines,
    policy: Policy,
    delivery_id: str,
    now: datetime,
) -> str:
    """Render the note posted at once: priority and why, market state, deadlines, what fired."""
    lines = [
        f"[{group.priority}] {headline}",
        f"Why {group.priority}: {group.rule} - {group.reason}",
        market_line(now, policy),
        "SLA: " + " | ".join(_deadline_parts(due, policy)),
        "",
        *subjects,
        "",
    ]
    if policy.runbook_url:
        lines.append(f"Runbook: {policy.runbook_url}")
    lines.append(f"Collecting evidence now; a second note follows. (delivery {delivery_id})")
    return clip("\n".join(lines))


def alert_headline(alert: Alert) -> str:
    """Return an alert's name and summary, as a note's first line names it."""
    return f"{alert.name}: {alert.summary}" if alert.summary != alert.name else alert.name


def alert_lines(alerts: Sequence[tuple[Alert, Classification]], truncated: int = 0) -> list[str]:
    """List firing alerts with their priority, key labels and summary."""
    lines = [f"Alerts ({len(alerts)} firing):"]
    for alert, classification in alerts:
        labels = " ".join(f"{k}={alert.labels[k]}" for k in _SHOWN_LABELS if k in alert.labels)
        lines.append(f"- {alert.name} [{classification.priority}] {labels}".rstrip())
        if alert.summary != alert.name:
            lines.append(f"  {alert.summary}")
    if truncated:
        lines.append(f"+ {truncated} more alerts not sent: Alertmanager truncated the group")
    return lines


def joined_alerts_note(
    alerts: Sequence[tuple[Alert, Classification]],
    delivery_ids: Sequence[str],
    refresh: timedelta,
    now: datetime,
    shown: int = 20,
) -> str:
    """Render the one note that lists the alerts which joined an incident's run meanwhile."""
    worst = (most_severe(c for _, c in alerts) or alerts[0][1]).priority
    names = ", ".join(dict.fromkeys(a.name for a, _ in alerts))
    lines = [
        f"[{worst}] {len(alerts)} more alert{'s' if len(alerts) != 1 else ''} joined this "
        f"incident: {names}"[:300],
        f"Evidence is collected again at most every {format_duration(refresh)} per incident, "
        "sooner if the priority rises.",
        "",
        *alert_lines(alerts[:shown]),
    ]
    if len(alerts) > shown:
        lines.append(f"+ {len(alerts) - shown} more (responder deliveries lists them)")
    first, last = delivery_ids[0], delivery_ids[-1]
    span = first if first == last else f"{first} .. {last}"
    lines += ["", f"({len(delivery_ids)} deliveries: {span}; as of {_clock(now)})"]
    return clip("\n".join(lines))


def incident_lines(incident: Incident) -> list[str]:
    """Describe a PagerDuty incident that started the response."""
    facts = [f"urgency {incident.urgency}" if incident.urgency else ""]
    facts += [f"service {incident.service}" if incident.service else ""]
    facts += [f"PagerDuty priority {incident.priority}" if incident.priority else ""]
    detail = ", ".join(f for f in facts if f)
    return [
        f"PagerDuty incident {incident.id}: {incident.title}" + (f" ({detail})" if detail else "")
    ]


def resolved_note(alerts: Sequence[Alert], delivery_id: str) -> str:
    """Render the note for alerts Alertmanager reports resolved; nothing is diagnosed."""
    names = ", ".join(dict.fromkeys(a.name for a in alerts))
    lines = [f"[RESOLVED] {names}: resolved in Alertmanager", ""]
    for alert in alerts:
        ended = alert.ends_at or alert.starts_at
        lasted = format_duration(ended - alert.starts_at) if ended > alert.starts_at else "?"
        lines.append(
            f"- {alert.name}: fired {_clock(alert.starts_at)}, resolved {_clock(ended)} "
            f"after {lasted}"
        )
    lines += ["", f"No diagnostics run for a resolution. (delivery {delivery_id})"]
    return clip("\n".join(lines))


def evidence_note(
    group: Classification,
    title: str,
    evidence: Sequence[Evidence],
    bundle_location: str,
    error_lines: Sequence[str] = (),
) -> str:
    """Render the evidence note: what failed first, what is healthy, top errors, the bundle."""
    ran = [e for e in evidence if e.status is not Status.SKIPPED]
    problems = [e for e in ran if e.status is not Status.OK]
    verdict = (
        f"{len(problems)} of {len(ran)} checks found problems"
        if problems
        else f"all {len(ran)} checks passed"
    )
    if skipped := len(evidence) - len(ran):
        verdict += f" ({skipped} skipped)"
    lines = [f"[{group.priority}] {title} evidence: {verdict}", ""]
    for item in sorted(evidence, key=lambda e: _STATUS_ORDER[e.status]):
        took = _took(item.duration_seconds)
        lines.append(f"- {item.status.value.upper()} {item.collector} ({took}): {item.summary}")
    if error_lines:
        lines += ["", "Top error lines:", *(f"  {line[:200]}" for line in error_lines)]
    lines += ["", f"Bundle: {bundle_location}"]
    return clip("\n".join(lines))


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


def market_line(now: datetime, policy: Policy) -> str:
    """Say whether the market is trading now and when that changes, in market time."""
    is_open, change = next_market_change(now, policy.market_hours)
    local = change.astimezone(policy.timezone)
    when = f"{local:%a %H:%M} {policy.timezone.key.split('/')[-1].replace('_', ' ')} time"
    return f"Market: OPEN (closes {when})" if is_open else f"Market: closed (opens {when})"


def _deadline_parts(due: Deadlines, policy: Policy) -> list[str]:
    targets = policy.sla[due.priority]
    return [
        f"acknowledge by {_clock(due.acknowledge)} ({targets.acknowledge})",
        f"respond by {_clock(due.respond)} ({targets.respond})",
        f"resolve by {_clock(due.resolve)} ({targets.resolve})",
        f"updates every {targets.update_every}",
    ]


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _clock(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M %Z}".strip()
