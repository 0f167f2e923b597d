"""The controllable clock: a response started at a chosen moment, beat's SLA ticks at chosen
moments, and what the fake PagerDuty received at each, as a timeline a test reads line by line.

The functions called are those the Celery tasks call (`tasks.respond_flow.respond`, `sla_tick`
+ `sla_action`), with `now` passed in instead of read from the clock; only the broker is left
out: the tasks the response queues (its evidence) are kept in a list, and it never retries.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from tasks import respond_flow
from tasks.gateways.pagerduty import PagerDutyUnavailable
from tasks.run.state import RunState, existing_run
from tasks.runtime import Runtime
from tasks.sla import actions, incident_events, watchdog
from tests.fakes.pagerduty import Call, FakePagerDuty
from tests.support import PROJECT
from triage.models import parse_pagerduty

EVENT = json.loads((PROJECT / "examples" / "pagerduty-incident-triggered.json").read_text())
NEW_YORK = ZoneInfo("America/New_York")


def record_trigger(
    rt: Runtime, incident_id: str, title: str, priority: str, at: datetime, urgency: str = "high"
) -> str:
    """Record PagerDuty's incident.triggered webhook as the receiver does, classified `priority`.

    The classification is the receiver's, stored on the delivery, so these tests do not depend
    on which rule gives which title its priority.
    """
    payload = copy.deepcopy(EVENT)
    payload["event"]["id"] = f"evt-{incident_id}"
    payload["event"]["occurred_at"] = at.isoformat()
    payload["event"]["data"].update(
        id=incident_id, title=title, incident_key=f"k-{incident_id}", urgency=urgency
    )
    delivery_id = f"d-{incident_id}"
    classification = {"priority": priority, "rule": "test", "reason": "as the test says"}
    rt.deliveries.record(
        delivery_id=delivery_id,
        source="pagerduty",
        raw_body=json.dumps(payload).encode(),
        headers={},
        dedup_keys=[(delivery_id, "start")],
        fields={"incident_id": incident_id, "classification": classification},
        now=at,
    )
    incident_events.apply_event(rt, parse_pagerduty(payload))  # as the receiver does
    return delivery_id


def record_event(rt: Runtime, incident_id: str, kind: str, at: datetime, by: str = "Dana") -> str:
    """Record PagerDuty's incident.<kind> webhook (acknowledged, resolved, ...) as the receiver
    does, and apply it to the record and the clocks as the receiver does; return its delivery."""
    payload = copy.deepcopy(EVENT)
    status = {"unacknowledged": "triggered", "reopened": "triggered"}.get(kind, kind)
    payload["event"].update(
        id=f"evt-{incident_id}-{kind}-{at.timestamp():.0f}",
        event_type=f"incident.{kind}",
        occurred_at=at.isoformat(),
        agent={"id": "PU1", "type": "user_reference", "summary": by},
    )
    title = (rt.incidents.get(incident_id) or {}).get("title", "EAFIX alert")
    payload["event"]["data"].update(
        id=incident_id, status=status, incident_key=f"k-{incident_id}", title=title
    )
    delivery_id = f"d-{incident_id}-{kind}-{at.timestamp():.0f}"
    rt.deliveries.record(
        delivery_id=delivery_id,
        source="pagerduty",
        raw_body=json.dumps(payload).encode(),
        headers={},
        dedup_keys=[(delivery_id, "-")],
        fields={"incident_id": incident_id},
        now=at,
    )
    incident_events.apply_event(rt, parse_pagerduty(payload))
    return delivery_id


def respond(
    rt: Runtime,
    delivery_id: str,
    now: datetime,
    queued: list[tuple[str, list[Any], str]] | None = None,
) -> RunState:
    """Do what the `respond` task does for a delivery, at `now`: first note, clock, follow-ups.

    The tasks it queues (its evidence) are added to `queued` (name, args, queue), not run.
    """
    sent = queued if queued is not None else []
    carrier = respond_flow.Carrier(
        now=lambda: now,
        send=lambda name, args, queue: sent.append((name, args, queue)),
        owner="test-respond",
        lock_seconds=60,
        retry=_no_retry,
        retry_lookup=_no_lookup_left,
        retry_or_give_up=_raise,
    )
    result = respond_flow.respond(carrier, rt, delivery_id, 1)
    state = existing_run(rt, result)
    assert state is not None, f"the response ended without a run of its own: {result}"
    return state


def _no_retry(countdown: float) -> NoReturn:
    raise AssertionError(f"the response asked to be retried in {countdown} s")


def _no_lookup_left() -> NoReturn:
    raise AssertionError("the response found no PagerDuty incident: record one before it")


def _raise(exc: PagerDutyUnavailable, give_up: Callable[[str], None], **about: str) -> None:
    raise exc  # a failed write fails the test, as it did the response


def tick(rt: Runtime, now: datetime) -> list[str]:
    """Do what beat's `sla_tick` and the `sla_action` tasks do at `now`; return their results."""
    return [
        f"{claim.deadline.kind}: {actions.act(rt, claim.deadline, now)}"
        for claim in rt.clock.claim_due(now)
    ]


