"""The watch period's memory in Redis: each resolved incident's alert group, kept for the
policy's watch period (a TTL), so the same group firing again soon is known (Post-Incident
"Increased monitoring for 24 hours"; triage.watch_period)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import redis

from tasks.store.deliveries import PREFIX
from triage.watch_period import Resolved

# Kept a little past the watch period: the check itself measures the period from the
# resolution, so a slow worker never loses a recurrence at the edge.
MARGIN = timedelta(minutes=10)


def watch_key(incident_key: str) -> str:
    """Return the key of one alert group's last resolution (its incident key: the group's
    key hashed, never label text)."""
    return f"{PREFIX}watch:{incident_key}"


class WatchStore:
    """Remember the resolved incidents' alert groups for the watch period; find one again."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def remember(
        self, incident_key: str, resolved: Resolved, within: timedelta, now: datetime
    ) -> bool:
        """Keep a group's resolution until the watch period after it ends; return whether kept.

        A later resolution of the same group replaces it: the watch runs from the latest.
        """
        left = resolved.resolved_at + within + MARGIN - now
        if within <= timedelta(0) or left <= timedelta(0):
            return False
        seconds = max(int(left.total_seconds()), 1)
        self.redis.set(watch_key(incident_key), json.dumps(resolved.to_dict()), ex=seconds)
        return True

    def find(self, incident_key: str) -> Resolved | None:
        """Return the group's last resolution still in its watch period, or None."""
        raw = self.redis.get(watch_key(incident_key))
        return Resolved.from_dict(json.loads(raw)) if raw is not None else None
