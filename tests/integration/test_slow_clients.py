"""The production receiver under slow clients: idle bodies hold no worker, and end in a 408.

The server is gunicorn as `responder run` and compose start it (webhooks/gunicorn_config.py:
two workers, its worker class and logger), with its access log written to a file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tasks.evidence.links import incident_link
from tests.support import (
    LINK_SECRET,
    PROJECT,
    TOKEN,
    answers_health,
    sample_payload,
    stop_server,
    wait_for,
)

QUEUE = "responder-slow-clients-test"  # no worker: nothing here runs
SLOW_HEAD = (
    b"POST /webhooks/pagerduty HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\n"
    b"X-PagerDuty-Signature: v1=" + b"0" * 64 + b"\r\n"
    b"Content-Length: 100000\r\n\r\n"
    b'{"event": '
)


class Server:
    """A running receiver: its URL and its access log."""

    def __init__(self, url: str, access_log: Path) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.access_log = access_log


@pytest.fixture
def start_server(
    responder_env: dict[str, str], tmp_path: Path, redis_client
) -> Iterator[Callable[[float], Server]]:
    """Return a function that starts the production receiver with a body read deadline."""
    processes: list[subprocess.Popen] = []

    def start(body_read_seconds: float) -> Server:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        metrics_dir = tmp_path / f"metrics-{port}"
        metrics_dir.mkdir()
        access_log = tmp_path / f"access-{port}.log"
        env = {
            **os.environ,
            **responder_env,
            "RESPONDER_QUEUE": QUEUE,
            "RESPONDER_BODY_READ_SECONDS": str(body_read_seconds),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--config",
                    "python:webhooks.gunicorn_config",
                    "--access-logfile",
                    str(access_log),
                    "webhooks:create_app()",
                ],
                cwd=PROJECT,
                env=env,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )
        server = Server(f"http://127.0.0.1:{port}", access_log)
        wait_for(lambda: answers_health(server.url), what="gunicorn to serve")
        return server

    yield start
    for process in processes:
        # Quick shutdown (SIGQUIT): a graceful one waits out graceful_timeout, 10 s, for the
        # greenlets still reading the slow bodies these tests leave behind.
        stop_server(process, signal.SIGQUIT)
    redis_client.delete(QUEUE)


def hold_slow_bodies(server: Server, count: int) -> list[socket.socket]:
    """Open `count` connections that announce a large body, send a few bytes and go silent."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(SLOW_HEAD)
        held.append(sock)
    return held


def answer_of(sock: socket.socket) -> tuple[int, dict]:
    """Read the status and JSON body the server answers on `sock` (it closes the connection)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_health_and_alertmanager_are_answered_while_slow_bodies_outnumber_workers(
    start_server,
) -> None:
    # A deadline far beyond the requests below: only a server slow clients cannot hold answers.
    server = start_server(60)
    held = hold_slow_bodies(server, 12)  # six times the two workers
    try:
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        payload = sample_payload(groupKey="slow-clients")
        payload["alerts"][0]["fingerprint"] = "slow-clients-1"
        posted = requests.post(
            f"{server.url}/webhooks/alertmanager",
            json=payload,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert posted.status_code == 202, posted.text
        assert posted.json()["priority"] == "P1"
    finally:
        for sock in held:
            sock.close()


def test_a_body_that_stops_arriving_is_answered_408_and_counted(start_server) -> None:
    server = start_server(1)
    (sock,) = hold_slow_bodies(server, 1)
    with sock:
        status, body = answer_of(sock)
    assert status == 408
    assert body == {
        "error": "the request body did not arrive within 1 s (10 of 100000 bytes received); "
        "send it whole, without pauses",
        "field": "(body)",
    }
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert 'responder_rejections_total{reason="slow_body",source="pagerduty"} 1.0' in metrics


def test_a_pagerduty_post_without_a_usable_signature_is_refused_before_its_body(
    start_server,
) -> None:
    server = start_server(60)
    for header, error in (
        (b"", "missing X-PagerDuty-Signature header"),
        (b"X-PagerDuty-Signature: v1=abc\r\n", "malformed v1 signature: expected 64 hex digits"),
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            # The headers alone, announcing a body that never comes: the answer cannot wait for it.
            sock.sendall(
                b"POST /webhooks/pagerduty HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n" + header + b"Content-Length: 100000\r\n\r\n"
            )
            status, body = answer_of(sock)
        assert (status, body) == (400, {"error": error, "field": "X-PagerDuty-Signature"})


def test_the_access_log_never_holds_a_signed_link(start_server) -> None:
    server = start_server(10)
    expires = int(datetime.now(UTC).timestamp()) + 7 * 86400
    link = incident_link(server.url, "inc-slow-1", expires, LINK_SECRET)
    signature = link.split("sig=")[1]
    requests.get(link, timeout=10)  # answered or not, the request line is logged
    requests.get(f"{server.url}/bundles/b-1/?expires={expires}&sig={signature}", timeout=10)
    logged = wait_for(lambda: _lines(server.access_log, 2), what="the access log's lines")
    assert signature not in logged
    assert "GET /incidents/inc-slow-1?expires=***&sig=*** HTTP/1.1" in logged
    assert "GET /bundles/b-1/?expires=***&sig=*** HTTP/1.1" in logged


def _lines(path: Path, count: int) -> str | None:
    text = path.read_text() if path.exists() else ""
    return text if text.count("sig=") >= count else None
