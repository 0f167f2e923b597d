"""`responder correlate`: replay stored deliveries through the correlation rules, act on nothing.

The operator's way to trust the rules before they act (issue 25, item 9): the Alertmanager
deliveries of a period, in arrival order, folded by `triage.correlation_replay` into the
incidents the policy in force would have made, whatever its correlation mode.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

from tasks.cli.options import runtime_or_usage_error, window_start
from tasks.cli.terminal import say
from tasks.run.state import existing_run
from tasks.runtime import Runtime
from tasks.store.correlation import CorrelationLedger
from triage.correlation import AlertGroup, Tie
from triage.correlation_replay import (
    ReplayedIncident,
    ReplayedMember,
    finished,
    group_of,
    replay,
    symptoms,
    tie_text,
)
from triage.models import PayloadError, parse_alertmanager
from triage.policy import format_duration


@dataclass(frozen=True)
class History:
    """The period's Alertmanager notifications, oldest first, and those that could not be read."""

    groups: tuple[tuple[datetime, AlertGroup], ...]
    unreadable: tuple[tuple[str, str], ...]  # (delivery id, why)


def read_history(runtime: Runtime, since: datetime | None) -> History:
    """Return the stored Alertmanager deliveries received since `since`, in arrival order."""
    groups: list[tuple[datetime, AlertGroup]] = []
    unreadable: list[tuple[str, str]] = []
    for delivery in _alertmanager_deliveries(runtime, since):
        try:
            received = datetime.fromisoformat(delivery["received_at"])
            group = parse_alertmanager(json.loads(delivery["raw_body"]))
        except (KeyError, TypeError, ValueError, PayloadError) as exc:
            unreadable.append((delivery["id"], f"stored delivery no longer parses: {exc}"))
            continue
        groups.append((received, group_of(group)))
    # The index is ordered by arrival already; sorting keeps the fold's order explicit.
    groups.sort(key=lambda pair: pair[0])
    return History(tuple(groups), tuple(unreadable))


def _alertmanager_deliveries(runtime: Runtime, since: datetime | None) -> Iterator[dict[str, Any]]:
    for delivery_id in runtime.deliveries.list_ids(since):
        delivery = runtime.deliveries.get(delivery_id)
        if delivery is not None and delivery.get("source") == "alertmanager":
            yield delivery


def tie_fields(tie: Tie | None) -> dict[str, Any] | None:
    """Return what tied a member in, for --json: rule, edge, hops, shared key values, window."""
    if tie is None:
        return None
    return {
        "rule": tie.rule,
        "service": tie.group_service,
        "tied_to": tie.member_service,
        "hops": tie.hops,
        "shared": dict(tie.shared),
        "window": format_duration(tie.window),
    }


def member_fields(member: ReplayedMember) -> dict[str, Any]:
    """Return one member of a replayed incident, for --json."""
    return {
        "alert": member.name,
        "service": member.service or None,
        "at": member.at.isoformat(),
        "firing": member.firing,
        "group": member.group,
        "how": member.how,
        "tie": tie_fields(member.tie),
    }


def incident_fields(incident: ReplayedIncident) -> dict[str, Any]:
    """Return one replayed incident, for --json."""
    return {
        "id": incident.id,
        "first_seen": incident.first_seen.isoformat(),
        "last_joined": incident.last_joined.isoformat(),
        "origin": incident.origin,
        "symptoms": symptoms(incident),
        "members": [member_fields(m) for m in incident.members],
    }


def _print_incident(incident: ReplayedIncident) -> None:
    count = len(incident.members)
    # Times as the delivery log stores them, in UTC; a 24 h window can cross midnight.
    began, joined = incident.first_seen, incident.last_joined
    span = f"began {began:%Y-%m-%d %H:%M:%S}, last joined {joined:%m-%d %H:%M:%S}"
    say(f"incident {incident.id}: {count} member{'s' if count != 1 else ''}, {span} UTC")
    if incident.origin:
        downstream = ", ".join(symptoms(incident)) or "none"
        say(f"  probable origin: {incident.origin}; downstream symptoms: {downstream}")
    else:
        say("  probable origin: unknown (no member names a catalog service)")
    for m in incident.members:
        state = "firing" if m.firing else "resolved"
        service = m.service or "(no service)"
        say(f"  {m.at:%m-%d %H:%M:%S}  {m.name:<28} {service:<18} {state:<8}  {tie_text(m)}")


@click.command("correlate")
@click.option(
    "--since", default="24h", show_default=True, help="Replay deliveries received in this window."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--live",
    is_flag=True,
    help="Show the incidents correlation holds now (what it decided live), not a replay.",
)
def correlate_command(since: str, as_json: bool, live: bool) -> None:
    """Replay stored Alertmanager deliveries through the correlation rules; act on nothing."""
    start = window_start(since)
    runtime = runtime_or_usage_error()
    policy = runtime.policy
    if live:
        _print_live(runtime, as_json)
        return
    history = read_history(runtime, start)
    incidents = replay(history.groups, policy)
    if as_json:
        say(
            json.dumps(
                {
                    "policy": policy.source,
                    "mode": policy.correlation.mode,
                    "since": start.isoformat() if start else None,
                    "deliveries": len(history.groups),
                    "unreadable": [{"id": i, "why": why} for i, why in history.unreadable],
                    "incidents": [incident_fields(i) for i in incidents],
                },
                indent=2,
            )
        )
    else:
        say(
            f"policy {policy.source} (correlation mode {policy.correlation.mode}; "
            "replayed by its rules whatever the mode)"
        )
        made = f"{len(incidents)} incident{'s' if len(incidents) != 1 else ''}"
        say(f"{len(history.groups)} Alertmanager deliveries in the last {since}: {made}")
        for incident in incidents:
            say()
            _print_incident(incident)
        for delivery_id, why in history.unreadable:
            say(f"skip {delivery_id}: {why}", err=True)
    # As `responder replay`: a delivery of the period that could not be replayed fails the run.
    if history.unreadable:
        raise SystemExit(1)


def _print_live(runtime: Runtime, as_json: bool) -> None:
    """Print the live ledger: each incident correlation holds, its members and their ties."""
    policy = runtime.policy
    held = CorrelationLedger(runtime.redis).read().incidents
    incidents = [finished(b, policy) for b in held]
    pagerduty = {b.id: _pagerduty_id(runtime, b.id) for b in held}
    if as_json:
        fields = [{**incident_fields(i), "pagerduty": pagerduty[i.id]} for i in incidents]
        say(json.dumps({"mode": policy.correlation.mode, "incidents": fields}, indent=2))
        return
    made = f"{len(incidents)} incident{'s' if len(incidents) != 1 else ''}"
    say(f"correlation mode {policy.correlation.mode}: {made} held live (the last 4 h at most)")
    for incident in incidents:
        say()
        _print_incident(incident)
        say(f"  PagerDuty incident: {pagerduty[incident.id] or 'not known yet'}")


def _pagerduty_id(runtime: Runtime, run_id: str) -> str:
    run = existing_run(runtime, run_id)
    return (run.incident_id or "") if run is not None else ""
