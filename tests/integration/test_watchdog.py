"""Watching the watcher: Watchdog arrivals are noted, never an incident; a silence pages once.

The receiver is the real one, Redis is real and the page goes through the Events API to the
fake PagerDuty; beat's check runs on the controllable clock (tests/support/clock.py).
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml

from demo.world import OWN_RULES, WATCHDOG_RULES, binary, rules_text
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.sla.watchdog import DEDUP_KEY
from tasks.store.deliveries import INDEX_KEY
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, sample_payload
from tests.support.clock import NEW_YORK, Timeline, watchdog_tick
from webhooks import create_app

pytestmark = pytest.mark.integration

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Return a moment of the first week of March 2027 in New York (1st: a Monday)."""
    return datetime(2027, 3, day, hour, minute, tzinfo=NEW_YORK)


@pytest.fixture
def watched(
    settings: Settings, test_policy: Path, pagerduty: FakePagerDuty, tmp_path: Path
) -> Settings:
    """Return settings whose policy watches the Watchdog (5m, market hours only)."""
    policy = yaml.safe_load(test_policy.read_text())
    policy["watchdog"] = {"interval": "5m", "market_hours_only": True}
    path = tmp_path / "watchdog.yaml"
    path.write_text(yaml.safe_dump(policy))
    return replace(
        settings,
        policy_path=str(path),
        pagerduty_routing_key=Secret("R" * 32),
        pagerduty_events_url=pagerduty.base_url,
        queue="responder-watchdog-test",
    )


def watchdog_group(status: str = "firing", **extra: str) -> dict[str, object]:
    payload = sample_payload(groupKey='{}/{alertname="Watchdog"}:{alertname="Watchdog"}', **extra)
    for alert in payload["alerts"]:
        alert["labels"] = {"alertname": "Watchdog", "severity": "none"}
        alert["status"] = status
    payload["status"] = status
    return payload


def test_a_watchdog_alert_is_noted_and_never_becomes_a_delivery_or_a_page(
    watched: Settings, pagerduty: FakePagerDuty, redis_client: redis.Redis
) -> None:
    client = create_app(watched).test_client()
    answer = client.post("/webhooks/alertmanager", json=watchdog_group(), headers=BEARER)
    assert answer.status_code == 202
    assert answer.get_json()["watchdog"] is True
    rt = Runtime(watched)
    assert rt.watchdog.last_seen() is not None and rt.watchdog.arrivals() == 1
    assert redis_client.zcard(INDEX_KEY) == 0  # no delivery, so no run, no incident
    ready = client.get("/readyz").get_json()["checks"]
    assert ready["record_deliveries"] == "ok" and ready["last_watchdog"] != "none yet"
    # A resolved Watchdog (Prometheus stopped evaluating it) is no sign of life.
    resolved = client.post(
        "/webhooks/alertmanager", json=watchdog_group("resolved"), headers=BEARER
    )
    assert resolved.status_code == 202 and rt.watchdog.arrivals() == 1
    assert pagerduty.calls == []


def test_a_silent_pipeline_pages_once_through_the_events_api_during_market_hours(
    watched: Settings, pagerduty: FakePagerDuty, redis_client: redis.Redis
) -> None:
    rt = Runtime(watched)
    timeline = Timeline(pagerduty)
    rt.watchdog.watching_since(at(1, 0))
    rt.watchdog.arrived(at(2, 10))  # Tuesday, the market open
    results = []
    for moment in (at(2, 10, 4), at(2, 10, 5), at(2, 10, 6), at(2, 10, 6)):  # twice at 10:06
        results.append(watchdog_tick(rt, moment))
        timeline.note(moment)
    rt.watchdog.arrived(at(2, 10, 7))  # the pipeline is back
    for moment in (at(2, 10, 8), at(2, 10, 12)):
        results.append(watchdog_tick(rt, moment))
        timeline.note(moment)
    assert results == [
        "heard within the interval",
        "silent for 5m: paged",
        "silent; already paged",
        "silent; already paged",
        "heard within the interval",
        "silent for 5m: paged",  # a new silence, after the Watchdog came back
    ]
    page = (
        f"event trigger {DEDUP_KEY}: [P1 (PagerDuty: P2)] The monitoring pipeline is silent: "
        "no Watchdog alert for 5m"
    )
    assert [line.split(" (since")[0] for line in timeline.lines] == [
        f"Tue 10:05 {page}",
        f"Tue 10:12 {page}",
    ]
    assert {event["payload"]["severity"] for event in pagerduty.events} == {"error"}


def test_a_silence_after_the_close_pages_at_the_next_open_and_not_before(
    watched: Settings, pagerduty: FakePagerDuty, redis_client: redis.Redis
) -> None:
    rt = Runtime(watched)
    timeline = Timeline(pagerduty)
    rt.watchdog.watching_since(at(1, 0))
    rt.watchdog.arrived(at(5, 16, 58))  # Friday, two minutes before the close
    moment = at(5, 17, 0)
    while moment <= at(7, 17, 30):  # every half hour until Sunday's open and after
        watchdog_tick(rt, moment)
        timeline.note(moment)
        moment += timedelta(minutes=30)
    assert [line[:9] for line in timeline.lines] == ["Sun 17:00"]
    [event] = pagerduty.events
    assert "no Watchdog alert for 48h2m (since 21:58 UTC)" in event["payload"]["summary"]


def test_the_watchdog_rules_of_the_examples_and_the_demo_pass_promtool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EAFIX's rules without a Watchdog: the demo world adds the examples' one.
    without = tmp_path / "eafix-rules.yml"
    without.write_text("groups: [{name: g, rules: [{alert: RiskManagerDown, expr: 'up == 0'}]}]\n")
    monkeypatch.setenv("RESPONDER_EAFIX_RULES", str(without))
    world_rules = tmp_path / "world-rules.yml"
    world_rules.write_text(rules_text())
    alerts = [
        r["alert"] for g in yaml.safe_load(world_rules.read_text())["groups"] for r in g["rules"]
    ]
    assert alerts == ["RiskManagerDown", "Watchdog"]
    promtool = str(Path(binary("prometheus")).with_name("promtool"))
    files = [str(WATCHDOG_RULES), str(OWN_RULES), str(world_rules)]
    result = subprocess.run([promtool, "check", "rules", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
