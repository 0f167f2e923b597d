"""The runbook's SLA deadlines: wall clock, business days and the market-hours clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from triage.models import Priority
from triage.policy import MarketHours, Policy, Span

_MAX_DAYS_SEARCHED = 800  # more than two years: a policy whose market never opens fails loudly


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

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Deadlines:
        """Rebuild deadlines from `to_dict` output."""
        moments = {k: datetime.fromisoformat(v) for k, v in data.items() if k != "priority"}
        return cls(priority=Priority(data["priority"]), **moments)


def deadlines(priority: Priority, triggered_at: datetime, policy: Policy) -> Deadlines:
    """Compute every SLA deadline of an incident of `priority` triggered at `triggered_at`."""
    if triggered_at.tzinfo is None:
        raise ValueError("triggered_at must carry a time zone")
    targets = policy.sla[priority]

    def due(span: Span) -> datetime:
        return add_span(triggered_at, span, policy.market_hours)

    return Deadlines(
        priority=priority,
        triggered_at=triggered_at,
        acknowledge=due(targets.acknowledge),
        respond=due(targets.respond),
        resolve=due(targets.resolve),
        next_update=due(targets.update_every),
        notify_management=due(targets.notify_management),
    )


def add_span(start: datetime, span: Span, hours: MarketHours) -> datetime:
    """Return when `span` counted from `start` ends, in `start`'s time zone."""
    if span.next_business_day:
        return next_business_day_start(start, hours)
    if span.business_days:
        return add_business_days(start, span.business_days, hours)
    if span.market_clock:
        return add_market_time(start, span.duration, hours)
    return start + span.duration


@lru_cache(maxsize=64)  # pure, and asked on every classification that tests market hours
def market_intervals(day: date, hours: MarketHours) -> tuple[tuple[datetime, datetime], ...]:
    """Return the UTC intervals during which the market is open on local date `day`."""
    if day in hours.holidays:
        return ()
    weekday = day.weekday()
    opens, closes = hours.opens, hours.closes
    zone = hours.timezone

    def at(d: date, t: time) -> datetime:
        return datetime.combine(d, t, tzinfo=zone).astimezone(UTC)

    midnight, next_midnight = at(day, time(0)), at(day + timedelta(days=1), time(0))
    if weekday == opens.weekday:
        return ((at(day, opens.at), next_midnight),)
    if weekday == closes.weekday:
        return ((midnight, at(day, closes.at)),)
    if 0 < (weekday - opens.weekday) % 7 < (closes.weekday - opens.weekday) % 7:
        return ((midnight, next_midnight),)
    return ()


def is_market_open(moment: datetime, hours: MarketHours) -> bool:
    """Return True when the market trades at `moment`."""
    local_day = moment.astimezone(hours.timezone).date()
    return any(a <= moment < b for a, b in market_intervals(local_day, hours))


def next_market_change(moment: datetime, hours: MarketHours) -> tuple[bool, datetime]:
    """Return whether the market is open at `moment`, and when that next changes."""
    cursor = moment.astimezone(UTC)
    day = cursor.astimezone(hours.timezone).date()
    open_now = is_market_open(moment, hours)
    for _ in range(_MAX_DAYS_SEARCHED):
        for opened, closed in market_intervals(day, hours):
            edge = closed if open_now else opened
            # Adjacent intervals (one local day into the next) are one session: skip the seam.
            if edge > cursor and is_market_open(edge, hours) != open_now:
                return open_now, edge.astimezone(moment.tzinfo)
        day += timedelta(days=1)
    raise ValueError("the market never changes state under this policy")


def add_market_time(start: datetime, duration: timedelta, hours: MarketHours) -> datetime:
    """Return the moment when `duration` of market-open time has passed since `start`."""
    if duration <= timedelta(0):
        return start
    remaining = duration
    cursor = start.astimezone(UTC)
    day = cursor.astimezone(hours.timezone).date()
    for _ in range(_MAX_DAYS_SEARCHED):
        for opened, closed in market_intervals(day, hours):
            opened = max(opened, cursor)
            if opened >= closed:
                continue
            if closed - opened >= remaining:
                return (opened + remaining).astimezone(start.tzinfo)
            remaining -= closed - opened
        day += timedelta(days=1)
    raise ValueError("the market never opens under this policy")


def is_business_day(day: date, hours: MarketHours) -> bool:
    """Return True for Monday to Friday, holidays excepted."""
    return day.weekday() < 5 and day not in hours.holidays


def add_business_days(start: datetime, count: int, hours: MarketHours) -> datetime:
    """Return `start` moved `count` business days on, at the same local wall-clock time."""
    local = start.astimezone(hours.timezone)
    day = local.date()
    for _ in range(count):
        day += timedelta(days=1)
        while not is_business_day(day, hours):
            day += timedelta(days=1)
    moved = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=hours.timezone)
    return moved.astimezone(start.tzinfo)


def next_business_day_start(start: datetime, hours: MarketHours) -> datetime:
    """Return the start of the first business day after `start`'s local date."""
    day = start.astimezone(hours.timezone).date() + timedelta(days=1)
    while not is_business_day(day, hours):
        day += timedelta(days=1)
    begins = datetime.combine(day, hours.business_day_starts, tzinfo=hours.timezone)
    return begins.astimezone(start.tzinfo)
