"""The receiver under gunicorn: metrics merged across workers, bodies sent in chunks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support import PROJECT, TOKEN, answers_health, sample_payload, stop_server, wait_for


@pytest.fixture
def gunicorn(
    responder_env: dict[str, str], tmp_path: Path, redis_client
) -> Iterator[tuple[str, Path]]:
    """Serve the receiver with three gunicorn workers; yield its URL and metrics directory."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        **responder_env,
        "RESPONDER_QUEUE": "responder-gunicorn-test",  # no worker: nothing here runs
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "3", "--bind", f"127.0.0.1:{port}",
         "--config", "python:webhooks.gunicorn_config", "webhooks:create_app()",
         # Not the config's 10 s: the 413 test leaves a half-read connection to wait out.
         "--graceful-timeout", "2"],
        cwd=PROJECT, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers_health(url), what="gunicorn to serve")
        yield url, metrics_dir
    finally:
        # A graceful stop waits up to the graceful timeout for a connection a test left
        # half-read (the 413 on a chunked body); on a busy machine more. Not what is tested.
        stop_server(server)
        redis_client.delete("responder-gunicorn-test")


def test_metrics_merge_all_gunicorn_workers(gunicorn: tuple[str, Path]) -> None:
    url, metrics_dir = gunicorn

    def send(n: int) -> int:
        payload = sample_payload(groupKey=f"gunicorn-{n}")
        payload["alerts"][0]["fingerprint"] = f"gunicorn-{n}"
        headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
        answer = requests.post(f"{url}/webhooks/alertmanager", json=payload, headers=headers)
        return answer.status_code

    def writers() -> set[str]:
        return {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}

    # Which worker takes a connection is the kernel's choice: send batches until at least
    # two workers have counted something (workers still booting take none at first).
    sent = 0
    with ThreadPoolExecutor(max_workers=6) as pool:
        while len(writers()) < 2 and sent < 600:
            assert set(pool.map(send, range(sent, sent + 30))) == {202}
            sent += 30
    assert len(writers()) >= 2, f"{sent} requests all reached one worker"
    text = requests.get(f"{url}/metrics", timeout=5).text
    started = f'responder_deliveries_total{{outcome="started",source="alertmanager"}} {sent}.0'
    assert started in text
    assert f'responder_classifications_total{{priority="P1"}} {sent}.0' in text
    latency = 'responder_request_seconds_count{method="POST",route="/webhooks/alertmanager"}'
    assert f"{latency} {sent}.0" in text


def test_a_body_sent_in_chunks_is_read_whole(gunicorn: tuple[str, Path]) -> None:
    url, _ = gunicorn
    payload = sample_payload(groupKey="chunked")
    body = json.dumps(payload).encode()
    answer = requests.post(
        f"{url}/webhooks/alertmanager",
        data=(body[i : i + 300] for i in range(0, len(body), 300)),  # no Content-Length
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    stored = requests.get(
        f"{url}/deliveries/{answer.json()['delivery_id']}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).json()
    assert stored["payload"] == payload


def test_a_chunked_body_past_256_kb_is_413(gunicorn: tuple[str, Path]) -> None:
    url, _ = gunicorn
    body = json.dumps(sample_payload(groupKey="chunked-too-large")).encode() + b" " * (400 * 1024)
    answer = requests.post(
        f"{url}/webhooks/alertmanager",
        data=(body[i : i + 16384] for i in range(0, len(body), 16384)),  # no Content-Length
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 413, answer.text
    assert answer.json() == {"error": "request body too large", "field": "(body)"}
