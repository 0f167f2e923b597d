"""The live correlation ledger's cost: one placement (lock, load, decide, save) with N open.

Every new alert group's first response places it in the ledger, under one lock. This fills
the ledger with `--open` incidents (each `--members` alerts, on services outside the flow so
nothing joins) and times `--placements` more, printing p50, p99 and the document's size.

    .venv/bin/python -m bench.correlation_ledger [--open 200] [--members 20] [--placements 200]

Uses BENCH_REDIS_URL (default redis://127.0.0.1:6379/14); its ledger key is deleted first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import redis

from tasks.store.correlation import LEDGER_KEY, CorrelationLedger
from triage.correlation import AlertGroup, Member
from triage.policy import builtin


def group(n: int, members: int, flow: bool) -> AlertGroup:
    """Return the n-th group: `members` alerts, a flow outage or a cosmetic one."""
    labels = {"category": "outage", "service": "risk-manager"} if flow else {"category": "cosmetic"}
    return AlertGroup(
        f"g-{n}",
        tuple(Member.of({"alertname": f"A{n}", "instance": f"i{m}", **labels}, True)
              for m in range(members)),
    )  # fmt: skip


def main() -> None:
    """Fill the ledger, then time placements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=200)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--placements", type=int, default=200)
    args = parser.parse_args()
    client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    client.delete(LEDGER_KEY)
    policy = builtin()
    policy = replace(policy, correlation=replace(policy.correlation, mode="on"))
    ledger = CorrelationLedger(client)
    now = datetime.now(UTC)
    keep = timedelta(hours=4)
    for n in range(args.open):
        g = group(n, args.members, flow=False)
        ledger.update(lambda held, g=g: held.observe(g, now, policy, lambda: g.key), now, keep)
    took = []
    for n in range(args.open, args.open + args.placements):
        g = group(n, args.members, flow=n % 2 == 0)
        started = time.perf_counter()
        ledger.update(lambda held, g=g: held.observe(g, now, policy, lambda: g.key), now, keep)
        took.append(time.perf_counter() - started)
    took.sort()
    size = client.strlen(LEDGER_KEY)
    print(
        f"{args.open} incidents open x {args.members} alerts, then {args.placements} placements "
        f"(half flow outages, which join one incident): p50 {statistics.median(took) * 1000:.1f} "
        f"ms, p99 {took[int(0.99 * (len(took) - 1))] * 1000:.1f} ms; ledger {size / 1024:.0f} KiB"
    )
    client.delete(LEDGER_KEY)


if __name__ == "__main__":
    main()
