"""Loaded by every Python process of a `make test-clock` run (PYTHONPATH), under libfaketime.

libfaketime 0.9.10 (Debian 12) and Python 3.11 disagree about the monotonic clock: faked, every
`threading` wait with a timeout (Event.wait, Lock.acquire, queue.get) hangs for good, since
Python computes the deadline on the faked clock and glibc waits for it on the real one; not
faked (FAKETIME_DONT_FAKE_MONOTONIC=1), `time.sleep` fails with EINVAL, since libfaketime
refuses the absolute monotonic deadline Python gives clock_nanosleep. The run keeps the real
monotonic clock and sleeps with select() instead, which takes a relative timeout.
"""

from __future__ import annotations

import select
import time

_monotonic = time.monotonic


def _sleep(seconds: float) -> None:
    """Sleep `seconds` on the real monotonic clock, as time.sleep does."""
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = _monotonic() + seconds
    while (left := deadline - _monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
