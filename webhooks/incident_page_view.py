"""What the incident page shows, in words: pure functions from the stored records, the bundle's
manifest, the policy and `now` to plain dicts the templates and the JSON poll render.

No Redis, no files, no clock here: `webhooks/incident_page.py` reads, this module says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tasks.notes.vocabulary import collector_label, status_rank, status_words
from triage.correlation_replay import ReplayedIncident, symptoms, tie_text
from triage.policy import Policy
from triage.sla import next_market_change

# Human labels instead of the record's keys.
DEADLINE_LABELS = {
    "acknowledge": "Acknowledge",
    "respond": "First response",
    "resolve": "Resolve",
    "next_update": "Next status update",
    "notify_management": "Tell management",
    "lower_urgency": "Urgency lowered (after hours)",
    "restore_urgency": "Urgency high again",
    "rejudge": "Judged again (the market opens or closes)",
    "stop_again": "Trading checked again (stopped while the cause fires)",
}
# Which moment of the incident record meets a deadline.
MET_BY = {"acknowledge": "acknowledged", "respond": "acknowledged", "resolve": "resolved"}
INCIDENT_STATUS = {
    "triggered": "Triggered, not acknowledged",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
}
PROPOSAL_WORDS = {
    "proposed": "Waiting for approval",
    "approved": "Approved, running",
    "done": "Done",
    "failed": "Failed",
    "dry-run": "Dry run (nothing ran)",
    "unknown": "Outcome unknown: check by hand",
    "by hand": "Approved: a person runs it",
    "denied": "Denied",
    "refused": "Refused",
}
MAX_TIMELINE = 500  # a storm's incident history is long; the page shows the latest entries


def in_words(seconds: float) -> str:
    """Say how far a moment is from now: `in 12 min 05 s`, `3 min 10 s overdue`, `in 2 h 05 min`.

    Seconds under an hour: a countdown that visibly moves is one the reader trusts is live.
    incident.js says the same words in the browser.
    """
    whole = int(abs(seconds))
    if whole < 60:
        span = f"{whole} s"
    elif whole < 3600:
        span = f"{whole // 60} min {whole % 60:02d} s"
    elif whole < 48 * 3600:
        span = f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    else:
        span = f"{whole // 86400} days {whole % 86400 // 3600} h"
    return f"in {span}" if seconds >= 0 else f"{span} overdue"


def ago(seconds: float) -> str:
    """Say how long ago a moment was: `4 min ago`."""
    return in_words(-seconds).replace(" overdue", " ago").removeprefix("in ")


def utc_text(moment: datetime) -> str:
    """Return a moment as `Sun 29 Nov 13:05 UTC`."""
    return f"{moment.astimezone(UTC):%a %d %b %H:%M} UTC"


def _moment(text: Any) -> datetime | None:
    try:
        found = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def deadlines(
    planned: Mapping[str, Any],
    running: Mapping[str, str],
    record: Mapping[str, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    """Return the incident's SLA deadlines, soonest first, each with its state in words.

    `planned` is the run's deadlines (`Deadlines.to_dict()`), `running` the due times the SLA
    clock holds now (a status update moves `next_update`), `record` the incident record.
    """
    resolved = record.get("status") == "resolved"
    rows = []
    for kind, label in DEADLINE_LABELS.items():
        due = _moment(running.get(kind) or planned.get(kind) or "")
        if due is None:
            continue
        met_at = _moment(record.get(f"{MET_BY.get(kind, '-')}_at") or "")
        seconds = (due - now).total_seconds()
        if met_at is not None and kind in MET_BY:
            state, words = "met", f"met {utc_text(met_at)}"
            if met_at > due:
                state, words = "met-late", f"met late, {in_words(-(met_at - due).total_seconds())}"
        elif resolved:
            state, words = "stopped", "stopped: the incident is resolved"
        elif seconds < 0:
            state, words = "overdue", in_words(seconds)
        else:
            state, words = "running", in_words(seconds)
        rows.append(
            {
                "kind": kind,
                "label": label,
                "due": due.astimezone(UTC).isoformat(),
                "due_utc": utc_text(due),
                "state": state,
                "words": words,
                "live": state in ("running", "overdue"),
            }
        )
    return sorted(rows, key=lambda r: r["due"])


def next_deadline(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Return the deadline that matters next: the first overdue or running one."""
    live = [r for r in rows if r["live"]]
    return live[0] if live else None


def market(policy: Policy, now: datetime) -> dict[str, Any]:
    """Say whether the market trades now and when that changes."""
    is_open, change = next_market_change(now, policy.market_hours)
    verb = "closes" if is_open else "opens"
    when = in_words((change - now).total_seconds())
    return {
        "open": is_open,
        "words": f"{'Open' if is_open else 'Closed'}: {verb} {when}",
        "change": change.astimezone(UTC).isoformat(),
        "change_utc": utc_text(change),
    }


