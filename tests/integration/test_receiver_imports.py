"""The receiver's process loads none of the worker's modules (it enqueues by task name)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import PROJECT


def test_the_receiver_process_loads_no_task_module_collector_or_bundle_writer() -> None:
    # A process of its own: this test process has imported everything already.
    worker_only = (
        "tasks.pipeline", "tasks.run", "tasks.sla.actions", "tasks.evidence.bundle",
        "tasks.notes.voice", "tasks.actions.act", "tasks.actions.execute",
        "collectors.registry", "collectors.service_health",
        "collectors.prometheus_metrics",
    )  # fmt: skip
    probe = (
        f"import sys, webhooks; prefixes = {worker_only!r}; "
        "print(sorted(m for m in sys.modules "
        "if any(m == p or m.startswith(p + '.') for p in prefixes)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
