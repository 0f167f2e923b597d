"""Beat takeover: two beats on one Redis, the lease holder SIGKILLed, the standby's first tick.

Prints, for each try, how long after the kill the standby sent its first SLA tick, and how
many ticks each beat sent before the kill (the standby: none). No worker runs: the ticks stay
in the queues, which are dropped at the end.

    .venv/bin/python -m bench.beat_takeover [--lease 10] [--tries 3]
        [--redis redis://127.0.0.1:6379/12]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

PROJECT = Path(__file__).resolve().parent.parent
QUEUE = "responder-bench-beat"
TICK = "(tasks.pipeline.sla_tick)"


def start(name: str, folder: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """Start one beat, logging to folder/name.log."""
    log = folder / f"{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO",
        "--schedule", str(folder / f"{name}-schedule"),
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    return process, log


def ticks(log: Path) -> int:
    """Return how many SLA ticks a beat's log shows it sent."""
    return log.read_text().count(TICK) if log.exists() else 0


def wait(check: object, timeout: float) -> None:
    """Poll `check` until true; exit with a message after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > end:
            raise SystemExit("timed out")
        time.sleep(0.02)


def one_try(url: str, lease: float) -> tuple[float, int, int]:
    """Run one takeover; return (seconds to the standby's first tick, holder's ticks, standby's)."""
    client = redis.Redis.from_url(url)
    client.delete("responder:beat-lease", QUEUE, f"{QUEUE}-urgent")
    env = {
        **os.environ,
        "RESPONDER_REDIS_URL": url,
        "RESPONDER_QUEUE": QUEUE,
        "RESPONDER_SLA_TICK_SECONDS": "0.5",
        "RESPONDER_BEAT_LEASE_SECONDS": str(lease),
        "RESPONDER_LOG_TICKS": "1",
    }
    with tempfile.TemporaryDirectory() as folder:
        holder, holder_log = start("a", Path(folder), env)
        wait(lambda: ticks(holder_log) >= 1, 60)
        standby, standby_log = start("b", Path(folder), env)
        wait(lambda: "standing by" in standby_log.read_text(), 60)
        time.sleep(3)  # both running: count that only one sends
        before = (ticks(holder_log), ticks(standby_log))
        os.killpg(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        holder.wait()
        wait(lambda: ticks(standby_log) >= 1, lease * 3 + 30)
        took = time.monotonic() - killed
        os.killpg(standby.pid, signal.SIGTERM)
        standby.wait(timeout=30)
    client.delete("responder:beat-lease", QUEUE, f"{QUEUE}-urgent")
    return took, *before


def main() -> None:
    """Run the tries and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    takeovers = []
    for n in range(args.tries):
        took, holder, standby = one_try(args.redis, args.lease)
        takeovers.append(took)
        print(
            f"try {n + 1}: standby's first tick {took:.1f} s after the SIGKILL "
            f"(lease {args.lease:g} s); ticks before the kill: holder {holder}, standby {standby}"
        )
    print(
        f"takeover: median {statistics.median(takeovers):.1f} s, max {max(takeovers):.1f} s "
        f"over {args.tries} tries, lease {args.lease:g} s"
    )


if __name__ == "__main__":
    main()
