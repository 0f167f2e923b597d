"""Scenario end to end: inject a failure in the simulator; Prometheus fires, Alertmanager delivers
to the responder and opens the incident on the fake PagerDuty; both notes arrive with the
priority the runbook gives. And the world acting: a proposal approved by a PagerDuty note runs
once, mends the simulator, and the alert and the incident resolve."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import docker
import pytest
import requests

from collectors.containers import API_VERSION
from demo import messages
from demo.simulator import Simulator
from demo.story import Line, Story
from demo.world import World, containers_for
from tasks.store.proposals import ProposalStore
from tests.support import named, wait_for


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[World]:
    # The tests' own Redis database (RESPONDER_TEST_REDIS_URL), no other: the world has its
    # own queue, clears the responder's keys when it starts and is stopped before the next
    # module's tests, whose fixtures clear them again.
    # Its market trades around the clock: the runbook's market-hours answers are the same
    # whenever the tests run (the clock's own answers are unit-tested in tests/unit).
    # The scenarios run back to back in one world: an alert of the last one still firing would
    # (rightly) correlate with the next and take it into its incident. Correlation acting on a
    # whole outage is tested in test_correlation_live.py and counted by bench/outage_counts.py.
    started = World(
        tmp_path_factory.mktemp("world"),
        redis_url,
        market="open",
        policy_overrides={"correlation": {"mode": "shadow"}},
    ).start()
    yield started
    started.stop()


def test_the_world_uses_the_redis_the_tests_are_given(world: World, redis_url: str) -> None:
    assert world.redis_url == redis_url
    assert world.env["RESPONDER_REDIS_URL"] == redis_url


def _bundle_id(evidence: str) -> str:
    """Open the incident page the evidence note links to; return the bundle it shows."""
    link = re.search(r"^Incident page: (\S+)$", evidence, re.MULTILINE).group(1)
    page = requests.get(link, timeout=10)
    assert page.status_code == 200, page.text[:300]
    assert "prometheus/q0.png" in page.text  # the plot, shown on the page
    return re.search(r'href="/bundles/([^/"]+)/', page.text).group(1)


def incident_notes(world: World, alert: str) -> list[dict] | None:
    """Return the first note and the evidence note of the incident Alertmanager opened for
    `alert`, once both are there (the SLA clock's notes, a P0's management one, may come
    between them)."""
    for incident_id, incident in list(world.pagerduty.incidents.items()):
        if re.search(rf"\b{alert}\b", incident["title"]):
            notes = world.pagerduty.notes_for(incident_id)
            evidence = [n for n in notes if " evidence: " in n["content"].partition("\n")[0]]
            if notes and evidence:
                return [notes[0], evidence[0]]
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
    world.clear()
    world.inject(scenario)
    try:
        notes = wait_for(
            lambda: incident_notes(world, alert), timeout=55, what=f"{alert} notes on PagerDuty"
        )
    finally:
        world.clear()
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


def test_stale_market_data_is_p1_while_the_market_trades(world: World) -> None:
    # The world's market trades now (market="open"); outside market hours it is P3 (unit tests).
    priority, when = "P1", "during"
    world.clear()
    world.inject("stale-market-data")
    try:
        notes = wait_for(
            lambda: incident_notes(world, "MarketDataStale"), timeout=55, what="MarketDataStale"
        )
    finally:
        world.clear()
    first, evidence = notes[0]["content"], notes[1]["content"]
    assert first.startswith(f"[{named(priority)}] MarketDataStale"), first
    assert f"category=market-data; {when} market hours" in first.splitlines()[1]
    assert evidence.startswith(f"[{named(priority)}] MarketDataStale evidence:"), evidence
    assert "data-ingestor degraded" in evidence


def test_the_health_check_fails_when_a_service_is_degraded(world: World) -> None:
    # Evidence counts a degraded service as a finding, not as a passed check.
    world.clear()
    world.inject("reconciliation-failure")
    try:
        notes = wait_for(
            lambda: incident_notes(world, "PositionReconciliationFailed"),
            timeout=55,
            what="PositionReconciliationFailed notes",
        )
    finally:
        world.clear()
    evidence = notes[1]["content"]
    found = re.match(
        r"\[P1 \(PagerDuty: P2\)\] PositionReconciliationFailed evidence: (\d) of 7 checks found",
        evidence,
    )
    assert found, evidence
    # The queues-and-latency check may still see the latency scenario's slow edge (its p99 is
    # a rate over 5 minutes): then, and only then, it is a third finding.
    slow_edge = "slow edges (p99 over 1 s): indicator-engine -> signal-generator"
    assert found.group(1) == ("3" if slow_edge in evidence else "2"), evidence
    assert re.search(r"- OK network \(.*\): (\d+)/\1 probes reached their target", evidence)
    assert "- FAILED http" in evidence and "gui-gateway degraded" in evidence
    assert "- FAILED trading" in evidence and "reconciliation mismatch (POS-2)" in evidence
    assert "2 open positions" in evidence


def test_risk_manager_down_is_mended_by_an_action_approved_through_a_pagerduty_note(
    world: World,
) -> None:
    # The policy's rules propose restart-service (its container exited) and stop-trading (P0
    # with risk management down while the market trades); the demo's approver approves each by
    # a signed PagerDuty note, as `make demo SCENARIO=risk-manager-down` does.
    world.clear()
    restarts_before = [r for r in world.docker.acted() if "/restart" in r]
    calls_before = len(world.simulator.emergency_calls)
    told: list[Line] = []
    story = Story(
        world, "RiskManagerDown", world.note_approver(), approve_after=0.5, out=told.append
    )
    # What `make demo` prints of Slack and e-mail: the outbox's files of this story only.
    story.watchers.extend(messages.watchers(world.directory / "outbox"))
    world.inject("risk-manager-down")
    try:
        ended = story.run(timeout=90)
        emergency_calls = world.simulator.emergency_calls[calls_before:]
    finally:
        world.clear()
    transcript = "\n".join(line.text for line in told)
    assert ended, transcript
    incident = story.progress.incident_id
    records = {
        p.action: p
        for p in ProposalStore(story.deliveries.redis).recent(limit=200)
        if p.incident_id == incident
    }
    assert set(records) == {"restart-service", "stop-trading"}, transcript
    outcomes = {a: (p.status, p.verified, p.reason or p.answer) for a, p in records.items()}
    assert all(o[:2] == ("done", "passed") for o in outcomes.values()), (outcomes, transcript)
    assert records["stop-trading"].rule == "stop-trading-risk-down"
    restart = records["restart-service"]
    assert (restart.rule, restart.target) == ("restart-exited-container", "risk-manager")
    assert (restart.status, restart.verified) == ("done", "passed")
    assert (restart.approved_by, restart.via) == ("PDANA01", "note")
    assert f"the demo approves {restart.id} (restart-service on risk-manager) as Dana" in transcript
    assert "EAFIX: risk-manager's container exited (code 1)" in transcript
    assert "EAFIX: risk-manager's container runs again; it answers, healthy" in transcript
    # One Slack thread for the incident, the desk's post, and the trading desk's alert e-mail
    # (beat's first SLA tick sends it, before the story can end).
    threads = [
        t
        for t in transcript.splitlines()
        if t.startswith(f"Slack #eafix-incidents ({incident}) thread: ") and "RiskManagerDown" in t
    ]
    assert len(threads) == 1, transcript
    assert f"Slack #trading-operations ({incident}) post: :rotating_light: P0" in transcript
    assert (
        "e-mail to trading-desk@eafix.example: [EAFIX] P0 (PagerDuty: P1) incident during "
        "market hours: RiskManagerDown" in transcript
    ), transcript
    # Once through the Docker Engine API, and that is what mended the service.
    restarts = [r for r in world.docker.acted() if "/restart" in r]
    assert len(restarts) == len(restarts_before) + 1, restarts
    assert emergency_calls == ["stop-trading"]
    # The alert cleared in Prometheus and Alertmanager resolved the PagerDuty incident.
    assert "RiskManagerDown" not in {a["labels"]["alertname"] for a in world.firing_alerts()}
    assert world.pagerduty.incidents[incident]["status"] == "resolved"
    notes = [n["content"] for n in world.pagerduty.notes_for(incident)]
    done = [n for n in notes if n.startswith("[ACTION] restart-service on risk-manager: done")]
    assert len(done) == 1, notes
    assert "Approved by PDANA01 via note" in done[0] and "- OK health ok" in done[0]
    assert any(n.startswith("[RESOLVED] RiskManagerDown") for n in notes), notes
    assert world.pagerduty.rejected() == [], "calls PagerDuty's OpenAPI spec rejects"


def test_docker_stop_start_and_restart_act_on_the_simulated_services_and_show_crashes() -> None:
    # What isolate-service and restart-service do to the demo EAFIX, through the Docker SDK.
    sim = Simulator().start()
    engine = containers_for(sim)
    client = docker.DockerClient(base_url=engine.url, version=API_VERSION, timeout=5)
    health = f"{sim.url('risk-manager')}/healthz"
    try:
        [container] = client.containers.list(
            all=True, filters={"label": ["com.docker.compose.service=risk-manager"]}
        )
        container.stop(timeout=1)
        assert requests.get(health, timeout=2).status_code == 503
        container.reload()
        assert (container.status, container.attrs["State"]["ExitCode"]) == ("exited", 143)
        container.start()
        assert requests.get(health, timeout=2).json()["status"] == "ok"
        sim.inject("risk-manager-down")  # its process dies on its own
        container.reload()
        assert (container.status, container.attrs["State"]["ExitCode"]) == ("exited", 1)
        assert b"CRITICAL process exited with code 1" in container.logs(timestamps=True)
        container.restart(timeout=1)
        assert requests.get(health, timeout=2).json()["status"] == "ok"
        assert "risk-manager-down" not in sim.active
        container.reload()
        assert container.status == "running" and container.attrs["RestartCount"] == 1
    finally:
        client.close()
        engine.stop()
        sim.stop()
