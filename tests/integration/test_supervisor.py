"""`responder run` restarts a part that dies, after a back-off, and says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tasks.cli import Supervisor
from tests.support import wait_for


def test_a_part_that_dies_is_started_again_after_its_backoff(
    capsys: pytest.CaptureFixture[str],
) -> None:
    supervisor = Supervisor({"worker": [sys.executable, "-c", "raise SystemExit(3)"]}, {})
    supervisor.start("worker")
    first = supervisor.children["worker"]
    first.wait(timeout=30)
    supervisor.check(now=100.0)
    assert supervisor.restart_at == {"worker": 100.0 + Supervisor.FIRST_BACKOFF}
    supervisor.check(now=100.5)
    assert supervisor.children["worker"] is first  # still backing off
    supervisor.check(now=101.0)
    second = supervisor.children["worker"]
    assert second is not first
    second.wait(timeout=30)
    supervisor.check(now=102.0)  # died again at once: the back-off doubles
    assert supervisor.restart_at == {"worker": 102.0 + 2 * Supervisor.FIRST_BACKOFF}
    supervisor.stop_all()
    err = capsys.readouterr().err
    assert "the worker exited (3); restarting it in 1 s" in err
    assert "the worker started again" in err


def test_a_part_is_announced_ready_once_it_writes_its_file_not_by_a_stale_one(
    tmp_path: Path,
) -> None:
    ready = tmp_path / "ready"
    ready.write_text("http://127.0.0.1:1 (a last run's)")
    go = tmp_path / "go"
    # The part writes its file only once the test says so, whole, as the receiver does
    # (webhooks/gunicorn_config.when_ready): written in place, an empty file could be read.
    script = (
        "import pathlib, time\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n"
        f"partial = pathlib.Path({str(ready) + '.partial'!r})\n"
        "partial.write_text('http://127.0.0.1:8080')\n"
        f"partial.replace({str(ready)!r})\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor(
        {"receiver": [sys.executable, "-c", script]}, {}, ready_files={"receiver": ready}
    )
    try:
        supervisor.start("receiver")
        assert supervisor.newly_ready() == []  # the stale file went at start
        go.touch()
        announced = wait_for(supervisor.newly_ready, timeout=120, what="the part's ready file")
        assert announced == [("receiver", "http://127.0.0.1:8080")]
        assert supervisor.newly_ready() == []  # once
    finally:
        supervisor.stop_all()
