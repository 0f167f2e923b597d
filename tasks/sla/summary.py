"""Management, "P2/P3 incidents: Next business day summary": at a business opening, one summary
of the incidents summarised so whose clock started since the opening before, posted where the
policy says: a note on each of those incidents, and one e-mail to management's addresses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.gateways.pagerduty import IncidentRef
from tasks.notify import management
from tasks.pagerduty.notes import post_note_once
from tasks.run.state import existing_run
from tasks.runtime import Runtime
from tasks.store.sla_clock import Deadline
from triage import report
from triage.sla import previous_business_opening


def post_summary(rt: Runtime, deadline: Deadline, now: datetime) -> str:
    """Post the summary due at the business opening `deadline.due`; each incident's note once.

    Every incident of the window registered this deadline; one that joins late (a delivery
    replayed after the opening) registers it again, and gets its note, the others not twice.
    """
    opening = datetime.fromisoformat(deadline.due)
    since = previous_business_opening(opening, rt.policy.market_hours)
    covered = {p.value for p in rt.policy.summarised()}
    incidents = []
    for record in rt.incidents.started_since(since):
        if record.get("sla_priority") not in covered:
            continue
        times = report.from_record(record, rt.incidents.history(str(record.get("id", ""))))
        if times is not None and times.started < opening:
            incidents.append((_titled(rt, record), times))
    if not incidents:
        return "no incidents to summarise"
    rows = [
        row
        for row in report.metrics([t for _, t in incidents], rt.policy, now)
        if row.priority.value in covered
    ]
    lines = [_line(r, t) for r, t in incidents]
    content = rt.voice.management_summary(since, opening, rows, lines)
    # One e-mail for the whole period, whatever the number of incidents (an alert storm of
    # 100 P2s is one summary); a late incident that registers the summary again finds it sent.
    notice = management.summary(rt, deadline, content, since, opening, rows, lines)
    with management.told_first(rt, notice, now):
        _post_notes(rt, deadline, incidents, content)
    return f"management summary of {len(incidents)} incidents posted"


def _post_notes(
    rt: Runtime,
    deadline: Deadline,
    incidents: list[tuple[dict[str, Any], report.IncidentTimes]],
    content: str,
) -> None:
    """Post the summary as a note on each of its incidents, each once."""
    for record, times in incidents:
        incident = IncidentRef(times.incident_id, str(record.get("incident_key") or ""))
        post_note_once(rt, incident, deadline.incident_id, f"note-{times.incident_id}", content)


def _titled(rt: Runtime, record: dict[str, Any]) -> dict[str, Any]:
    """Return the record with a title: PagerDuty's, or our run's when no webhook gave one."""
    if record.get("title"):
        return record
    state = existing_run(rt, str(record.get("run_id") or ""))
    return {**record, "title": state.title if state else ""}


def _line(record: dict[str, Any], times: report.IncidentTimes) -> dict[str, Any]:
    """Return the facts of one incident's line in the summary."""
    return {
        "id": times.incident_id,
        "priority": times.priority.value,
        "title": str(record.get("title") or ""),
        "status": str(record.get("status") or "triggered"),
        "started": times.started,
        "acknowledged": (
            times.acknowledged - times.started
            if times.acknowledged and not times.acknowledged_by_resolving
            else None  # resolved without an acknowledgement: "not acknowledged"
        ),
        "resolved": times.resolved - times.started if times.resolved else None,
    }
