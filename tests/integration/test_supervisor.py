"""`responder run` restarts a part that dies, after a back-off, and says so."""

from __future__ import annotations

import sys

import pytest

from tasks.cli import Supervisor


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
