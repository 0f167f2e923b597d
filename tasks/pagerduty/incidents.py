"""PagerDuty incidents as a run needs them: found by incident key, and the account's priorities."""

from __future__ import annotations

from tasks.gateways.pagerduty import IncidentRef
from tasks.runtime import Runtime
from tasks.store import services

# Our priorities as the Events API's severities, for an incident the responder opens itself.
SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}
PRIORITY_CACHE_SECONDS = 3600


class IncidentNotFound(LookupError):
    """No PagerDuty incident has the key (yet)."""


def find_incident(rt: Runtime, incident_key: str, open_only: bool = True) -> IncidentRef | None:
    """Return the open incident with `incident_key`: known here, or asked of PagerDuty once.

    `open_only=False` (a resolution's note) takes the newest incident, resolved or not.
    """
    if known := rt.incidents.id_for(incident_key):
        return IncidentRef(known, incident_key)
    incident = rt.pagerduty.find_incident(incident_key, open_only)
    if incident is not None and incident.id and open_only:
        rt.incidents.remember_id(incident_key, incident.id)
    return incident


def priority_id(rt: Runtime, name: str) -> str | None:
    """Return the id of the account's PagerDuty priority called `name` (None: it has none);
    the account's list is asked once an hour."""
    found = services.cached_priorities(rt.redis)
    if found is None:
        found = rt.pagerduty.priorities()
        services.cache_priorities(rt.redis, found, PRIORITY_CACHE_SECONDS)
    match = next((p for p in found if p.get("name") == name), None)
    return str(match["id"]) if match is not None else None
