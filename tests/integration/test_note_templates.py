"""A worker whose policy points at a broken note template refuses to start, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import PROJECT
from triage.policy import builtin_text


def test_a_worker_with_a_broken_note_template_does_not_start(
    responder_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "wording").mkdir()
    (tmp_path / "wording" / "status_update.txt.j2").write_text("Status: {{ staus }}\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(builtin_text() + "\nnotes:\n  templates: wording\n")
    env = {**os.environ, **responder_env, "RESPONDER_POLICY": str(policy)}
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "solo"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 2
    assert "the worker cannot start: note templates:" in worker.stderr
    assert "status_update.txt.j2: uses 'staus', which this note does not have" in worker.stderr
