"""A dead worker's tasks come back in seconds; a 2xx delivery with no task behind it is requeued."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import redis

from tasks import recovery
from tasks.celery_app import make_celery, sender_of
from tasks.lanes import urgent_queue
from tasks.names import RESPOND
from tasks.requeue import MAX_REQUEUES, requeue_stalled
from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.support import TOKEN, sample_payload, wait_for
from tests.support.workers import kill_worker, start_worker
from webhooks import create_app

QUEUE = "responder-recovery-test"


def test_the_tasks_a_killed_worker_held_are_given_back_without_the_visibility_timeout(
    settings: Settings, responder_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    redis_client.delete(QUEUE, urgent_queue(QUEUE), "unacked", "unacked_index")
    # No such delivery's incident exists: respond waits 30 s between lookups, in the worker.
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", recovery="yes"}')
    answer = (
        create_app(replace(settings, queue=QUEUE))
        .test_client()
        .post("/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {TOKEN}"})
    )
    assert answer.status_code == 202
    env = {**responder_env, "RESPONDER_QUEUE": QUEUE, "RESPONDER_INCIDENT_LOOKUP_DELAY": "30"}
    worker = start_worker(env, tmp_path / "worker.log", "doomed")
    log = tmp_path / "worker.log"
    try:
        wait_for(lambda: b"Retry in 30" in log.read_bytes(), what="the lookup retry")
        # Alive, it holds its message (a countdown), and nothing is taken from it.
        wait_for(lambda: recovery.live_tags(redis_client), what="its heartbeat")
        assert recovery.reclaim_orphans(redis_client, time.time() + 60) == []
        assert redis_client.hlen("unacked") == 1
    finally:
        kill_worker(worker)
    # Its heartbeat stops; once it expires the message is back at the head of its lane. (The
    # deadline is generous: the expiry is what is waited for, not how fast it comes.)
    wait_for(
        lambda: recovery.reclaim_orphans(redis_client, time.time() + 60),
        timeout=recovery.HEARTBEAT_TTL_SECONDS + 60,
        what="the dead worker's message to be given back",
    )
    assert redis_client.hlen("unacked") == 0
    assert redis_client.llen(urgent_queue(QUEUE)) == 1  # the sample is P1
    redis_client.delete(QUEUE, urgent_queue(QUEUE))


def test_a_delivery_with_no_task_behind_it_is_queued_again(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ours = replace(settings, queue=QUEUE)
    redis_client.delete(QUEUE, urgent_queue(QUEUE), "unacked", "unacked_index")
    client = create_app(ours).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    lost = client.post(
        "/webhooks/alertmanager",
        json=sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", lost="yes"}'),
        headers=headers,
    ).get_json()["delivery_id"]
    redis_client.delete(urgent_queue(QUEUE))  # its message vanished (as in the storm report)
    other = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", waiting="yes"}')
    other["alerts"][0]["fingerprint"] = "0000recovery0001"  # another alert: not a duplicate
    waiting = client.post("/webhooks/alertmanager", json=other, headers=headers).get_json()
    waiting = waiting["delivery_id"]
    rt, send = Runtime(ours), sender_of(make_celery(ours))
    later = time.time() + ours.pipeline_lease_seconds + 1
    # Two passes in a row must find it (a message moving between queue and workers is missed
    # once); the waiting one still has its message all along.
    assert requeue_stalled(rt, send, later) == 0
    assert requeue_stalled(rt, send, later + 30) == 1
    queued = redis_client.lrange(urgent_queue(QUEUE), 0, -1)
    assert sum(lost.encode() in m for m in queued) == 1
    assert sum(waiting.encode() in m for m in queued) == 1
    assert rt.deliveries.get(lost)["requeued_at"]
    assert requeue_stalled(rt, send, later + 60) == 0  # now its message is there
    redis_client.delete(QUEUE, urgent_queue(QUEUE))


def test_a_delivery_that_stalls_again_and_again_is_failed_for_good(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ours = replace(settings, queue=QUEUE)
    redis_client.delete(QUEUE, urgent_queue(QUEUE), "unacked", "unacked_index")
    client = create_app(ours).test_client()
    answer = client.post(
        "/webhooks/alertmanager",
        json=sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", stalls="yes"}'),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).get_json()
    rt, send = Runtime(ours), sender_of(make_celery(ours))
    later = time.time() + ours.pipeline_lease_seconds + 1
    for n in range(2 * (MAX_REQUEUES + 1)):  # its task vanishes every time
        redis_client.delete(urgent_queue(QUEUE))
        requeue_stalled(rt, send, later + 30 * n)
    delivery = rt.deliveries.get(answer["delivery_id"])
    assert delivery["pipeline"].startswith("failed: stalled queued 3 times")
    [letter] = rt.dead_letters.list()
    assert letter.delivery_id == answer["delivery_id"] and letter.task == RESPOND
    redis_client.delete(QUEUE, urgent_queue(QUEUE))
