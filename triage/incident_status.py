"""What a status update says of an incident: the runbook's status word and a person's ETA.

"Status: [Investigating/Identified/Monitoring/Resolved]" means what the runbook means: an
incident is Investigating until a person says otherwise (`/status identified ...` in a note),
whatever PagerDuty's acknowledgement says, and Resolved once PagerDuty resolves it. The ETA is
a person's word too (`/eta 30m`), unknown until given. Words said before the incident's
current cycle began (a reopen, or our clock's start) are not this cycle's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

INVESTIGATING, RESOLVED = "Investigating", "Resolved"


@dataclass(frozen=True)
class StatusNow:
    """The status an update reports: the word, what the person said with it, the ETA."""

    word: str
    text: str = ""
    by: str = ""
    eta: datetime | None = None
    eta_passed: bool = False
    acknowledged: bool = False


def status_now(record: Mapping[str, Any], now: datetime) -> StatusNow:
    """Return what an update says of the incident `record` describes, at `now`."""
    acknowledged = record.get("status") == "acknowledged"
    if record.get("status") == "resolved":
        return StatusNow(RESOLVED, by=str(record.get("resolved_by") or ""))
    said = _this_cycle(record, "said_status")
    told = _this_cycle(record, "said_eta")
    eta = _moment(told.get("eta")) if told else None
    return StatusNow(
        word=str(said.get("word") or INVESTIGATING) if said else INVESTIGATING,
        text=str(said.get("text") or "") if said else "",
        by=str(said.get("by") or "") if said else "",
        eta=eta,
        eta_passed=eta is not None and eta <= now,
        acknowledged=acknowledged,
    )


def cycle_start(record: Mapping[str, Any]) -> datetime | None:
    """Return when the incident's current cycle began: our clock's start or its reopen."""
    moments = (_moment(record.get(name)) for name in ("sla_started_at", "reopened_at"))
    starts = [moment for moment in moments if moment is not None]
    return max(starts) if starts else None


def _this_cycle(record: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    said = record.get(name)
    if not isinstance(said, Mapping):
        return None
    at, begun = _moment(said.get("at")), cycle_start(record)
    if at is None or (begun is not None and at < begun):
        return None
    return said


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
