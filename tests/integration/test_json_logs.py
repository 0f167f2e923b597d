"""RESPONDER_LOG_FORMAT=json: `responder run` and every part it starts (receiver, workers,
beat) write JSON lines, as compose runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import redis
import requests

from tests.integration.test_run import free_port, start
from tests.support import sample_payload, wait_for

# Celery prints these with os.write, not through logging (celery/apps/worker.py, safe_say):
# the one kind of line a log shipper must pass through as text.
CELERY_PRINTED = re.compile(r"^worker: (Warm|Cold) shutdown \(MainProcess\)$")


def test_every_part_of_responder_run_logs_json_lines(
    tmp_path: Path, redis_url: str, test_policy: Path
) -> None:
    state = redis.Redis.from_url(redis_url)
    for key in state.scan_iter("responder:*"):
        state.delete(key)
    state.close()
    run = start(tmp_path / "run", free_port(), redis_url, test_policy, RESPONDER_LOG_FORMAT="json")
    base = f"http://127.0.0.1:{run.port}"
    try:
        wait_for(lambda: '"responder: listening on' in run.output(), what="the listening line")
        payload = sample_payload(groupKey="json-logs")
        requests.post(f"{base}/webhooks/alertmanager", json=payload, timeout=10).raise_for_status()
        # A link's signature is a capability: the access line masks it, JSON or not.
        requests.get(f"{base}/bundles/none/?expires=1&sig=capability-in-query", timeout=10)
        wait_for(
            lambda: re.search(r"tasks\.pipeline\.respond\[\S+\] succeeded", run.output()),
            what="the response task's line",
        )
    finally:
        assert run.stop() == 0
    records, printed = [], []
    for line in run.output().splitlines():
        if not line.strip():
            continue
        if line.startswith("{"):
            records.append(json.loads(line))
        else:
            printed.append(line)
    assert [line for line in printed if not CELERY_PRINTED.match(line)] == []
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    loggers = {record["logger"] for record in records}
    # run itself, the receiver (gunicorn and its access log), the workers and beat.
    assert {"responder.run", "gunicorn.error", "gunicorn.access", "celery.app.trace"} <= loggers
    assert loggers & {"celery.beat", "tasks.beat"}
    assert "capability-in-query" not in run.output()
    access = [r["message"] for r in records if r["logger"] == "gunicorn.access"]
    assert any("sig=***" in message for message in access), access
