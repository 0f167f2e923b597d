"""Post-Incident "Increased monitoring for 24 hours": what the same alert group firing again
soon after its incident resolved means for the new incident. Pure: time is an argument.

The identity is correlation's: the Alertmanager group (its key), so the alert that fires
again is the one a person just saw resolve. Flapping (correlation.flap_window) is decided
first: a group back while its incident is still open joins it and opens nothing; only a new
incident is judged here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from triage.models import Priority
from triage.policy import WatchPeriod, format_duration

# Most urgent first: one step more urgent is the one before in this order.
_ORDER = (Priority.P0, Priority.P1, Priority.P2, Priority.P3)


@dataclass(frozen=True)
class Resolved:
    """What is kept of a resolved incident's alert group for the watch period."""

    incident_id: str
    resolved_at: datetime
    priority: Priority

    def to_dict(self) -> dict[str, str]:
        """Return it as JSON-ready data, for the store."""
        return {
            "incident_id": self.incident_id,
            "resolved_at": self.resolved_at.isoformat(),
            "priority": str(self.priority),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resolved:
        """Rebuild it from `to_dict` output."""
        return cls(
            str(data["incident_id"]),
            datetime.fromisoformat(str(data["resolved_at"])),
            Priority(str(data["priority"])),
        )


@dataclass(frozen=True)
class Recurrence:
    """The same group fired again within the watch period: the new incident's priority and
    the sentence its first note says."""

    earlier: str  # the resolved incident's id
    after: timedelta  # how long after its resolution the group fired again
    within: timedelta  # the policy's watch period
    was: Priority  # what the policy's rules gave the new alert
    priority: Priority  # what the new incident gets

    @property
    def raised(self) -> bool:
        """Return True when the new incident is more urgent than its rules gave it."""
        return self.priority != self.was

    def sentence(self, highest: Priority) -> str:
        """Say what happened, for the first note and the incident's history."""
        said = (
            f"fired again {_span(self.after)} after {self.earlier} was resolved: "
            f"watch period of {format_duration(self.within)}"
        )
        if self.raised:
            return f"{said}, {self.was} raised to {self.priority}"
        if self.was == Priority.P0:
            return f"{said}, stays P0 (the most urgent)"
        return f"{said}, stays {self.was} (the watch period raises no higher than {highest})"

    def to_dict(self, highest: Priority) -> dict[str, Any]:
        """Return it as JSON-ready data, for the run, the delivery and the note."""
        return {
            "earlier": self.earlier,
            "after_seconds": self.after.total_seconds(),
            "within": format_duration(self.within),
            "was": str(self.was),
            "priority": str(self.priority),
            "sentence": self.sentence(highest),
        }


def one_step_more_urgent(priority: Priority, highest: Priority) -> Priority:
    """Return `priority` one step more urgent, never beyond `highest` and never lower."""
    if priority.rank <= highest.rank:
        return priority
    return _ORDER[priority.rank - 1]


def recurrence(
    priority: Priority, earlier: Resolved | None, started_at: datetime, period: WatchPeriod
) -> Recurrence | None:
    """Return what the watch period makes of an alert group that started `started_at`, given
    its last incident's resolution (None: it fired outside the watch period, or never)."""
    if earlier is None or period.within <= timedelta(0):
        return None
    after = max(started_at - earlier.resolved_at, timedelta(0))  # a skewed clock: at once
    if after > period.within:
        return None
    raised = one_step_more_urgent(priority, period.highest)
    return Recurrence(earlier.incident_id, after, period.within, priority, raised)


def _span(delta: timedelta) -> str:
    """Return a duration as the sentence says it: "0s" rather than "immediately"."""
    return format_duration(delta) if delta >= timedelta(seconds=1) else "0s"
