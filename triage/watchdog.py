"""Watching the watcher: is the monitoring pipeline silent? Pure: moments and policy are given.

Alertmanager's `Watchdog` alert always fires, so it arrives at every repeat while Prometheus,
Alertmanager and the road to the responder work. None for the policy's interval means that
road is broken: the responder would never hear of the outage it is there to answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from triage.policy import MarketHours, WatchdogPolicy
from triage.sla import is_market_open


@dataclass(frozen=True)
class Silence:
    """Whether the pipeline counts as silent now, and since when nothing has arrived."""

    silent: bool
    since: datetime  # the last arrival, or when watching began if none has arrived
    reason: str


def silence(
    watchdog: WatchdogPolicy,
    hours: MarketHours,
    last_seen: datetime | None,
    watching_since: datetime,
    now: datetime,
) -> Silence:
    """Decide whether no Watchdog arrival for the interval makes the pipeline silent at `now`.

    Silence is counted from the last arrival or, before the first, from when the responder
    began watching (a Watchdog never configured is silence too). With `market_hours_only`,
    a silence outside market hours waits for the opening: it pages then, if still silent.
    """
    since = last_seen or watching_since
    quiet_for = now - since
    if quiet_for < watchdog.interval:
        return Silence(False, since, "heard within the interval")
    if watchdog.market_hours_only and not is_market_open(now, hours):
        return Silence(False, since, "silent, but the market is closed")
    return Silence(True, since, "silent for the interval")
