"""The runbook's SLA deadlines for an incident, from the policy's matrix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from triage.models import Priority
from triage.policy import Policy, Span


@dataclass(frozen=True)
class Deadlines:
    """When each of the runbook's promises for one incident falls due."""

    priority: Priority
    triggered_at: datetime
    acknowledge: datetime
    respond: datetime
    resolve: datetime
    next_update: datetime
    notify_management: datetime

    def to_dict(self) -> dict[str, str]:
        """Return the deadlines as ISO 8601 strings."""
        return {
            "priority": self.priority.value,
            "triggered_at": self.triggered_at.isoformat(),
            "acknowledge": self.acknowledge.isoformat(),
            "respond": self.respond.isoformat(),
            "resolve": self.resolve.isoformat(),
            "next_update": self.next_update.isoformat(),
            "notify_management": self.notify_management.isoformat(),
        }


def deadlines(priority: Priority, triggered_at: datetime, policy: Policy) -> Deadlines:
    """Compute every SLA deadline of an incident of `priority` triggered at `triggered_at`."""
    if triggered_at.tzinfo is None:
        raise ValueError("triggered_at must carry a time zone")
    targets = policy.sla[priority]

    def due(span: Span) -> datetime:
        return add_span(triggered_at, span, policy.timezone)

    return Deadlines(
        priority=priority,
        triggered_at=triggered_at,
        acknowledge=due(targets.acknowledge),
        respond=due(targets.respond),
        resolve=due(targets.resolve),
        next_update=due(targets.update_every),
        notify_management=due(targets.notify_management),
    )


def add_span(start: datetime, span: Span, zone: ZoneInfo) -> datetime:
    """Return `start` plus `span`; business days skip Saturdays and Sundays in `zone`."""
    result = start + span.duration
    if span.business_days:
        local = result.astimezone(zone)
        remaining = span.business_days
        while remaining:
            # Add calendar days in local time so the wall-clock hour survives a DST change.
            local = (local.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
            if local.weekday() < 5:
                remaining -= 1
        result = local.astimezone(start.tzinfo)
    return result
