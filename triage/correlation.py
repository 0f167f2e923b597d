"""Decide whether a new alert group joins an open incident or starts its own.

Pure: the open incidents are plain data and `now` is an argument; nothing here reads Redis or
the clock, so the same function serves live decisions, shadow mode and a replay of history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from triage.classify import service_of
from triage.policy import CorrelationRule, Policy, format_duration
from triage.topology import Topology

JOIN = "join"
NEW = "new"
FLAP = "flap"  # a group that resolved came back within the flap window: to its own incident


@dataclass(frozen=True)
class Member:
    """One alert, of an open incident or of a new group: its service, labels and state."""

    service: str  # the catalog service it names, "" when none
    labels: Mapping[str, str]
    firing: bool
    first_seen: datetime | None = None

    @classmethod
    def of(cls, labels: Mapping[str, str], firing: bool, first_seen: datetime | None = None):
        """Return the member for an alert's labels, its service read as classification does."""
        return cls(service_of(labels), dict(labels), firing, first_seen)


@dataclass(frozen=True)
class AlertGroup:
    """A new alert group (or PagerDuty incident) to place: its key and its alerts."""

    key: str
    alerts: tuple[Member, ...]


@dataclass(frozen=True)
class OpenIncident:
    """An open incident as correlation sees it: its members, when it began, when last joined."""

    id: str
    members: tuple[Member, ...]
    first_seen: datetime
    last_joined: datetime


@dataclass(frozen=True)
class Tie:
    """What tied a group to an incident: the rule, the two alerts' services, the topology hops
    between them (None when the rule ties by shared labels alone), the shared label values and
    the window."""

    rule: str
    group_service: str
    member_service: str
    hops: int | None
    shared: tuple[tuple[str, str], ...]
    window: timedelta


@dataclass(frozen=True)
class Decision:
    """`join` an incident (with the tie) or start a `new` one (with why nothing matched).

    `shadow`: the policy's correlation runs in shadow mode, so nobody acts on the decision.
    """

    action: str
    why: str
    incident: str = ""
    tie: Tie | None = None
    shadow: bool = False


def correlate(
    group: AlertGroup, incidents: Sequence[OpenIncident], policy: Policy, now: datetime
) -> Decision:
    """Return whether `group` joins one of the open `incidents` under the policy's rules, at `now`.

    Of several incidents it could join, the closest on the topology wins, then the oldest
    (the one a person has been handling longest).
    """
    settings = policy.correlation
    shadow = settings.mode == "shadow"
    if settings.mode == "off":
        return Decision(NEW, "correlation is off")
    firing = [alert for alert in group.alerts if alert.firing]
    if not firing:
        return Decision(
            NEW, "no alert of the group is firing (resolved alerts never join)", shadow=shadow
        )
    topology = policy.topology
    reasons: list[str] = []
    best: tuple[tuple[int, datetime, int], OpenIncident, Tie] | None = None
    for order, rule in enumerate(settings.rules):
        applying, why_not = _applying(rule, firing)
        if not applying:
            reasons.append(f"{rule.name}: {why_not}")
            continue
        for incident in incidents:
            tie, why_not = _tie(rule, applying, incident, topology, now)
            if tie is None:
                reasons.append(f"{rule.name}: {incident.id} {why_not}")
                continue
            rank = (tie.hops or 0, incident.first_seen, order)
            if best is None or rank < best[0]:
                best = (rank, incident, tie)
    if best is not None:
        _, incident, tie = best
        return Decision(JOIN, _joined(incident, tie, now), incident.id, tie, shadow)
    if not settings.rules:
        reasons.append("the policy has no correlation rules")
    elif not incidents:
        reasons.append("no incident is open")
    return Decision(NEW, "; ".join(reasons), shadow=shadow)


def _matches(rule: CorrelationRule, labels: Mapping[str, str]) -> bool:
    return all(matcher.matches(labels.get(name)) for name, matcher in rule.match)