def watchdog_tick(rt: Runtime, now: datetime) -> str:
    """Do what beat's `watchdog_check` task does at `now`; return what it did."""
    return watchdog.check(rt, now)


@dataclass
class Timeline:
    """What the fake PagerDuty received, line by line, at the simulated moment of each write."""

    pagerduty: FakePagerDuty
    zone: ZoneInfo = NEW_YORK
    lines: list[str] = field(default_factory=list)
    _seen: int = 0

    def note(self, now: datetime) -> None:
        """Add a line for each write PagerDuty received since the last call, stamped `now`."""
        calls = self.pagerduty.calls[self._seen :]
        self._seen = len(self.pagerduty.calls)
        when = f"{now.astimezone(self.zone):%a %H:%M}"
        self.lines += [f"{when} {what}" for what in map(describe, calls) if what]

    def run(self, rt: Runtime, start: datetime, until: datetime, step: timedelta) -> None:
        """Tick from `start` to `until` (both included) every `step`, noting each tick's writes.

        Ticks at which no deadline is due are skipped: such a tick claims nothing and writes
        nothing, so the timeline is the same as ticking every step, in far fewer ticks (a
        weekend in minutes is 3,000 ticks, with a handful of deadlines in it).
        """
        now = start
        while now <= until:
            tick(rt, now)
            self.note(now)
            now = next_tick(rt, now + step, start, step)


def next_tick(rt: Runtime, now: datetime, start: datetime, step: timedelta) -> datetime:
    """Return the first tick of the grid `start + k * step`, from `now` on, at which a running
    deadline is due (one far past any end when none runs)."""
    pending = [datetime.fromisoformat(d.due) for d in rt.clock.pending()]
    if not pending:
        return datetime.max.replace(tzinfo=now.tzinfo)
    due = min(pending)
    if due <= now:
        return now
    return start + -((start - due) // step) * step  # the grid's first tick at or after `due`


def describe(call: Call) -> str:
    """Say in a few words what a write to PagerDuty did; "" for a read."""
    body: Any = call.body or {}
    if call.method == "GET":
        return ""
    if call.path.endswith("/enqueue"):
        return f"event {body['event_action']} {body['dedup_key']}: {body['payload']['summary']}"
    if call.path.endswith("/notes"):
        return "note: " + body["note"]["content"].splitlines()[0]
    if call.path.endswith("/status_updates"):
        return "status update: " + body["message"].splitlines()[1]
    if call.path.endswith("/responder_requests"):
        return "responder request: " + body["message"]
    changes = body.get("incident", {})
    if "urgency" in changes:
        return f"urgency {changes['urgency']}"
    if "escalation_level" in changes:
        return f"escalation level {changes['escalation_level']}"
    if "priority" in changes:
        return f"priority {changes['priority']['id']}"
    return f"{call.method} {call.path}"
