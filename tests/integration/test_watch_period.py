"""Post-Incident "Monitoring: Increased monitoring for 24 hours", live: an alert group whose
incident resolved fires again within the watch period, through the receiver, the real worker
and the fake PagerDuty; the new incident is one step more urgent and links the earlier one."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.store.watch import WatchStore, watch_key
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import post_alert, sample_payload, wait_for

FIRST_NOTE = "Collecting evidence now"


def degraded(test: str, value: str, starts: datetime) -> dict[str, Any]:
    """Return the sample latency group (its key unique to the test) firing since `starts`:
    P2 (performance degradation) under 5 s, P1 over it."""
    payload = sample_payload(groupKey=f'{{}}:{{alertname="SignalLatencyHigh", test="{test}"}}')
    alert = payload["alerts"][0]
    alert["annotations"] = {"summary": f"p99 signal latency is {value}s", "value_seconds": value}
    alert["startsAt"] = starts.isoformat()
    alert["fingerprint"] = f"watch-{test}"
    payload["commonAnnotations"] = alert["annotations"]
    return payload


def resolved(payload: dict[str, Any], ends: datetime) -> dict[str, Any]:
    """Return the same group with its alert resolved at `ends`."""
    done = copy.deepcopy(payload)
    done["status"] = "resolved"
    done["alerts"][0].update(status="resolved", endsAt=ends.isoformat())
    return done


def incident_key(payload: dict[str, Any]) -> str:
    """Return the incident key of a group, as the receiver and Alertmanager derive it."""
    return hashlib.sha256(payload["groupKey"].encode()).hexdigest()


def first_note(pagerduty: FakePagerDuty, incident: str) -> str:
    """Wait for an incident's first note; return it."""
    found = wait_for(
        lambda: [n["content"] for n in pagerduty.notes_for(incident) if FIRST_NOTE in n["content"]],
        timeout=120,
        what=f"the first note on {incident}",
    )
    return str(found[0])


def settled(pagerduty: FakePagerDuty, incident: str, log: Path, delivery_id: str) -> None:
    """Wait for an incident's evidence note and for its `respond` task to have ended (its
    status update and priority follow the first note): nothing of the run posts later, into
    a test after this one."""
    wait_for(
        lambda: any(" evidence: " in n["content"] for n in pagerduty.notes_for(incident)),
        timeout=120,
        what=f"the evidence note on {incident}",
    )
    run = f"{delivery_id}-r1"
    wait_for(
        lambda: any(
            "tasks.pipeline.respond[" in line and "succeeded" in line and f"'{run}'" in line
            for line in log.read_text().splitlines()
        ),
        timeout=120,
        what=f"the respond task of {delivery_id} to end",
    )


def fired(receiver: str, payload: dict[str, Any]) -> str:
    """Post a notification; return its delivery id."""
    answer = post_alert(receiver, payload)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["delivery_id"])


def fire_resolve_fire(
    receiver: str,
    pagerduty: FakePagerDuty,
    log: Path,
    test: str,
    values: tuple[str, str],
    gap: timedelta,
) -> tuple[str, str, str]:
    """Fire a group, resolve it (Alertmanager's end time `gap` before now), fire it again now;
    return the earlier incident, the new one, and the new incident's first note."""
    now = datetime.now(UTC)
    first = degraded(test, values[0], now - gap - timedelta(minutes=30))
    key = incident_key(first)
    earlier = pagerduty.add_incident(key, "[FIRING:1] SignalLatencyHigh")
    settled(pagerduty, earlier, log, fired(receiver, first))
    assert post_alert(receiver, resolved(first, now - gap)).status_code == 202
    wait_for(
        lambda: any(
            "resolved" in n["content"].splitlines()[0].lower() for n in pagerduty.notes_for(earlier)
        ),
        timeout=120,
        what="the resolved note",
    )
    pagerduty.incidents[earlier]["status"] = "resolved"  # PagerDuty opens a new one next
    later = pagerduty.add_incident(key, "[FIRING:1] SignalLatencyHigh")
    delivery_id = fired(receiver, degraded(test, values[1], now))
    note = first_note(pagerduty, later)
    settled(pagerduty, later, log, delivery_id)
    return earlier, later, note


def test_monitoring_a_p2_firing_again_3h_after_its_incident_resolved_is_p1_and_links_it(
    worker: Path,
    receiver: str,
    pagerduty: FakePagerDuty,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    earlier, later, note = fire_resolve_fire(
        receiver, pagerduty, worker, "watch-p2", ("3.1", "3.2"), timedelta(hours=3)
    )
    head = note.splitlines()
    assert head[0].startswith("[P1 (PagerDuty: P2)] ")
    assert head[1] == (
        f"Watch period: fired again 3h after {earlier} was resolved: watch period of 24h, "
        "P2 raised to P1."
    )
    assert head[2].startswith("Why P1: the watch period raised the P2 of performance-degradation")
    assert "acknowledge by" in note and "(15m" in note  # P1's deadlines, not P2's hour
    # PagerDuty shows the raised priority; each incident's timeline links the other.
    wait_for(
        lambda: (pagerduty.incidents[later].get("priority") or {}).get("summary") == "P2",
        timeout=60,
        what="the new incident's PagerDuty priority",
    )
    rt = Runtime(settings)
    assert f"watch period: fired again as {later}" in [
        e["what"] for e in rt.incidents.history(earlier)
    ]
    assert any(
        e["what"].startswith(f"watch period: fired again 3h after {earlier}")
        for e in rt.incidents.history(later)
    )
    # The resolution is kept with a TTL no longer than the watch period (and its margin).
    ttl = redis_client.ttl(watch_key(incident_key(degraded("watch-p2", "1", datetime.now(UTC)))))
    assert 0 < ttl <= int((timedelta(hours=21) + timedelta(minutes=10)).total_seconds())
    assert WatchStore(redis_client).find("no-such-group") is None


@pytest.mark.parametrize(
    ("case", "values", "gap", "first_line", "watch_line"),
    [
        ("a P1 back stays P1: the watch period raises no higher", ("7.2", "7.3"),
         timedelta(hours=2), "[P1 (PagerDuty: P2)] ",
         "stays P1 (the watch period raises no higher than P1)."),
        ("back after 25 hours: outside the watch period, the rules' P2 and no watch line",
         ("3.1", "3.2"), timedelta(hours=25), "[P2 (PagerDuty: P3)] ", None),
    ],
)  # fmt: skip
def test_monitoring_the_raise_has_a_ceiling_and_an_end(
    worker: Path,
    receiver: str,
    pagerduty: FakePagerDuty,
    case: str,
    values: tuple[str, str],
    gap: timedelta,
    first_line: str,
    watch_line: str | None,
) -> None:
    test = "watch-" + case.split(":")[0].replace(" ", "-")
    _, _, note = fire_resolve_fire(receiver, pagerduty, worker, test, values, gap)
    assert note.startswith(first_line), case
    if watch_line is None:
        assert "Watch period" not in note, case
    else:
        assert note.splitlines()[1].endswith(watch_line), case
