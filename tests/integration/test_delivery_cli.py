"""`responder deliveries` and `responder replay` over a real delivery log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from click.testing import CliRunner

from tasks.cli import main
from tasks.lanes import urgent_queue
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.store.dead_letters import DeadLetter
from tasks.store.sla_clock import Deadline
from tests.integration import test_pagerduty_webhook as pd
from tests.support import TOKEN, sample_payload
from webhooks import create_app

QUEUE = "responder-cli-test"  # no worker listens: replays stay queued for the test to count
URGENT = urgent_queue(QUEUE)  # the sample is P1: its replays go to the urgent lane


@pytest.fixture
def env(settings: Settings, redis_client, monkeypatch) -> Iterator[redis.Redis]:
    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RESPONDER_QUEUE", QUEUE)
    redis_client.delete(QUEUE, URGENT)
    yield redis_client
    redis_client.delete(QUEUE, URGENT)


def post(settings: Settings, payload: dict) -> str:
    app = create_app(replace(settings, queue=QUEUE))
    answer = app.test_client().post(
        "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return answer.get_json()["delivery_id"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_deliveries_lists_what_came_in(env, settings: Settings) -> None:
    first = post(settings, sample_payload())
    duplicate = post(settings, sample_payload())
    result = run("deliveries", "--since", "1h", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert rows[first]["priority"] == "P1" and rows[first]["duplicate"] is False
    assert rows[first]["what"] == "SignalLatencyHigh"
    assert rows[duplicate]["duplicate"] is True
    human = run("deliveries", "--source", "alertmanager")
    assert f"{duplicate}  alertmanager dup" in human.output
    assert run("deliveries", "--source", "pagerduty").output == "no deliveries\n"


def test_replay_dry_run_changes_nothing_and_skips_duplicates(env, settings: Settings) -> None:
    first = post(settings, sample_payload())
    duplicate = post(settings, sample_payload())
    queued = env.llen(URGENT)
    result = run("replay", "--since", "1h", "--dry-run")
    assert result.exit_code == 1, result.output  # as the run itself would: one was refused
    assert f"would respond {first}: SignalLatencyHigh" in result.output
    assert (
        f"skip {duplicate}: a duplicate of an earlier delivery (--force runs it)" in result.output
    )
    assert result.output.endswith("1 would run, 1 skipped\n")
    assert env.llen(URGENT) == queued


def test_a_skipped_delivery_exits_1_whether_named_or_in_a_window(env, settings: Settings) -> None:
    first = post(settings, sample_payload())
    duplicate = post(settings, sample_payload())
    by_id = run("replay", duplicate)
    assert by_id.exit_code == 1
    assert by_id.output == (
        f"skip {duplicate}: a duplicate of an earlier delivery (--force runs it)\n"
    )
    in_window = run("replay", "--since", "1h")
    assert in_window.exit_code == 1, in_window.output
    assert f"replaying {first} as run 2" in in_window.output  # the receiver started run 1
    assert in_window.output.endswith("1 replayed, 1 skipped\n")
    forced = run("replay", "--since", "1h", "--force")
    assert forced.exit_code == 0, forced.output
    assert forced.output.endswith("2 replayed, 0 skipped\n")


def test_replay_force_runs_duplicates_too(env, settings: Settings) -> None:
    post(settings, sample_payload())
    duplicate = post(settings, sample_payload())
    queued = env.llen(URGENT)
    refused = run("replay", duplicate)
    assert refused.exit_code == 1
    forced = run("replay", duplicate, "--force")
    assert forced.exit_code == 0, forced.output
    assert f"replaying {duplicate} as run 1 (bundle {duplicate}-r1)" in forced.output
    assert env.llen(URGENT) == queued + 1


def test_replay_needs_an_id_or_a_window(env) -> None:
    assert run("replay").exit_code == 2
    assert run("replay", "x", "--since", "1h").exit_code == 2
    assert run("replay", "--since", "soon").exit_code == 2


def test_replaying_a_resolved_event_applies_it_stops_the_clocks_and_queues_the_closing(
    env, settings: Settings
) -> None:
    app = create_app(replace(settings, queue=QUEUE, pagerduty_webhook_secrets=(Secret(pd.SECRET),)))
    resolved = pd.event("incident.resolved", status="resolved", event_id=9)
    answer = pd.post(app.test_client(), resolved, webhook_id="wh-replay-res").get_json()
    # As if the receiver had recorded the delivery and then failed to apply it.
    rt = Runtime(settings)
    env.delete("responder:incident:PGR0VU2", "responder:incident-history:PGR0VU2")
    rt.clock.register([Deadline("PGR0VU2", "resolve", "2026-11-25T23:00:00+00:00", "P1")])
    queued = env.llen(URGENT)
    result = run("replay", answer["delivery_id"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("closing note queued")
    assert rt.incidents.get("PGR0VU2")["status"] == "resolved"
    assert rt.clock.pending() == []
    assert env.llen(URGENT) == queued + 1  # RiskManagerDown is P0: its closing is urgent


def test_work_that_failed_for_good_is_listed_and_replayed(env, settings: Settings) -> None:
    runtime = Runtime(replace(settings, queue=QUEUE))
    runtime.dead_letters.add(
        DeadLetter(
            id="task-1",
            task="tasks.pipeline.gather",
            args=["d-1-r1"],
            queue=URGENT,
            reason="PagerDuty POST notes failed: HTTP 400 (HTTP 400: not retried)",
            failed_at=1_800_000_000.0,
            delivery_id="d-1",
            step="evidence note",
        )
    )
    listed = run("deliveries", "--failed")
    assert listed.exit_code == 0, listed.output
    assert "evidence note    d-1  PagerDuty POST notes failed: HTTP 400" in listed.output
    [row] = json.loads(run("deliveries", "--failed", "--json").output)
    assert row["delivery_id"] == "d-1" and row["task"] == "gather"
    queued = env.llen(URGENT)
    assert (
        "would send tasks.pipeline.gather again for d-1"
        in run("replay", "--failed", "--dry-run").output
    )
    assert env.llen(URGENT) == queued
    replayed = run("replay", "--failed")
    assert replayed.exit_code == 0, replayed.output
    assert "sent tasks.pipeline.gather again for d-1" in replayed.output
    assert env.llen(URGENT) == queued + 1
    [message] = [json.loads(m) for m in env.lrange(URGENT, 0, 0)]
    assert message["headers"]["task"] == "tasks.pipeline.gather"
    assert run("deliveries", "--failed").output == "nothing failed for good\n"
    assert run("replay", "--failed", "--since", "1h").exit_code == 2
