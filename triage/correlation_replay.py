"""Fold a history of alert groups through the correlation rules into the incidents they make.

Pure: the groups come with the time each arrived and the policy is an argument, so the same
fold answers `responder correlate --since 24h` and a table of tests. Each step asks
`correlate` where a group goes, as a live decision would, and remembers what tied each member in.

A group already in an incident stays in it while any of its alerts fires (Alertmanager resends
it every repeat_interval, with new alerts or resolved ones): its new alerts become members there
without a decision. Once every alert of the group has resolved the group lets go of its
incident, as the receiver does: its next firing alert is placed afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from triage import models
from triage.correlation import JOIN, AlertGroup, Member, OpenIncident, Tie, correlate
from triage.policy import Policy


@dataclass(frozen=True)
class ReplayedMember:
    """One alert of a replayed incident: what it is, when it came in and how it was tied in.

    `tie` is None for the alerts that started the incident and for those that came later in a
    group already in it (`how` says which); `firing` is its state after the last delivery.
    """

    name: str
    service: str
    group: str
    at: datetime
    firing: bool
    how: str
    tie: Tie | None = None
    labels: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ReplayedIncident:
    """An incident the rules would have made: its members, start, last join, probable origin."""

    id: str
    members: tuple[ReplayedMember, ...]
    first_seen: datetime
    last_joined: datetime
    origin: str | None


@dataclass
class _Building:
    id: str
    members: list[ReplayedMember]
    first_seen: datetime
    last_joined: datetime

    def open_view(self) -> OpenIncident:
        members = tuple(Member.of(m.labels or {}, m.firing, m.at) for m in self.members)
        return OpenIncident(self.id, members, self.first_seen, self.last_joined)


def group_of(group: models.AlertGroup) -> AlertGroup:
    """Return an Alertmanager notification as correlation sees it: its key and its alerts."""
    return AlertGroup(
        group.group_key,
        tuple(Member.of(a.labels, a.status == "firing", a.starts_at) for a in group.alerts),
    )


def replay(
    history: Iterable[tuple[datetime, AlertGroup]], policy: Policy
) -> tuple[ReplayedIncident, ...]:
    """Return the incidents `history` (arrival time, group; oldest first) makes under `policy`.

    The policy's rules are applied whatever its mode: off or shadow would act on nothing live,
    and the point of a replay is to see what the rules would do.
    """
    if policy.correlation.mode != "on":
        policy = replace(policy, correlation=replace(policy.correlation, mode="on"))
    incidents: list[_Building] = []
    home: dict[str, _Building] = {}  # group key -> the incident it is in, while it fires
    for at, group in history:
        building = home.get(group.key)
        if building is not None:
            _update(building, group, at)
        elif any(alert.firing for alert in group.alerts):
            building = _place(group, at, incidents, policy)
            home[group.key] = building
        if building is not None and not _group_fires(building, group.key):
            del home[group.key]  # resolved: the group's next alert is placed afresh
    return tuple(_finished(b, policy) for b in incidents)


def _place(
    group: AlertGroup, at: datetime, incidents: list[_Building], policy: Policy
) -> _Building:
    """Start an incident for `group` or add it to the one the rules tie it to."""
    candidates = [b for b in incidents if any(m.firing for m in b.members)]
    decision = correlate(group, [b.open_view() for b in candidates], policy, at)
    if decision.action == JOIN:
        building = next(b for b in candidates if b.id == decision.incident)
        how, tie = decision.why, decision.tie
        building.last_joined = at
    else:
        building = _Building(f"#{len(incidents) + 1}", [], at, at)
        incidents.append(building)
        how, tie = "started the incident", None
    for alert in group.alerts:
        if alert.firing:  # a resolved alert of the group is not a member: it never counts
            building.members.append(_member(alert, group.key, at, how, tie))
    return building


def _update(building: _Building, group: AlertGroup, at: datetime) -> None:
    """Apply a later delivery of a group already in the incident: states, then new alerts."""
    for alert in group.alerts:
        found = [
            n
            for n, m in enumerate(building.members)
            if m.group == group.key and m.labels == alert.labels
        ]
        if found:
            for n in found:
                building.members[n] = replace(building.members[n], firing=alert.firing)
        elif alert.firing:
            how = "came later in a group already in the incident"
            building.members.append(_member(alert, group.key, at, how, None))
            building.last_joined = at


def _member(alert: Member, key: str, at: datetime, how: str, tie: Tie | None) -> ReplayedMember:
    name = alert.labels.get("alertname", "(unnamed alert)")
    return ReplayedMember(name, alert.service, key, at, alert.firing, how, tie, dict(alert.labels))


def _group_fires(building: _Building, key: str) -> bool:
    return any(m.firing for m in building.members if m.group == key)


def _finished(building: _Building, policy: Policy) -> ReplayedIncident:
    services = [m.service for m in building.members if m.service]
    return ReplayedIncident(
        building.id,
        tuple(building.members),
        building.first_seen,
        building.last_joined,
        policy.topology.probable_origin(services),
    )
