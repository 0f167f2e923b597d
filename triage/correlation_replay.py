"""Fold a history of alert groups through the correlation rules into the incidents they make.

Pure: the groups come with the time each arrived and the policy is an argument, so the same
fold answers `responder correlate --since 24h`, a table of tests and, one step at a time, the
live pipeline (`tasks.run.correlating` keeps a `Ledger` in Redis and calls `Ledger.observe` for
each delivery): the live decisions and the replay's are made by the same code. Each step asks
`correlate` where a group goes and remembers what tied each member in.

A group already in an incident stays in it while any of its alerts fires (Alertmanager resends
it every repeat_interval, with new alerts or resolved ones): its new alerts become members there
without a decision. Once every alert of the group has resolved the group lets go of its
incident, as the receiver does: its next firing alert is placed afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from triage import models
from triage.correlation import (
    FLAP,
    JOIN,
    AlertGroup,
    Decision,
    Member,
    OpenIncident,
    Tie,
    correlate,
)
from triage.policy import Policy, format_duration

STARTED = "started the incident"
CAME_LATER = "came later in a group already in the incident"
FIRED_AGAIN = "fired again within the flap window"


@dataclass(frozen=True)
class ReplayedMember:
    """One alert of an incident: what it is, when it came in and how it was tied in.

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

    def to_dict(self) -> dict[str, Any]:
        """Return the member as JSON-ready data."""
        tie = None
        if self.tie is not None:
            tie = {**self.tie.__dict__, "window": self.tie.window.total_seconds()}
            tie["shared"] = [list(pair) for pair in self.tie.shared]
        return {
            "name": self.name,
            "service": self.service,
            "group": self.group,
            "at": self.at.isoformat(),
            "firing": self.firing,
            "how": self.how,
            "tie": tie,
            "labels": dict(self.labels or {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayedMember:
        """Rebuild a member from `to_dict` output."""
        tie = None
        if (raw := data.get("tie")) is not None:
            tie = Tie(
                raw["rule"],
                raw["group_service"],
                raw["member_service"],
                raw["hops"],
                tuple((k, v) for k, v in raw["shared"]),
                timedelta(seconds=raw["window"]),
            )
        return cls(
            data["name"],
            data["service"],
            data["group"],
            datetime.fromisoformat(data["at"]),
            bool(data["firing"]),
            data["how"],
            tie,
            dict(data.get("labels") or {}),
        )


@dataclass(frozen=True)
class ReplayedIncident:
    """An incident the rules would have made: its members, start, last join, probable origin."""

    id: str
    members: tuple[ReplayedMember, ...]
    first_seen: datetime
    last_joined: datetime
    origin: str | None


@dataclass
class LedgerIncident:
    """An incident while it is being built: members so far, start, last join, and what the
    live pipeline keeps with it (`facts`: its run, PagerDuty incident, priority)."""

    id: str
    members: list[ReplayedMember]
    first_seen: datetime
    last_joined: datetime
    facts: dict[str, Any] = field(default_factory=dict)
    left: dict[str, datetime] = field(default_factory=dict)  # group key -> when it resolved
    flaps: dict[str, list[datetime]] = field(default_factory=dict)  # group -> when it came back

    def open_view(self) -> OpenIncident:
        """Return the incident as `correlate` sees it."""
        members = tuple(Member.of(m.labels or {}, m.firing, m.at) for m in self.members)
        return OpenIncident(self.id, members, self.first_seen, self.last_joined)

    def fires(self) -> bool:
        """Return whether any member still fires."""
        return any(m.firing for m in self.members)

    def services(self) -> list[str]:
        """Return the members' catalog services, in the order they came in, once each."""
        return list(dict.fromkeys(m.service for m in self.members if m.service))

    def to_dict(self) -> dict[str, Any]:
        """Return the incident as JSON-ready data."""
        return {
            "id": self.id,
            "members": [m.to_dict() for m in self.members],
            "first_seen": self.first_seen.isoformat(),
            "last_joined": self.last_joined.isoformat(),
            "facts": self.facts,
            "left": {key: at.isoformat() for key, at in self.left.items()},
            "flaps": {key: [at.isoformat() for at in ats] for key, ats in self.flaps.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerIncident:
        """Rebuild an incident from `to_dict` output."""
        return cls(
            data["id"],
            [ReplayedMember.from_dict(m) for m in data["members"]],
            datetime.fromisoformat(data["first_seen"]),
            datetime.fromisoformat(data["last_joined"]),
            dict(data.get("facts") or {}),
            {key: datetime.fromisoformat(at) for key, at in (data.get("left") or {}).items()},
            {
                key: [datetime.fromisoformat(at) for at in ats]
                for key, ats in (data.get("flaps") or {}).items()
            },
        )


@dataclass(frozen=True)
class Observation:
    """What one delivery did: the incident it is in now (None: it started nothing) and, when
    it was placed (a new group with a firing alert), the decision that placed it."""

    incident: LedgerIncident | None
    decision: Decision | None


@dataclass
class Ledger:
    """The incidents built so far and which incident each firing group is in."""

    incidents: list[LedgerIncident] = field(default_factory=list)
    home: dict[str, str] = field(default_factory=dict)  # group key -> incident id

    def find(self, incident_id: str) -> LedgerIncident | None:
        """Return the incident with `incident_id`, if the ledger holds it."""
        return next((i for i in self.incidents if i.id == incident_id), None)

    def observe(
        self, group: AlertGroup, at: datetime, policy: Policy, new_id: Callable[[], str]
    ) -> Observation:
        """Apply one delivery of `group` arriving `at`; a new incident is named by `new_id()`.

        Decisions follow the policy's mode: in shadow mode the decision says so, and the
        ledger still builds the incidents the rules would have made.
        """
        building = self.find(self.home.get(group.key, ""))
        decision = None
        if building is not None:
            _update(building, group, at)
        elif any(alert.firing for alert in group.alerts):
            came_back = self._flapping(group, at, policy)
            building, decision = came_back or self._place(group, at, policy, new_id)
            self.home[group.key] = building.id
        if building is not None and not _group_fires(building, group.key):
            self.home.pop(group.key, None)  # resolved: the group's next alert is placed afresh
            building.left[group.key] = at
        return Observation(building, decision)

    def _flapping(
        self, group: AlertGroup, at: datetime, policy: Policy
    ) -> tuple[LedgerIncident, Decision] | None:
        """Return the incident a group that resolved within the flap window goes back to."""
        window = policy.correlation.flap_window
        if policy.correlation.mode == "off" or window <= timedelta(0):
            return None
        left = [
            b for b in self.incidents if group.key in b.left and at - b.left[group.key] <= window
        ]
        if not left:
            return None
        building = max(left, key=lambda b: b.left[group.key])
        gone = at - building.left.pop(group.key)
        times = [t for t in building.flaps.get(group.key, []) if at - t <= window] + [at]
        building.flaps[group.key] = times
        building.last_joined = at
        _update(building, group, at, FIRED_AGAIN)
        name = next((a.labels.get("alertname", "") for a in group.alerts if a.firing), "the group")
        count = "once" if len(times) == 1 else f"{len(times)} times"
        why = (
            f"flapping: {name} resolved {format_duration(gone)} before and fired again, "
            f"{count} within the {format_duration(window)} flap window"
        )
        shadow = policy.correlation.mode == "shadow"
        return building, Decision(FLAP, why, building.id, None, shadow)

    def _place(
        self, group: AlertGroup, at: datetime, policy: Policy, new_id: Callable[[], str]
    ) -> tuple[LedgerIncident, Decision]:
        """Start an incident for `group` or add it to the one the rules tie it to."""
        candidates = [b for b in self.incidents if b.fires()]
        decision = correlate(group, [b.open_view() for b in candidates], policy, at)
        if decision.action == JOIN:
            building = next(b for b in candidates if b.id == decision.incident)
            how, tie = decision.why, decision.tie
            building.last_joined = at
        else:
            building = LedgerIncident(new_id(), [], at, at)
            self.incidents.append(building)
            how, tie = STARTED, None
        for alert in group.alerts:
            if alert.firing:  # a resolved alert of the group is not a member: it never counts
                building.members.append(_member(alert, group.key, at, how, tie))
        return building, decision

    def forget_before(self, cutoff: datetime) -> None:
        """Drop incidents with no firing member last joined before `cutoff` (kept that long
        so a flapping group can be told it came back)."""
        self.incidents = [b for b in self.incidents if b.fires() or b.last_joined >= cutoff]
        kept = {b.id for b in self.incidents}
        self.home = {key: id for key, id in self.home.items() if id in kept}

    def to_dict(self) -> dict[str, Any]:
        """Return the ledger as JSON-ready data."""
        return {"incidents": [b.to_dict() for b in self.incidents], "home": dict(self.home)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        """Rebuild a ledger from `to_dict` output."""
        return cls(
            [LedgerIncident.from_dict(b) for b in data.get("incidents", [])],
            dict(data.get("home") or {}),
        )


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
    ledger = Ledger()
    for at, group in history:
        ledger.observe(group, at, policy, lambda: f"#{len(ledger.incidents) + 1}")
    return tuple(finished(b, policy) for b in ledger.incidents)


def _update(
    building: LedgerIncident, group: AlertGroup, at: datetime, how: str = CAME_LATER
) -> None:
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
            building.members.append(_member(alert, group.key, at, how, None))
            building.last_joined = at


def _member(alert: Member, key: str, at: datetime, how: str, tie: Tie | None) -> ReplayedMember:
    name = alert.labels.get("alertname", "(unnamed alert)")
    return ReplayedMember(name, alert.service, key, at, alert.firing, how, tie, dict(alert.labels))


def _group_fires(building: LedgerIncident, key: str) -> bool:
    return any(m.firing for m in building.members if m.group == key)


def finished(building: LedgerIncident, policy: Policy) -> ReplayedIncident:
    """Return an incident of the ledger as it stands, with its probable origin."""
    return ReplayedIncident(
        building.id,
        tuple(building.members),
        building.first_seen,
        building.last_joined,
        policy.topology.probable_origin(building.services()),
    )


def symptoms(incident: ReplayedIncident) -> list[str]:
    """Return the incident's alerting services other than its probable origin, in order seen."""
    services = dict.fromkeys(m.service for m in incident.members if m.service)
    return [s for s in services if s != incident.origin]


def tie_text(member: ReplayedMember) -> str:
    """Say how a member came into its incident: the rule, the edge, the shared key, the window."""
    tie = member.tie
    if tie is None:
        return member.how
    parts = [f"rule {tie.rule}"]
    if tie.hops is not None:
        hops = f"{tie.hops} hop{'s' if tie.hops != 1 else ''}"
        parts.append(f"edge {tie.group_service} -> {tie.member_service} ({hops})")
    if tie.shared:
        parts.append("shared " + ", ".join(f"{k}={v}" for k, v in tie.shared))
    parts.append(f"window {format_duration(tie.window)}")
    return ", ".join(parts)
