"""Scenario end to end: inject a failure in the simulator; Prometheus fires, Alertmanager delivers
to the responder and opens the incident on the fake PagerDuty; both notes arrive with the
priority the runbook gives."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from demo.world import World
from tests.support import named, wait_for
from triage.policy import builtin
from triage.sla import is_market_open


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[World]:
    # The tests' own Redis database (RESPONDER_TEST_REDIS_URL), no other: the world has its
    # own queue, clears the responder's keys when it starts and is stopped before the next
    # module's tests, whose fixtures clear them again.
    started = World(tmp_path_factory.mktemp("world"), redis_url).start()
    yield started
    started.stop()


def test_the_world_uses_the_redis_the_tests_are_given(world: World, redis_url: str) -> None:
    assert world.redis_url == redis_url
    assert world.env["RESPONDER_REDIS_URL"] == redis_url


def _bundle_id(evidence: str) -> str:
    return re.search(r"\(bundle ([^)]+)\)", evidence).group(1)


def incident_notes(world: World, alert: str) -> list[dict] | None:
    """Return the notes of the incident Alertmanager opened for `alert`, once there are two."""
    for incident_id, incident in list(world.pagerduty.incidents.items()):
        if re.search(rf"\b{alert}\b", incident["title"]):
            notes = world.pagerduty.notes_for(incident_id)
            if len(notes) >= 2:
                return notes
    return None


@pytest.mark.parametrize(
    ("scenario", "alert", "priority", "unhealthy"),
    [
        ("service-down", "TradingServiceDown", "P1", "execution-engine down"),
        ("signal-latency", "SignalLatencyHigh", "P1", "signal-generator degraded"),
        ("checksum-mismatch", "PositionChecksumMismatch", "P0", "risk-manager degraded"),
        # A spike of failed logins, no evidence of exploitation: suspicious activity.
        ("auth-spike", "AuthFailureSpike", "P1", "6/6 services healthy"),
    ],
    ids=["outage", "latency", "data-corruption", "security"],
)
def test_scenario_reaches_pagerduty_with_the_runbook_priority(
    world: World, scenario: str, alert: str, priority: str, unhealthy: str
) -> None:
    world.simulator.clear()
    world.inject(scenario)
    try:
        notes = wait_for(
            lambda: incident_notes(world, alert), timeout=55, what=f"{alert} notes on PagerDuty"
        )
    finally:
        world.simulator.clear()
    first, evidence = notes[0]["content"], notes[1]["content"]
    assert first.startswith(f"[{named(priority)}] {alert}"), first
    assert evidence.startswith(f"[{named(priority)}] {alert} evidence:"), evidence
    assert unhealthy in evidence
    # The Prometheus series of the failing metric: the alert's own expression, saved and drawn.
    assert "alert expression now" in evidence
    bundle = world.directory / "bundles" / _bundle_id(evidence)
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(c for c in manifest["collectors"] if c["name"] == "prometheus")
    assert entry["status"] == "ok"
    assert {"prometheus/q0.json", "prometheus/q0.csv", "prometheus/q0.png"} <= set(entry["files"])
    assert (bundle / "prometheus" / "q0.png").read_bytes().startswith(b"\x89PNG")
    # Drawn with the threshold of the rule Prometheus has by the alert's name, and its start.
    (plot, *_) = entry["plots"]
    assert plot["file"] == "prometheus/q0.png" and plot["alert_start"] is not None
    assert plot["threshold"]["source"] == f"Prometheus rule {manifest['title'].split(':')[0]}"
    assert any(c["name"] == "trading" for c in manifest["collectors"])
    assert world.pagerduty.rejected() == [], "calls PagerDuty's OpenAPI spec rejects"


def test_stale_market_data_is_p1_only_while_the_market_trades(world: World) -> None:
    # The world runs on the wall clock: the runbook's answer depends on when the test runs.
    market_open = is_market_open(datetime.now(UTC), builtin().market_hours)
    priority, when = ("P1", "during") if market_open else ("P3", "outside")
    world.simulator.clear()
    world.inject("stale-market-data")
    try:
        notes = wait_for(
            lambda: incident_notes(world, "MarketDataStale"), timeout=55, what="MarketDataStale"
        )
    finally:
        world.simulator.clear()
    first, evidence = notes[0]["content"], notes[1]["content"]
    assert first.startswith(f"[{named(priority)}] MarketDataStale"), first
    assert f"category=market-data; {when} market hours" in first.splitlines()[1]
    assert evidence.startswith(f"[{named(priority)}] MarketDataStale evidence:"), evidence
    assert "data-ingestor degraded" in evidence


def test_the_health_check_fails_when_a_service_is_degraded(world: World) -> None:
    # Evidence counts a degraded service as a finding, not as a passed check.
    world.simulator.clear()
    world.inject("reconciliation-failure")
    try:
        notes = wait_for(
            lambda: incident_notes(world, "PositionReconciliationFailed"),
            timeout=55,
            what="PositionReconciliationFailed notes",
        )
    finally:
        world.simulator.clear()
    evidence = notes[1]["content"]
    assert evidence.startswith(
        "[P1 (PagerDuty: P2)] PositionReconciliationFailed evidence: 2 of 4 checks found"
    )
    assert "- FAILED http" in evidence and "gui-gateway degraded" in evidence
    assert "- FAILED trading" in evidence and "reconciliation mismatch (POS-2)" in evidence
    assert "2 open positions" in evidence
