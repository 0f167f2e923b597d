"""One alert travels end to end: receiver -> Redis -> real Celery worker -> fake PagerDuty."""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.store.dead_letters import DeadLetters
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, post_alert, sample_payload, wait_for

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def incident_key(payload: dict) -> str:
    return hashlib.sha256(payload["groupKey"].encode()).hexdigest()


def delivery(receiver: str, delivery_id: str) -> dict:
    return requests.get(f"{receiver}/deliveries/{delivery_id}", headers=BEARER, timeout=5).json()


def test_sample_alert_gets_both_notes_and_a_bundle(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, settings: Settings, redis_client
) -> None:
    payload = sample_payload()
    incident = pagerduty.add_incident(incident_key(payload), "[FIRING:1] SignalLatencyHigh")

    accepted = post_alert(receiver, payload)
    assert accepted.status_code == 202
    assert accepted.json()["priority"] == "P1"

    notes = wait_for(
        lambda: len(pagerduty.notes_for(incident)) >= 2 and pagerduty.notes_for(incident),
        what="the first-response and evidence notes",
    )
    first, evidence = (note["content"] for note in notes)
    assert first.startswith(
        "[P1 (PagerDuty: P2)] SignalLatencyHigh: p99 signal latency is 7.2s (over 5s)"
    )
    assert "Why P1: signal-latency-over-5s" in first
    assert "acknowledge by" in first and "(15m" in first  # ", overdue by": an old sample
    # Nothing but the services and Redis in this test's world: the rest say why they skipped.
    assert evidence.startswith(
        "[P1 (PagerDuty: P2)] SignalLatencyHigh evidence: all 5 checks passed (5 skipped)"
    )
    assert "OK http" in evidence and "OK redis" in evidence and "OK trading" in evidence
    # (durations vary: the first use of a collector imports its client library)
    assert re.search(r"- SKIPPED prometheus \(\d+ ms\): no Prometheus configured", evidence)
    assert re.search(
        r"- SKIPPED postgres \(\d+ ms\): no database configured \(RESPONDER_POSTGRES_DSN\)",
        evidence,
    )

    record = wait_for(
        lambda: (
            (d := delivery(receiver, accepted.json()["delivery_id"]))["pipeline"] == "done" and d
        ),
        what="the pipeline to finish",
    )
    assert record["incident_id"] == incident
    manifest = json.loads((settings.bundle_dir / record["bundle_id"] / "manifest.json").read_text())
    assert manifest["incident"]["id"] == incident
    by_name = {c["name"]: c for c in manifest["collectors"]}
    assert set(by_name) == {
        "http",
        "trading",
        "prometheus",
        "docker",
        "postgres",
        "redis",
        "host",
        "git",
        "network",
        "performance",
    }
    for unconfigured in ("prometheus", "docker", "postgres", "git", "performance"):
        assert by_name.pop(unconfigured)["status"] == "skipped"
    for entry in by_name.values():
        assert entry["status"] == "ok"
        assert entry["duration_seconds"] > 0
        assert entry["files"]
    # The run started the incident's SLA clocks.
    from tasks.store.sla_clock import SlaClock

    kinds = {d.kind for d in SlaClock(redis_client).pending() if d.incident_id == incident}
    # The sample fired on a weekday while the market traded: a P1 the trading desk hears of.
    assert kinds == {
        "acknowledge", "respond", "resolve", "next_update", "notify_management", "desk_alert",
    }  # fmt: skip
    # Every call the worker made was valid under PagerDuty's OpenAPI spec (checked by the
    # `pagerduty` fixture) and carried the From header the notes endpoint requires.
    note_calls = [c for c in pagerduty.calls if c.path.endswith("/notes")]
    assert {c.headers.get("From") for c in note_calls} == {"responder@eafix.example"}