def _applying(rule: CorrelationRule, firing: Sequence[Member]) -> tuple[list[Member], str]:
    """Return the firing alerts the rule applies to, or none and why not."""
    matching = [alert for alert in firing if _matches(rule, alert.labels)]
    if not matching:
        return [], "no firing alert of the group matches"
    keyed = [a for a in matching if all(key in a.labels for key in rule.group_by)]
    if not keyed:
        # Never a catch-all bucket: an alert without the key is not grouped by this rule.
        missing = sorted({k for a in matching for k in rule.group_by if k not in a.labels})
        return [], f"the matching alerts lack the group key {', '.join(missing)}: not applied"
    return keyed, ""


def _tie(
    rule: CorrelationRule,
    applying: Sequence[Member],
    incident: OpenIncident,
    topology: Topology,
    now: datetime,
) -> tuple[Tie | None, str]:
    """Return the closest tie between the group's alerts and the incident's firing members."""
    age = now - incident.first_seen
    if age >= rule.max_lifetime:
        return None, (
            f"began {format_duration(age)} ago, at or past the max_lifetime "
            f"{format_duration(rule.max_lifetime)}: a new incident starts"
        )
    idle = now - incident.last_joined
    if idle > rule.window:
        return None, (
            f"was last joined {format_duration(idle)} ago, outside the "
            f"{format_duration(rule.window)} window"
        )
    ties: list[Tie] = []
    related: set[int] = set()  # the incident's members that count toward min_firing
    for number, member in enumerate(incident.members):
        if not member.firing or not _matches(rule, member.labels):
            continue  # resolved members never count
        for alert in applying:
            shared = tuple((key, alert.labels[key]) for key in rule.group_by)
            if any(member.labels.get(key) != value for key, value in shared):
                continue
            hops = None
            if rule.max_distance is not None:
                hops = _distance(rule, alert, member, topology)
                if hops is None or hops > rule.max_distance:
                    continue
            related.add(number)
            ties.append(Tie(rule.name, alert.service, member.service, hops, shared, rule.window))
    if not ties:
        return None, "has no firing member related to the group" + _how(rule)
    if len(related) < rule.min_firing:
        return None, (
            f"has {len(related)} related firing member{'s' if len(related) != 1 else ''}, "
            f"fewer than min_firing {rule.min_firing}"
        )
    return min(ties, key=lambda t: (t.hops or 0, t.member_service, t.group_service)), ""


def _distance(
    rule: CorrelationRule, alert: Member, member: Member, topology: Topology
) -> int | None:
    """Return the hops between two alerts: 0 when either is about the whole flow."""
    if rule.everywhere and any(
        all(matcher.matches(a.labels.get(name)) for name, matcher in rule.everywhere)
        for a in (alert, member)
    ):
        return 0
    return topology.distance(alert.service, member.service)


def _how(rule: CorrelationRule) -> str:
    parts = []
    if rule.group_by:
        parts.append(f"sharing {', '.join(rule.group_by)}")
    if rule.max_distance is not None:
        parts.append(f"within {rule.max_distance} hop{'s' if rule.max_distance != 1 else ''}")
    return f" ({' and '.join(parts)})" if parts else ""


def _joined(incident: OpenIncident, tie: Tie, now: datetime) -> str:
    """Say why the group joined, for the notes and the record."""
    parts = [f"joins {incident.id} by rule {tie.rule}"]
    if tie.hops is not None and not (tie.group_service and tie.member_service):
        parts.append("an alert about the whole flow is related to every service")
    elif tie.hops is not None:
        edge = f"{tie.group_service} is {tie.hops} hop"
        edge += f"{'s' if tie.hops != 1 else ''} from {tie.member_service}, firing in it"
        parts.append(edge)
    if tie.shared:
        parts.append("shared " + ", ".join(f"{k}={v}" for k, v in tie.shared))
    idle = now - incident.last_joined
    when = f"{format_duration(idle)} ago" if idle >= timedelta(seconds=1) else "just now"
    parts.append(f"last joined {when}, within the {format_duration(tie.window)} window")
    return "; ".join(parts)
