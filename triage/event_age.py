"""How old a signed event may be: a captured event sent again later is refused by its age.

A signature proves who wrote an event, not when it was sent. The event's own time, inside the
signed body, bounds how long a captured copy can be used; the event-id memory (48 h) covers
the rest of that window.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def age_problem(
    occurred_at: datetime | None, now: datetime, max_age: timedelta, max_ahead: timedelta
) -> str | None:
    """Return why an event that occurred at `occurred_at` is not taken at `now`, or None."""
    if occurred_at is None:
        return "event.occurred_at is missing: the event's age cannot be checked"
    age = (now - occurred_at).total_seconds()
    if age > max_age.total_seconds():
        return (
            f"stale event: occurred_at {occurred_at.isoformat()} is {age:.0f} s old, "
            f"past the limit of {max_age.total_seconds():.0f} s; a replay is never acted on"
        )
    if -age > max_ahead.total_seconds():
        return (
            f"event from the future: occurred_at {occurred_at.isoformat()} is {-age:.0f} s "
            f"ahead of this host's clock, past the {max_ahead.total_seconds():.0f} s allowed"
        )
    return None