def test_the_incident_may_appear_after_the_alert(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", late="yes"}')
    accepted = post_alert(receiver, payload)
    assert accepted.status_code == 202
    # PagerDuty creates the incident a moment later (Alertmanager notifies both in parallel).
    wait_for(
        lambda: any(c.path == "/incidents" for c in pagerduty.calls),
        what="the first incident lookup",
    )
    incident = pagerduty.add_incident(incident_key(payload))
    notes = wait_for(lambda: len(pagerduty.notes_for(incident)) >= 2, what="both notes")
    assert notes


def test_a_failed_service_shows_in_the_evidence(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, health_server, redis_client
) -> None:
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", sick="yes"}')
    incident = pagerduty.add_incident(incident_key(payload))
    health_server.status["risk-manager"] = "degraded"
    try:
        post_alert(receiver, payload)
        notes = wait_for(
            lambda: len(pagerduty.notes_for(incident)) >= 2 and pagerduty.notes_for(incident),
            what="both notes",
        )
    finally:
        health_server.status.clear()
    evidence = notes[1]["content"]
    assert "5/6 services healthy; risk-manager degraded" in evidence


def test_concurrent_duplicates_start_exactly_one_pipeline(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", dup="yes"}')
    incident = pagerduty.add_incident(incident_key(payload))
    answers: list[dict] = []

    def send() -> None:
        answers.append(post_alert(receiver, payload).json())

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 7
    original = next(a for a in answers if not a["duplicate"])
    wait_for(
        lambda: delivery(receiver, original["delivery_id"])["pipeline"] == "done",
        what="the one pipeline to finish",
    )
    assert len(pagerduty.notes_for(incident)) == 2


def test_replay_runs_a_stored_delivery_again(
    worker: Path,
    receiver: str,
    pagerduty: FakePagerDuty,
    settings: Settings,
    redis_client,
    monkeypatch,
) -> None:
    from click.testing import CliRunner

    from tasks.cli import main

    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", replay="yes"}')
    incident = pagerduty.add_incident(incident_key(payload))
    delivery_id = post_alert(receiver, payload).json()["delivery_id"]
    wait_for(lambda: len(pagerduty.notes_for(incident)) >= 2, what="the first run's notes")

    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    result = CliRunner().invoke(main, ["replay", delivery_id])
    assert result.exit_code == 0, result.output
    assert f"replaying {delivery_id} as run 2" in result.output
    wait_for(lambda: len(pagerduty.notes_for(incident)) >= 4, what="the replay's notes")
    record = delivery(receiver, delivery_id)
    assert record["bundle_id"] == f"{delivery_id}-r2"

    unknown = CliRunner().invoke(main, ["replay", "no-such-delivery"])
    assert unknown.exit_code == 1
    assert "no delivery 'no-such-delivery'" in unknown.output


def pagerduty_time(at: datetime) -> str:
    """Return `at` as PagerDuty writes occurred_at."""
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_pagerduty_triggered_incident_gets_both_notes_and_our_notes_are_not_acted_on(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    from tests.integration.test_pagerduty_webhook import event, sign

    incident = pagerduty.add_incident(
        "pd-only-incident", "[FIRING:1] TradingServiceDown data-ingestor"
    )
    payload = event(
        id=incident,
        incident_key="pd-only-incident",
        title="[FIRING:1] TradingServiceDown data-ingestor",
    )
    # Both events carry times of the test's choosing, so the closing note's figures do not
    # depend on how long the pipeline took in between (one second on a busy machine).
    triggered_at = datetime.now(UTC) - timedelta(seconds=60)
    payload["event"]["occurred_at"] = pagerduty_time(triggered_at)
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-PagerDuty-Signature": sign(body),
        "X-Webhook-Id": "e2e-1",
    }
    answer = requests.post(f"{receiver}/webhooks/pagerduty", data=body, headers=headers, timeout=5)
    assert answer.status_code == 202 and answer.json()["priority"] == "P1"
    notes = wait_for(
        lambda: len(pagerduty.notes_for(incident)) >= 2 and pagerduty.notes_for(incident),
        what="both notes for the PagerDuty-triggered incident",
    )
    assert notes[0]["content"].startswith(
        "[P1 (PagerDuty: P2)] [FIRING:1] TradingServiceDown data-ingestor"
    )
    assert f"PagerDuty incident {incident}: [FIRING:1] TradingServiceDown" in notes[0]["content"]
    assert [c for c in pagerduty.calls if c.path == "/incidents"] == []  # no lookup needed
    # PagerDuty reports our own note back as incident.annotated: recorded, never acted on.
    from tests.integration.test_pagerduty_webhook import annotated

    echo = annotated(notes[0]["id"])
    echo_body = json.dumps(echo).encode()
    answer = requests.post(
        f"{receiver}/webhooks/pagerduty",
        data=echo_body,
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign(echo_body)},
        timeout=5,
    )
    assert delivery(receiver, answer.json()["delivery_id"])["pipeline"] == "ignored: our own note"
    # Resolved: the clocks stop, the timeline goes into the bundle, a closing note follows.
    resolved = event("incident.resolved", id=incident, status="resolved", event_id=2)
    resolved["event"]["occurred_at"] = pagerduty_time(triggered_at + timedelta(seconds=42))
    resolved_body = json.dumps(resolved).encode()
    requests.post(
        f"{receiver}/webhooks/pagerduty",
        data=resolved_body,
        headers={"Content-Type": "application/json", "X-PagerDuty-Signature": sign(resolved_body)},
        timeout=5,
    )
    notes = wait_for(
        lambda: len(pagerduty.notes_for(incident)) >= 3 and pagerduty.notes_for(incident),
        what="the closing note",
    )
    assert notes[2]["content"].startswith(
        "[P1 (PagerDuty: P2)] Resolved. Incident metrics against the SLA:"
    )
    assert "- never acknowledged; resolved after 42s (SLA 15m: met)" in notes[2]["content"]


def test_a_resolved_group_is_noted_and_validated_without_a_new_run(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    firing = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", resolves="yes"}')
    incident = pagerduty.add_incident(incident_key(firing))
    post_alert(receiver, firing)
    wait_for(lambda: len(pagerduty.notes_for(incident)) >= 2, what="the firing notes")
    resolved = json.loads(json.dumps(firing))
    resolved["status"] = "resolved"
    resolved["alerts"][0].update(status="resolved", endsAt="2026-11-27T15:02:00Z")
    answer = post_alert(receiver, resolved).json()
    notes = wait_for(
        lambda: len(pagerduty.notes_for(incident)) >= 3 and pagerduty.notes_for(incident),
        what="the resolved note",
    )
    assert notes[2]["content"].startswith("[RESOLVED] SignalLatencyHigh: resolved in Alertmanager")
    assert "after 32m" in notes[2]["content"]
    # The whole group cleared: the runbook's Validation, and the incident left to a person.
    lines = notes[2]["content"].splitlines()
    assert "The runbook's Validation (every service's health, the trading flow test):" in lines
    assert any(line.startswith(("- OK http: ", "- FAILED http: ")) for line in lines)
    assert any(line.startswith("- ") and " flow: " in line for line in lines)
    assert pagerduty.incidents[incident]["status"] == "triggered"
    record = delivery(receiver, answer["delivery_id"])
    assert record["pipeline"] == "not started: no new firing alert"
    assert "bundle_id" not in record


def note_posts(pagerduty: FakePagerDuty, incident: str) -> list:
    return [
        c
        for c in pagerduty.calls
        if c.method == "POST" and c.path == f"/incidents/{incident}/notes"
    ]


def test_a_429_is_retried_after_its_reset_and_posts_one_note(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", limited="429"}')
    incident = pagerduty.add_incident(incident_key(payload))
    pagerduty.fail_next(429, method="POST", path_suffix="/notes")  # answers ratelimit-reset: 1
    post_alert(receiver, payload)
    wait_for(lambda: len(pagerduty.notes_for(incident)) >= 2, what="both notes after the 429")
    posts = note_posts(pagerduty, incident)
    assert [c.status for c in posts] == [429, 200, 200]
    assert posts[1].at - posts[0].at >= 1.0  # it waited the reset PagerDuty asked for
    first = pagerduty.notes_for(incident)[0]["content"]
    assert first.startswith("[P1 (PagerDuty: P2)] SignalLatencyHigh") and first.endswith(
        "/first_note]"
    )


def test_three_500s_then_success_post_one_note(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", flaky="500"}')
    incident = pagerduty.add_incident(incident_key(payload))
    pagerduty.fail_next(500, count=3, method="POST", path_suffix="/notes")
    post_alert(receiver, payload)
    wait_for(lambda: len(pagerduty.notes_for(incident)) >= 2, what="both notes after three 500s")
    assert [c.status for c in note_posts(pagerduty, incident)] == [500, 500, 500, 200, 200]
    contents = [n["content"] for n in pagerduty.notes_for(incident)]
    assert sum(c.startswith("[P1 (PagerDuty: P2)] SignalLatencyHigh: ") for c in contents) == 1


def test_a_400_is_not_retried_and_is_recorded_with_the_reason(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", refused="400"}')
    incident = pagerduty.add_incident(incident_key(payload))
    pagerduty.fail_next(400, method="POST", path_suffix="/notes")
    delivery_id = post_alert(receiver, payload).json()["delivery_id"]
    record = wait_for(
        lambda: (d := delivery(receiver, delivery_id))["pipeline"] == "done" and d,
        what="the pipeline to finish",
    )
    assert record["failures"]["first_note"] == (
        "PagerDuty POST notes failed: HTTP 400 (HTTP 400: not retried)"
    )
    assert [c.status for c in note_posts(pagerduty, incident)] == [400, 200]
    [evidence] = pagerduty.notes_for(incident)
    assert " evidence: " in evidence["content"].splitlines()[0]
    [letter] = DeadLetters(redis_client).list()
    assert (letter.delivery_id, letter.step) == (delivery_id, "first note")
    assert letter.reason == record["failures"]["first_note"]
    assert letter.args == [delivery_id, 1]  # what `responder replay --failed` sends again


def test_a_write_held_back_by_our_budget_waits_for_it_and_is_not_failed(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client, settings
) -> None:
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", held="back"}')
    incident = pagerduty.add_incident(incident_key(payload))
    Runtime(settings).budget.block(3)  # as a 429 does: every worker waits
    delivery_id = post_alert(receiver, payload).json()["delivery_id"]
    record = wait_for(
        lambda: (d := delivery(receiver, delivery_id))["pipeline"] == "done" and d,
        what="the pipeline to finish once the budget allows",
    )
    assert "failures" not in record or not record["failures"]
    assert len(pagerduty.notes_for(incident)) == 2
    # Nothing was sent while held back, and no note was read back before posting.
    assert [c.status for c in note_posts(pagerduty, incident)] == [200, 200]
    assert not [c for c in pagerduty.calls if c.method == "GET" and c.path.endswith("/notes")]
    assert DeadLetters(redis_client).list() == []


def test_the_evidence_note_links_to_the_bundle_and_the_link_downloads_it(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    from tests.integration.test_bundles import validate_manifest
    from tests.support import PUBLIC_URL

    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", linked="yes"}')
    incident = pagerduty.add_incident(incident_key(payload))
    post_alert(receiver, payload)
    notes = wait_for(
        lambda: len(pagerduty.notes_for(incident)) >= 2 and pagerduty.notes_for(incident),
        what="both notes",
    )
    [line] = [ln for ln in notes[1]["content"].splitlines() if ln.startswith("Incident page: ")]
    link = line.removeprefix("Incident page: ")
    assert link.startswith(f"{PUBLIC_URL}/incidents/{incident}?") and "sig=" in link
    incident_page = requests.get(link.replace(PUBLIC_URL, receiver), timeout=5)
    assert incident_page.status_code == 200 and "SignalLatencyHigh" in incident_page.text
    # The page links the raw bundle with a signature of its own.
    raw = re.search(r'href="(/bundles/[^"]+)"', incident_page.text).group(1)  # type: ignore[union-attr]
    local = receiver + html.unescape(raw)
    page = requests.get(local, timeout=5)
    assert page.status_code == 200 and "SignalLatencyHigh" in page.text
    manifest = requests.get(local.replace("/?", "/manifest.json?"), timeout=5).json()
    validate_manifest(manifest)
    tampered = requests.get(local.replace("sig=", "sig=f"), timeout=5)
    assert tampered.status_code == 403
