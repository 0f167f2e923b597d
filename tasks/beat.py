"""Beat on every host, ticking once: a scheduler that sends only while it holds the beat lease.

`celery -A tasks beat` uses it (`beat_scheduler` in `tasks.celery_app`). Every beat keeps its
schedule in step, so a beat that takes the lease over goes on at the same cadence instead of
sending every job at once; only the holder sends. See docs/beat.md for why a lease of our own
rather than celery-redbeat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import redis
from celery.beat import PersistentScheduler

from tasks.runtime import Runtime
from tasks.store.beat_lease import BeatLease, lease_holder

log = logging.getLogger(__name__)

# The lease is renewed three times per lease period: two renewals in a row may fail (a slow
# Redis reply) before another beat can take it.
RENEWALS_PER_LEASE = 3


def missed_on_takeover(passed: Mapping[str, float], now: float, window: float) -> list[str]:
    """Return the jobs a beat sends at once on taking the lease over, sorted by name.

    `passed` maps each job this beat let pass while standing by to when (monotonic). The
    holder that died renewed the lease at most `window` seconds ago (a lease and a look): a
    job that came due since may never have been sent, and would otherwise wait out its whole
    period once more (the SLA tick 5 s, the heartbeat 10 s, an hourly job an hour). Every
    periodic job is safe to run twice (once-markers), so sending one early costs nothing.
    """
    return sorted(name for name, at in passed.items() if now - at <= window)


class LeasedScheduler(PersistentScheduler):
    """Celery's file-backed scheduler, sending due tasks only while it holds the beat lease."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lease: BeatLease | None = None
        self._holding = False
        self._valid_until = 0.0  # monotonic: past it, a holder that could not renew stops
        self._next_look = 0.0
        self._said: bool | None = None  # what the log last said: holding (True) or standing by
        self._passed: dict[str, float] = {}  # job -> when (monotonic) it came due, standing by
        super().__init__(*args, **kwargs)

    @property
    def lease(self) -> BeatLease:
        """Return this beat's lease, built on first use from the app's settings."""
        if self._lease is None:
            settings = self.app.conf.responder_settings
            self._lease = BeatLease(Runtime(settings).redis, settings.beat_lease_seconds)
        return self._lease

    @property
    def look_every(self) -> float:
        """Return how often this beat renews (or tries to take) the lease, in seconds."""
        return self.app.conf.responder_settings.beat_lease_seconds / RENEWALS_PER_LEASE

    def look(self, now: float) -> None:
        """Renew or take the lease, and say so when this beat starts or stops holding it."""
        self._next_look = now + self.look_every
        try:
            holding = self.lease.hold()
        except redis.RedisError as exc:
            log.warning("beat: cannot reach Redis for the beat lease: %s", type(exc).__name__)
            holding = self._holding and now < self._valid_until
        else:
            if holding:
                # Counted from before the call: Redis started the expiry later than this.
                self._valid_until = now + self.lease.milliseconds / 1000 - self.look_every
        taking_over = holding and self._said is False  # it stood by, and said so
        if holding != self._said:
            if holding:
                log.info("beat: holding the beat lease (%s); sending periodic tasks", self.who())
            else:
                log.info("beat: standing by; the beat lease is held by %s", self.who())
            self._said = holding
        self._holding = holding
        if taking_over:
            self.send_missed(now)

    def send_missed(self, now: float) -> None:
        """Send at once the jobs the last holder may have left unsent (missed_on_takeover)."""
        window = self.lease.milliseconds / 1000 + self.look_every
        names = missed_on_takeover(self._passed, now, window)
        self._passed.clear()
        log.info("beat: took the beat lease over; sending now: %s", ", ".join(names) or "none")
        for name in names:
            if entry := self.schedule.get(name):
                # Celery's apply_entry logs and survives a failed send; the entry is not
                # advanced, so the job keeps its regular next run as well.
                super().apply_entry(entry, producer=self.producer)

    def who(self) -> str:
        """Return the lease holder as host:pid, for the log."""
        try:
            holder = lease_holder(self.lease.redis)
        except redis.RedisError:
            return "(Redis unreachable)"
        return f"{holder.host}:{holder.pid}" if holder else "nobody"

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Look at the lease when it is time to, then run Celery's tick; wake for the next look."""
        now = time.monotonic()
        if now >= self._next_look:
            self.look(now)
        if self._holding and now >= self._valid_until:
            self._holding = False  # not renewed in time: another beat may hold it by now
        delay = super().tick(*args, **kwargs)
        return max(min(delay, self._next_look - time.monotonic()), 0.0)

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        """Send the due task while holding the lease; a standby notes when it let one pass."""
        if self._holding:
            super().apply_entry(entry, producer=producer)
        else:
            self._passed[entry.name] = time.monotonic()

    def close(self) -> None:
        """Save the schedule and give the lease up, so a standby takes over at its next look."""
        try:
            if self._holding and self._lease is not None:
                self._lease.release()
                self._holding = False  # close() runs twice on a stop: say it once
                log.info("beat: gave up the beat lease")
        except redis.RedisError as exc:
            log.warning("beat: could not give up the beat lease: %s", type(exc).__name__)
        finally:
            super().close()
