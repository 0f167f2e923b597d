"""`responder run` as a user starts it: each part named, "listening" only once it is true,
links in notes on the port it serves, and the foreground free of the internal ticks."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis
import requests

from tests.support import LINK_SECRET, clear_responder_keys, sample_payload, wait_for

RESPONDER = str(Path(sys.executable).with_name("responder"))
QUEUE = "responder-run-test"  # its own lanes: the session worker takes none of this work


@dataclass
class Running:
    """A `responder run` process, its port, its working directory and its output."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    log: Path

    def output(self) -> str:
        """Return everything it and its parts printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """Stop it as Ctrl-C does; return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # Only when stopping failed: take the whole tree down so no part outlives the test.
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
            self.process.kill()
            self.process.wait(timeout=60)
            raise


def free_port() -> int:
    """Return a loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(directory: Path, port: int, redis_url: str, test_policy: Path, **extra: str) -> Running:
    """Start `responder run --port PORT` in `directory`, as a user's shell would."""
    directory.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESPONDER_")}
    env.update(
        RESPONDER_REDIS_URL=redis_url,
        RESPONDER_QUEUE=QUEUE,
        RESPONDER_POLICY=str(test_policy),
        RESPONDER_ALLOW_UNAUTHENTICATED="1",
        RESPONDER_LINK_SECRET=LINK_SECRET,
        RESPONDER_COLLECTOR_TIMEOUT="2",
        RESPONDER_OUTBOX_DIR=str(directory / "outbox"),
        RESPONDER_BUNDLE_DIR=str(directory / "bundles"),
        **extra,
    )
    log = directory / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [RESPONDER, "run", "--port", str(port), "--concurrency", "2"],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Running(process, port, directory, log)


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, test_policy: Path
) -> Iterator[Running]:
    """Run the whole responder in the foreground, with RESPONDER_PUBLIC_URL unset."""
    # Its beat acts on whatever state it finds: deadlines other tests left would add notes.
    state = redis.Redis.from_url(redis_url)
    clear_responder_keys(state)
    state.close()
    run = start(tmp_path_factory.mktemp("run"), free_port(), redis_url, test_policy)
    try:
        yield run
    finally:
        run.stop()


def test_listening_is_said_once_the_port_accepts_connections(running: Running) -> None:
    said = f"responder: listening on http://127.0.0.1:{running.port} (Ctrl-C stops everything)"
    wait_for(lambda: said in running.output(), what="the listening line")
    # Said only after gunicorn bound the port: a connection now must be accepted.
    socket.create_connection(("127.0.0.1", running.port), timeout=5).close()


def test_a_note_links_to_the_bundle_on_the_port_it_runs_on(running: Running) -> None:
    wait_for(lambda: "responder: listening on" in running.output(), what="listening")
    base = f"http://127.0.0.1:{running.port}"
    assert f"responder: links in notes point at {base} (RESPONDER_PUBLIC_URL)" in running.output()
    payload = sample_payload(groupKey="run-public-url")
    accepted = requests.post(f"{base}/webhooks/alertmanager", json=payload, timeout=10)
    assert accepted.status_code == 202, accepted.text

    def evidence_link() -> str | None:
        # Notes only: status updates and other writes go to the outbox too.
        for path in sorted((running.directory / "outbox").glob("*-note-*.json")):
            content = json.loads(path.read_text())["json"]["note"]["content"]
            for word in content.split():
                if "/incidents/" in word or "/bundles/" in word:
                    return word
        return None

    link = wait_for(evidence_link, what="the evidence note with its page link")
    assert link.startswith((f"{base}/incidents/", f"{base}/bundles/")), link
    assert requests.get(link, timeout=10).status_code == 200


def test_the_internal_ticks_stay_out_of_the_foreground(running: Running) -> None:
    base = f"http://127.0.0.1:{running.port}"
    wait_for(lambda: "responder: listening on" in running.output(), what="listening")

    def heartbeat_seen() -> bool:
        checks = requests.get(f"{base}/readyz", timeout=5).json()["checks"]
        return checks.get("last_heartbeat", "none yet") != "none yet"

    # Beat sent the heartbeat and a worker ran it: their lines would be in the output by now.
    wait_for(heartbeat_seen, what="beat's heartbeat to run")
    # Real work still shows: a delivery's response task, received and done.
    payload = sample_payload(groupKey="run-quiet-ticks")
    requests.post(f"{base}/webhooks/alertmanager", json=payload, timeout=10).raise_for_status()
    wait_for(
        lambda: re.search(r"tasks\.pipeline\.respond\[\S+\] succeeded", running.output()),
        what="the response task's line",
    )
    output = running.output()
    for tick in ("heartbeat", "sla_tick", "joined_tick", "recover"):
        assert f"tasks.pipeline.{tick}[" not in output
    assert "Sending due task" not in output
    assert "beat: Starting..." in output  # beat's own start-up lines are kept


def test_a_part_that_dies_is_named_and_started_again(running: Running) -> None:
    wait_for(lambda: "responder: listening on" in running.output(), what="listening")

    def urgent_worker() -> psutil.Process | None:
        for child in psutil.Process(running.process.pid).children():
            if "urgent@%h" in child.cmdline():
                return child
        return None

    wait_for(urgent_worker, timeout=120, what="the urgent worker").kill()
    wait_for(
        lambda: "responder: the urgent worker started again" in running.output(),
        timeout=120,
        what="the urgent worker's restart",
    )
    assert "responder: the urgent worker exited (-9); restarting it in 1 s" in running.output()


def test_ctrl_c_stops_every_part(running: Running) -> None:
    wait_for(lambda: "responder: listening on" in running.output(), what="listening")
    parts = psutil.Process(running.process.pid).children(recursive=True)
    assert running.stop() == 0
    assert not [p for p in parts if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_receiver_that_cannot_bind_is_named_and_never_said_listening(
    tmp_path: Path, redis_url: str, test_policy: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = start(tmp_path, port, redis_url, test_policy)
        try:
            # gunicorn tries to bind five times, a second apart, then exits 1.
            wait_for(
                lambda: "responder: the receiver exited (1)" in run.output(),
                what="the receiver to give up on the taken port",
            )
        finally:
            run.stop()
    assert "listening on" not in run.output()
