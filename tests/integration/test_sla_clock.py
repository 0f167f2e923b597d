"""The SLA deadline index in real Redis: register, list, cancel, and claim exactly once."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from tasks.cli import main
from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.sla import incident_events
from tasks.store.sla_clock import (
    CLAIMED_KEY,
    INDEX_KEY,
    Deadline,
    SlaClock,
    deadlines_for,
    left,
)
from tests.integration.test_pagerduty_webhook import EVENT, event, post
from triage.models import Priority, parse_pagerduty
from triage.policy import builtin
from triage.sla import deadlines
from webhooks import create_app

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def clock_for(redis_client) -> SlaClock:
    return SlaClock(redis_client)


def p1_deadlines(incident: str) -> list[Deadline]:
    due = deadlines(Priority.P1, T0, builtin()).to_dict()
    return deadlines_for(incident, "run-1", "SignalLatencyHigh", due)


def test_registered_deadlines_list_soonest_first_and_cancel(redis_client) -> None:
    clock = clock_for(redis_client)
    clock.register(p1_deadlines("PINC1"))
    kinds = [d.kind for d in clock.pending()]
    # P1: the first status update at once; acknowledge 15m; respond and management at 30m;
    # resolve last.
    assert kinds == ["next_update", "acknowledge", "notify_management", "respond", "resolve"]
    assert clock.cancel("PINC1", ["acknowledge"]) == 1
    assert [d.kind for d in clock.pending()][:2] == ["next_update", "notify_management"]
    assert clock.cancel("PINC1") == 4
    assert clock.pending() == []


def test_each_due_deadline_is_claimed_exactly_once_by_competing_ticks(redis_client) -> None:
    clock = clock_for(redis_client)
    for n in range(50):
        clock.register(p1_deadlines(f"PINC{n}"))
    claims: list[list[Deadline]] = []
    now = T0 + timedelta(minutes=31)  # past acknowledge, respond and the first update
    ticks = [
        threading.Thread(target=lambda: claims.append(clock.claim_due(now, limit=1000)))
        for _ in range(4)
    ]
    for tick in ticks:
        tick.start()
    for tick in ticks:
        tick.join()
    claimed = [c.deadline.member for batch in claims for c in batch]
    assert len(claimed) == len(set(claimed)) == 50 * 4  # acknowledge, respond, next_update, mgmt
    assert {m.split("|")[1] for m in claimed} == {
        "acknowledge",
        "respond",
        "next_update",
        "notify_management",
    }
    assert clock.claim_due(now) == []
    assert len(clock.pending()) == 50  # the resolve deadlines are still running


def acknowledge_of(incident: str) -> list[Deadline]:
    return [d for d in p1_deadlines(incident) if d.kind == "acknowledge"]


def test_a_claim_whose_tick_died_is_taken_back_once_after_the_lease(redis_client) -> None:
    clock = clock_for(redis_client)
    clock.register(acknowledge_of("PINC1") + acknowledge_of("PINC2"))
    now = T0 + timedelta(minutes=16)
    claimed = clock.claim_due(now)  # both acknowledge deadlines
    assert [c.deadline.incident_id for c in claimed] == ["PINC1", "PINC2"]
    clock.release([claimed[0]])  # the tick enqueued PINC1's action, then died
    assert clock.reclaim_stale(now + timedelta(seconds=59), lease=60) == []
    later = now + timedelta(seconds=61)
    first = clock.reclaim_stale(later, lease=60)
    assert [(c.deadline.incident_id, c.deadline.kind) for c in first] == [("PINC2", "acknowledge")]
    assert first[0] == claimed[1]
    # Taken back means claimed afresh: a competing tick in the same lease gets nothing.
    assert clock.reclaim_stale(later, lease=60) == []
    clock.release(first)
    assert clock.reclaim_stale(later + timedelta(minutes=5), lease=60) == []


def test_a_deadline_another_version_wrote_is_dropped_loudly(redis_client, caplog) -> None:
    clock = clock_for(redis_client)
    clock.register(acknowledge_of("PINC1"))
    redis_client.zadd(INDEX_KEY, {"PODD|acknowledge": T0.timestamp()})
    redis_client.set("responder:deadline:PODD|acknowledge", '{"incident": "PODD", "new": 1}')
    newer = {**asdict(p1_deadlines("PNEW")[0]), "escalation_policy": "PEP1"}  # a later field
    redis_client.zadd(INDEX_KEY, {"PNEW|acknowledge": T0.timestamp()})
    redis_client.set("responder:deadline:PNEW|acknowledge", json.dumps(newer))
    claimed = clock.claim_due(T0 + timedelta(minutes=16))
    assert sorted(c.deadline.incident_id for c in claimed) == ["PINC1", "PNEW"]
    assert "dropping an SLA deadline that cannot be read" in caplog.text
    clock.release(claimed)
    assert redis_client.zcard(CLAIMED_KEY) == 0


def test_left_says_how_long_is_left_or_how_long_ago() -> None:
    deadline = Deadline("P", "acknowledge", (T0 + timedelta(minutes=95)).isoformat(), "P1")
    assert left(deadline, T0) == "in 1h35m"
    assert left(deadline, T0 + timedelta(minutes=100)) == "5m ago"


def test_pagerduty_acknowledged_stops_the_acknowledge_clock_and_resolved_all_but_management(
    intake_settings: Settings, redis_client
) -> None:
    from tasks.settings import Secret
    from tests.integration.test_pagerduty_webhook import SECRET

    client = create_app(
        replace(intake_settings, pagerduty_webhook_secrets=(Secret(SECRET),))
    ).test_client()
    incident = EVENT["event"]["data"]["id"]
    clock = clock_for(redis_client)
    clock.register(p1_deadlines(incident))
    post(client, event("incident.acknowledged", status="acknowledged"), webhook_id="wh-ack")
    assert "acknowledge" not in [d.kind for d in clock.pending()]
    post(client, event("incident.resolved", status="resolved"), webhook_id="wh-res")
    # "P1 incidents: Within 30 minutes": management still hears of it (a resolution summary).
    assert [d.kind for d in clock.pending()] == ["notify_management"]


def test_responder_sla_lists_running_clocks(settings: Settings, redis_client, monkeypatch) -> None:
    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    assert CliRunner().invoke(main, ["sla"]).output == "no running SLA clocks\n"
    clock_for(redis_client).register(p1_deadlines("PINC9"))
    rows = json.loads(CliRunner().invoke(main, ["sla", "--json"]).output)
    assert [r["kind"] for r in rows][:2] == ["next_update", "acknowledge"]
    assert rows[0]["left"].endswith("ago")  # T0 is in the past
    human = CliRunner().invoke(main, ["sla"]).output
    assert human.startswith("PINC9        P1  next_update        2026-11-25 15:00 UTC")


def test_an_older_event_arriving_late_does_not_stop_a_later_cycles_clocks(
    settings: Settings, redis_client
) -> None:
    rt = Runtime(settings)
    resolved = event("incident.resolved", id="PLATE", status="resolved")
    resolved["event"]["occurred_at"] = "2026-11-25T15:30:00Z"
    reopened = event("incident.reopened", id="PLATE", status="triggered", event_id=2)
    reopened["event"]["occurred_at"] = "2026-11-25T16:00:00Z"
    assert incident_events.apply_event(rt, parse_pagerduty(resolved))
    assert incident_events.apply_event(rt, parse_pagerduty(reopened))
    rt.clock.register(p1_deadlines("PLATE"))  # the reopened cycle's clocks
    # PagerDuty retries the old resolved event, or an operator replays it.
    assert not incident_events.apply_event(rt, parse_pagerduty(resolved))
    assert len(rt.clock.pending()) == 5
    assert rt.incidents.get("PLATE")["status"] == "triggered"
