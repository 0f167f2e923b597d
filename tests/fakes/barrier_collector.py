"""A collector that finishes only when another run of it waits at the same time."""

from __future__ import annotations

import threading

from collectors.contract import CollectorContext, Evidence, Status, Target

BARRIER = threading.Barrier(2, timeout=10)


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Wait for a second caller: run one after the other, this fails (the barrier breaks)."""
    BARRIER.wait()
    return Evidence("barrier", Status.OK, "met the other collector")
