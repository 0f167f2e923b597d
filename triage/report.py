"""The runbook's Incident Metrics over a set of incidents: MTTA, MTTR and SLA compliance."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from triage.models import Priority
from triage.policy import Policy
from triage.sla import deadlines


@dataclass(frozen=True)
class IncidentTimes:
    """When one incident's SLA clock started, and when it was acknowledged and resolved."""

    incident_id: str
    priority: Priority
    started: datetime
    acknowledged: datetime | None = None
    resolved: datetime | None = None
    acknowledged_by_resolving: bool = False  # no acknowledgement: resolving counts as one


@dataclass(frozen=True)
class Compliance:
    """How many judged incidents met one SLA; an open incident not yet due is not judged."""

    met: int = 0
    judged: int = 0

    @property
    def percent(self) -> float | None:
        """Return the share met, in percent, or None when nothing was judged."""
        return round(100 * self.met / self.judged, 1) if self.judged else None

    def __str__(self) -> str:
        return f"{self.met}/{self.judged} ({self.percent:g}%)" if self.judged else "-"


@dataclass(frozen=True)
class PriorityMetrics:
    """The Incident Metrics of one priority."""

    priority: Priority
    incidents: int
    acknowledged: int
    resolved: int
    mtta: timedelta | None
    mttr: timedelta | None
    acknowledge_sla: Compliance
    resolve_sla: Compliance

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as JSON-ready data (durations in seconds)."""
        return {
            "priority": str(self.priority),
            "incidents": self.incidents,
            "acknowledged": self.acknowledged,
            "resolved": self.resolved,
            "mtta_seconds": _seconds(self.mtta),
            "mttr_seconds": _seconds(self.mttr),
            "acknowledge_sla": _compliance(self.acknowledge_sla),
            "resolve_sla": _compliance(self.resolve_sla),
        }


def from_record(
    record: Mapping[str, Any], history: Iterable[Mapping[str, str]] = ()
) -> IncidentTimes | None:
    """Read an incident record and its history; None when no pipeline of ours started its clock.

    Acknowledged is the first acknowledgement of the current cycle (an acknowledgement that
    timed out and came again does not move it); resolved is the last resolution while the
    record says resolved. Moments before the clock's start belong to an earlier cycle (before
    a reopen) and are ignored. An incident resolved without an acknowledgement counts as
    acknowledged then: resolving is the strongest acknowledgement there is.
    """
    try:
        started = _aware(record.get("sla_started_at"))
        priority = Priority(record.get("sla_priority"))
    except ValueError:
        return None  # no clock of ours, or one this version cannot read
    seen: dict[str, list[datetime]] = {"acknowledged": [], "resolved": []}
    # The history has every moment; the record its latest, which the history may lack when
    # it was written by an older version.
    moments = [(e.get("what"), e.get("at")) for e in history]
    moments += [(m, record.get(f"{m}_at")) for m in seen]
    for what, at in moments:
        if what in seen:
            try:
                when = _aware(at)
            except ValueError:
                continue
            if when >= started:
                seen[what].append(when)
    acknowledgements = sorted(seen["acknowledged"])
    resolutions = sorted(seen["resolved"])
    resolved = resolutions[-1] if resolutions and record.get("status") == "resolved" else None
    return IncidentTimes(
        incident_id=record.get("id", ""),
        priority=priority,
        started=started,
        acknowledged=acknowledgements[0] if acknowledgements else resolved,
        resolved=resolved,
        acknowledged_by_resolving=not acknowledgements and resolved is not None,
    )


def _aware(value: Any) -> datetime:
    """Parse an ISO 8601 time that carries its zone; ValueError for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"no time zone: {value!r}")
    return when


def metrics(
    incidents: Iterable[IncidentTimes], policy: Policy, now: datetime
) -> list[PriorityMetrics]:
    """Return MTTA, MTTR and SLA compliance for each priority, P0 first."""
    by_priority: dict[Priority, list[IncidentTimes]] = {p: [] for p in Priority}
    for incident in incidents:
        by_priority[incident.priority].append(incident)
    return [_metrics(p, group, policy, now) for p, group in by_priority.items()]


def _metrics(
    priority: Priority, group: list[IncidentTimes], policy: Policy, now: datetime
) -> PriorityMetrics:
    to_ack, to_resolve = [], []
    ack_met = ack_judged = resolve_met = resolve_judged = 0
    for incident in group:
        due = deadlines(priority, incident.started, policy)
        if incident.acknowledged is not None:
            # Resolved without an acknowledgement: the acknowledge SLA is judged at the
            # resolution, as the closing note judges it, but nobody acknowledged it, so it has
            # no time to acknowledge (the closing note says "never acknowledged").
            if not incident.acknowledged_by_resolving:
                to_ack.append(incident.acknowledged - incident.started)
            ack_met += incident.acknowledged <= due.acknowledge
            ack_judged += 1
        elif now > due.acknowledge:
            ack_judged += 1  # still unacknowledged and past due: missed
        if incident.resolved is not None:
            to_resolve.append(incident.resolved - incident.started)
            resolve_met += incident.resolved <= due.resolve
            resolve_judged += 1
        elif now > due.resolve:
            resolve_judged += 1
    return PriorityMetrics(
        priority=priority,
        incidents=len(group),
        acknowledged=len(to_ack),
        resolved=len(to_resolve),
        mtta=_mean(to_ack),
        mttr=_mean(to_resolve),
        acknowledge_sla=Compliance(ack_met, ack_judged),
        resolve_sla=Compliance(resolve_met, resolve_judged),
    )


def _mean(spans: list[timedelta]) -> timedelta | None:
    if not spans:
        return None
    return timedelta(seconds=round(sum(s.total_seconds() for s in spans) / len(spans)))


def _seconds(span: timedelta | None) -> int | None:
    return None if span is None else int(span.total_seconds())


def _compliance(value: Compliance) -> dict[str, Any]:
    return {"met": value.met, "judged": value.judged, "percent": value.percent}
