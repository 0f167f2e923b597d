"""The runbook's SLA deadlines: wall clock, business days, business hours and market hours."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from triage.models import Priority
from triage.policy import MarketHours, Policy, Span

_MAX_DAYS_SEARCHED = 800  # more than two years: a policy whose market never opens fails loudly
_MOMENTS = ("acknowledge", "respond", "resolve", "next_update", "notify_management")

Intervals = Callable[[date, MarketHours], tuple[tuple[datetime, datetime], ...]]


@dataclass(frozen=True)
class Deadlines:
    """When each of the runbook's promises for one incident falls due.

    `active_from` is when the responder starts acting: the trigger, or for a business-hours-only
    priority raised outside business hours, the next business opening. `next_update` is the
    first status update. `management` is "notify" (a note or responder request at
    `notify_management`) or "summary" (the summary at the opening `notify_management` names).
    `lower_urgency` and `restore_urgency` are when PagerDuty's urgency goes to low (at the
    trigger) and back to high (at the opening), for an incident held for business hours, when
    the policy says so.
    """

    priority: Priority
    triggered_at: datetime
    acknowledge: datetime
    respond: datetime
    resolve: datetime
    next_update: datetime
    notify_management: datetime
    active_from: datetime | None = None  # None: from triggered_at
    management: str = "notify"
    lower_urgency: datetime | None = None
    restore_urgency: datetime | None = None

    @property
    def starts(self) -> datetime:
        """Return when the responder starts acting on the incident."""
        return self.active_from or self.triggered_at

    @property
    def deferred(self) -> bool:
        """Return True when the incident waits for business hours before anything but a note."""
        return self.starts > self.triggered_at

    def to_dict(self) -> dict[str, str]:
        """Return the deadlines as strings: ISO 8601 moments, the priority and management."""
        data = {
            "priority": self.priority.value,
            "triggered_at": self.triggered_at.isoformat(),
            "active_from": self.starts.isoformat(),
            **{name: getattr(self, name).isoformat() for name in _MOMENTS},
            "management": self.management,
        }
        for name in ("lower_urgency", "restore_urgency"):
            if (moment := getattr(self, name)) is not None:
                data[name] = moment.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Deadlines:
        """Rebuild deadlines from `to_dict` output (one an older version wrote, too)."""

        def moment(name: str) -> datetime | None:
            return datetime.fromisoformat(data[name]) if data.get(name) else None

        return cls(
            priority=Priority(data["priority"]),
            triggered_at=datetime.fromisoformat(data["triggered_at"]),
            **{name: datetime.fromisoformat(data[name]) for name in _MOMENTS},
            active_from=moment("active_from"),
            management=data.get("management", "notify"),
            lower_urgency=moment("lower_urgency"),
            restore_urgency=moment("restore_urgency"),
        )


def deadlines(priority: Priority, triggered_at: datetime, policy: Policy) -> Deadlines:
    """Compute every SLA deadline of an incident of `priority` triggered at `triggered_at`.

    A business-hours-only priority's clocks count from its active start, and each of its
    deadlines that falls outside business hours waits for the next business opening.
    """
    if triggered_at.tzinfo is None:
        raise ValueError("triggered_at must carry a time zone")
    targets = policy.sla[priority]
    hours = policy.market_hours
    start = active_from(priority, triggered_at, policy)

    def due(span: Span) -> datetime:
        ends = add_span(start, span, hours)
        # A calendar span is kept where it falls; the others wait for business hours if held.
        return ends if span.calendar_clock else act_at(priority, ends, policy)

    summary = targets.notify_management.summary
    held = policy.business_hours_only.get(priority) if start > triggered_at else None
    lower = held is not None and held.urgency_outside == "low"
    restore = held is not None and held.urgency_at_opening == "high"
    return Deadlines(
        priority=priority,
        triggered_at=triggered_at,
        acknowledge=due(targets.acknowledge),
        respond=due(targets.respond),
        resolve=due(targets.resolve),
        next_update=due(targets.initial_update),
        # The summary of the day the incident started in: at the first opening after it.
        notify_management=next_business_opening(triggered_at, hours)
        if summary
        else due(targets.notify_management),
        active_from=start,
        management="summary" if summary else "notify",
        lower_urgency=triggered_at if lower else None,
        restore_urgency=start if restore else None,
    )


def active_from(priority: Priority, triggered_at: datetime, policy: Policy) -> datetime:
    """Return when the responder starts acting: now, or at the next business opening.

    Only a business-hours-only priority (P2 "Page during business hours", P3 "Handle during
    business hours") raised outside business hours waits.
    """
    if priority not in policy.business_hours_only:
        return triggered_at
    return business_hours_from(triggered_at, policy.market_hours)


def act_at(priority: Priority, moment: datetime, policy: Policy) -> datetime:
    """Return when an action due at `moment` is taken: then, or at the next business opening."""
    return active_from(priority, moment, policy)


def next_status_update(
    priority: Priority, due: datetime, now: datetime, policy: Policy
) -> datetime:
    """Return the status update after the one due at `due`, on the cadence, after `now`.

    On the cadence from the due time, so a late or repeated update does not drift it; updates
    missed while everything was down are not caught up one after another.
    """
    cadence = policy.sla[priority].update_every.duration
    if cadence <= timedelta(0):  # the policy check refuses this; never loop on it
        raise ValueError(f"{priority} update_every is not a positive duration")
    next_at = due + cadence
    while next_at <= now:
        next_at += cadence
    return act_at(priority, next_at, policy)


def add_span(start: datetime, span: Span, hours: MarketHours) -> datetime:
    """Return when `span` counted from `start` ends, in `start`'s time zone."""
    if span.next_business_day:
        return next_business_day_start(start, hours)
    if span.business_days:
        return add_business_days(start, span.business_days, hours)
    if span.market_clock:
        return add_market_time(start, span.duration, hours)
    if span.business_clock:
        return add_business_time(start, span.duration, hours)
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
    return _add_open_time(start, duration, hours, market_intervals, "the market never opens")


@lru_cache(maxsize=64)  # pure, and asked for every deadline of a P2/P3
def business_intervals(day: date, hours: MarketHours) -> tuple[tuple[datetime, datetime], ...]:
    """Return the UTC interval of business hours on local date `day` (none on other days)."""
    if not is_business_day(day, hours):
        return ()
    zone = hours.timezone
    opens = datetime.combine(day, hours.business_day_starts, tzinfo=zone).astimezone(UTC)
    closes = datetime.combine(day, hours.business_day_ends, tzinfo=zone).astimezone(UTC)
    return ((opens, closes),)


def is_business_hours(moment: datetime, hours: MarketHours) -> bool:
    """Return True from a business day's opening to its close, the close included.

    An action due at the close (an hour of business time counted from 16:00) is taken then,
    not at the next opening.
    """
    local_day = moment.astimezone(hours.timezone).date()
    return any(a <= moment <= b for a, b in business_intervals(local_day, hours))


def business_hours_from(moment: datetime, hours: MarketHours) -> datetime:
    """Return `moment` if it is within business hours, else the next business opening."""
    if is_business_hours(moment, hours):
        return moment
    return next_business_opening(moment, hours)


def next_business_opening(moment: datetime, hours: MarketHours) -> datetime:
    """Return the first business opening after `moment`, in `moment`'s time zone."""
    day = moment.astimezone(hours.timezone).date()
    for _ in range(_MAX_DAYS_SEARCHED):
        for opens, _closes in business_intervals(day, hours):
            if opens > moment:
                return opens.astimezone(moment.tzinfo)
        day += timedelta(days=1)
    raise ValueError("business hours never begin under this policy")


def previous_business_opening(moment: datetime, hours: MarketHours) -> datetime:
    """Return the last business opening before `moment`, in `moment`'s time zone."""
    day = moment.astimezone(hours.timezone).date()
    for _ in range(_MAX_DAYS_SEARCHED):
        for opens, _closes in reversed(business_intervals(day, hours)):
            if opens < moment:
                return opens.astimezone(moment.tzinfo)
        day -= timedelta(days=1)
    raise ValueError("business hours never began under this policy")


def add_business_time(start: datetime, duration: timedelta, hours: MarketHours) -> datetime:
    """Return the moment when `duration` of business hours has passed since `start`."""
    return _add_open_time(start, duration, hours, business_intervals, "business hours never begin")


def _add_open_time(
    start: datetime, duration: timedelta, hours: MarketHours, intervals: Intervals, never: str
) -> datetime:
    """Return when `duration` of the time inside `intervals` has passed since `start`."""
    if duration <= timedelta(0):
        return start
    remaining = duration
    cursor = start.astimezone(UTC)
    day = cursor.astimezone(hours.timezone).date()
    for _ in range(_MAX_DAYS_SEARCHED):
        for opened, closed in intervals(day, hours):
            opened = max(opened, cursor)
            if opened >= closed:
                continue
            if closed - opened >= remaining:
                return (opened + remaining).astimezone(start.tzinfo)
            remaining -= closed - opened
        day += timedelta(days=1)
    raise ValueError(f"{never} under this policy")


def is_business_day(day: date, hours: MarketHours) -> bool:
    """Return True for the policy's business days (Monday to Friday), holidays excepted."""
    return day.weekday() in hours.business_days and day not in hours.holidays


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