def priority(policy: Policy, ours: str) -> dict[str, str]:
    """Name our priority and PagerDuty's for it."""
    return {"ours": ours or "?", "pagerduty": policy.pagerduty.priorities.get(ours, "")}


def evidence(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the bundle's collectors, failures first, with their files sorted by kind."""
    rows = []
    for entry in manifest.get("collectors", []):
        files = [str(f) for f in entry.get("files", [])]
        rows.append(
            {
                "name": entry.get("name", "?"),
                "label": collector_label(entry.get("name", "?")),
                "status": entry.get("status", "?"),
                "status_words": status_words(entry.get("status", "")),
                "summary": entry.get("summary", ""),
                "took": f"{float(entry.get('duration_seconds', 0.0)):.1f} s",
                "plots": _plots(files, entry.get("plots") or []),
                "logs": [f for f in files if f.endswith(".log")],
                "other_files": [f for f in files if not f.endswith((".png", ".log"))],
                "tables": _tables(entry.get("tables") or {}),
            }
        )
    return sorted(rows, key=lambda r: status_rank(r["status"]))


def _plots(files: Sequence[str], described: Sequence[Any]) -> list[dict[str, str]]:
    """Return each PNG with words for it: the collector's description when the manifest has one."""
    about = {str(d.get("file")): d for d in described if isinstance(d, Mapping)}
    shown = []
    for name in (f for f in files if f.endswith(".png")):
        plot = about.get(name, {})
        caption = " ".join(str(plot.get(k) or "") for k in ("title", "expression")).strip()
        threshold = plot.get("threshold") or {}
        if isinstance(threshold, Mapping) and threshold.get("label"):
            caption += f" (threshold {threshold['label']})"
        shown.append({"file": name, "caption": caption or name})
    return shown


def _tables(tables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return each table as a caption, columns and rows of text (nested values as JSON-ish)."""
    shown = []
    for caption, rows in tables.items():
        if not isinstance(rows, list) or not rows:
            continue
        rows = [r for r in rows if isinstance(r, Mapping)][:200]
        columns = list(dict.fromkeys(k for r in rows for k in r))
        body = [[_cell(r.get(c)) for c in columns] for r in rows]
        shown.append({"caption": caption.replace("_", " "), "columns": columns, "rows": body})
    return shown


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)[:300]


def log_lines(text: str, limit: int = 400) -> list[dict[str, Any]]:
    """Return a log's last `limit` lines, each marked when it reads like an error."""
    lines = text.splitlines()[-limit:]
    markers = ("error", "exception", "traceback", "fatal", "critical", "panic")
    return [{"text": line, "error": any(m in line.lower() for m in markers)} for line in lines]


def services(
    policy: Policy, names: Iterable[str], manifest: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Return the affected services with their health (from the bundle) and trading role."""
    health: dict[str, dict[str, Any]] = {}
    for entry in manifest.get("collectors", []):
        if entry.get("name") == "http":
            for row in (entry.get("tables") or {}).get("services", []):
                health[str(row.get("service"))] = row
    catalog = policy.catalog
    shown = []
    for name in dict.fromkeys([*names, *health]):
        row = health.get(name, {})
        service = catalog.get(name)
        state = str(row.get("health", "not checked"))
        shown.append(
            {
                "name": name,
                "health": state,
                "healthy": state == "ok",
                "detail": str(row.get("error") or row.get("http_status") or ""),
                "trading_path": bool(service and service.trading_path),
                "why": service.why if service else "",
            }
        )
    return shown


def measured(created_at: Any, now: datetime, status: str) -> str:
    """Say when the services' health was measured: the bundle's moment, before any resolution.

    A health read while the incident fired still shows "down (503)" after the fix; the page
    says when it was read, so nobody takes it for the service's state now.
    """
    moment = _moment(created_at) if created_at else None
    if moment is None:
        return "Not measured yet: the evidence is still being collected."
    when = f"Measured {utc_text(moment)} ({ago((now - moment).total_seconds())})"
    if status == "resolved":
        return f"{when}, while the incident fired: not checked since it was resolved."
    return f"{when}."


def impact(manifest: Mapping[str, Any], shown_services: Sequence[Mapping[str, Any]]) -> str:
    """Say the trading impact in plain words, from the trading collector or the services."""
    for entry in manifest.get("collectors", []):
        if entry.get("name") == "trading" and entry.get("status") != "skipped":
            return str(entry.get("summary") or "")
    down = [s["name"] for s in shown_services if s["trading_path"] and not s["healthy"]]
    checked = [s for s in shown_services if s["health"] != "not checked"]
    if down:
        return f"On the trading path and not healthy: {', '.join(down)}. Trading may be affected."
    if checked:
        return "Every service on the trading path that was checked is healthy."
    return "Not known yet: the evidence is still being collected."


def proposals(
    policy: Policy, records: Iterable[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Return the incident's action proposals, waiting ones first (never who may approve)."""
    actions = policy.actions.catalog
    shown = []
    for record in records:
        action = actions.get(str(record.get("action")))
        expires = _moment(record.get("expires_at") or "")
        status = str(record.get("status", ""))
        waiting = status == "proposed" and expires is not None and expires > now
        outcome = ""
        if status == "by hand":
            outcome = f"{PROPOSAL_WORDS[status]}: {record.get('command') or record.get('ran')}"
        elif status in ("done", "failed", "dry-run", "unknown"):
            outcome = f"{PROPOSAL_WORDS.get(status, status)}: {record.get('answer') or ''}".strip()
            if record.get("verified"):
                outcome += f" Verification {record['verified']}."
        elif status in ("denied", "refused"):
            outcome = str(record.get("reason") or "")
        shown.append(
            {
                "id": record.get("id"),
                "action": record.get("action"),
                "target": record.get("target"),
                "description": action.does if action else "",
                "status": status,
                "status_words": _status_words(status, record, action),
                "waiting": waiting,
                "expired": status == "proposed" and not waiting,
                "expires_utc": utc_text(expires) if expires else "",
                "approved_by": record.get("approved_by", ""),
                "via": record.get("via", ""),
                "outcome": outcome,
                "last_refusal": str(record.get("reason") or "") if status == "proposed" else "",
            }
        )
    return sorted(shown, key=lambda p: (not p["waiting"], str(p["id"])))


def _status_words(status: str, record: Mapping[str, Any], action: Any) -> str:
    """Say where a proposal is; one waiting for more approvers says how many it has."""
    words = PROPOSAL_WORDS.get(status, status)
    required = getattr(action, "approvals_required", 1)
    approvals = record.get("approvals") or []
    if status == "proposed" and required > 1:
        words += f" (approved {len(approvals)} of {required})"
    return words


def timeline_kind(what: str) -> str:
    """Return the kind of a history line: alert, escalation, note, status, action or other."""
    lowered = what.lower()
    if lowered.startswith("action "):
        return "action"
    if lowered.startswith(("escalated", "responders requested", "security team", "delegated")):
        return "escalation"
    if lowered.startswith(("note", "status update")):
        return "note"
    if lowered.startswith(("triggered", "resolved", "alert")):
        return "alert"
    if lowered.startswith(("acknowledged", "unacknowledged", "reopened", "status", "reassigned")):
        return "status"
    return "other"


MOMENT_WORDS = {
    "triggered": "triggered: the incident opened",
    "acknowledged": "acknowledged",
    "unacknowledged": "unacknowledged: nobody holds it now",
    "resolved": "resolved",
    "reopened": "reopened",
    "escalated": "escalated by PagerDuty",
    "reassigned": "reassigned",
    "delegated": "delegated",
    "priority_updated": "status: priority changed in PagerDuty",
}
TIMELINE_LABELS = {
    "alert": "Alert",
    "escalation": "Escalation",
    "note": "Note",
    "status": "Status",
    "action": "Action",
    "other": "Event",
}


def timeline(
    *sources: Iterable[Mapping[str, Any]], now: datetime, limit: int = MAX_TIMELINE
) -> list[dict[str, Any]]:
    """Merge history entries (`at`, `what`, `by`) from several sources, oldest first, once each."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for source in sources:
        for entry in source:
            at = _moment(entry.get("at") or "")
            if at is None:
                continue
            what = str(entry.get("what") or "")
            # The record's moments are bare words (`acknowledged`): say them as events.
            what = MOMENT_WORDS.get(what, what)
            key = (at.isoformat(), what, str(entry.get("by") or ""))
            if key in seen:
                continue
            kind = timeline_kind(what)
            seen[key] = {
                "at": at.astimezone(UTC).isoformat(),
                "at_utc": utc_text(at),
                "ago": ago((now - at).total_seconds()),
                "what": what,
                "by": str(entry.get("by") or ""),
                "kind": kind,
                "kind_label": TIMELINE_LABELS[kind],
            }
    ordered = sorted(seen.values(), key=lambda e: e["at"])
    return ordered[-limit:]


def correlated(incident: ReplayedIncident | None) -> dict[str, Any] | None:
    """Return the alerts correlation tied into the incident, with how each came in; None when
    the incident holds one group's alerts only."""
    if incident is None or len({m.group for m in incident.members}) < 2:
        return None
    return {
        "origin": incident.origin or "",
        "symptoms": symptoms(incident),
        "members": [
            {
                "name": m.name,
                "service": m.service or "(no service)",
                "firing": m.firing,
                "at": utc_text(m.at),
                "how": tie_text(m),
            }
            for m in incident.members
        ],
    }
