"""The Watchdog's marks in Redis: its last arrival, since when we watch, and the page sent."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from tasks.store.deliveries import PREFIX

LAST_KEY = f"{PREFIX}watchdog:last"  # when the last Watchdog alert arrived (epoch seconds)
ARRIVALS_KEY = f"{PREFIX}watchdog:arrivals"  # how many arrived, for operators
SINCE_KEY = f"{PREFIX}watchdog:watching-since"  # the first check: silence counts from here
PAGED_KEY = f"{PREFIX}watchdog:paged"  # once-marker of the page of the current silence


class WatchdogMarks:
    """Note arrivals, read the last one, and page at most once per silence."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def arrived(self, now: datetime) -> None:
        """Note one Watchdog arrival at `now`; a silence that paged is over."""
        with self.redis.pipeline() as pipe:
            pipe.set(LAST_KEY, now.timestamp())
            pipe.incr(ARRIVALS_KEY)
            pipe.delete(PAGED_KEY)
            pipe.execute()

    def last_seen(self) -> datetime | None:
        """Return when the last Watchdog alert arrived, or None if none has."""
        raw = self.redis.get(LAST_KEY)
        return datetime.fromtimestamp(float(raw), UTC) if raw else None

    def arrivals(self) -> int:
        """Return how many Watchdog alerts have arrived."""
        return int(self.redis.get(ARRIVALS_KEY) or 0)

    def watching_since(self, now: datetime) -> datetime:
        """Return when watching began, starting it at `now` on the first call."""
        self.redis.set(SINCE_KEY, now.timestamp(), nx=True)
        return datetime.fromtimestamp(float(self.redis.get(SINCE_KEY) or now.timestamp()), UTC)

    def claim_page(self, since: datetime) -> bool:
        """Take the page of the silence since `since`; False: it was taken (sent, or sending)."""
        return bool(self.redis.set(PAGED_KEY, since.timestamp(), nx=True))

    def unclaim_page(self) -> None:
        """Give the page back after it failed to send, so the next check sends it."""
        self.redis.delete(PAGED_KEY)
