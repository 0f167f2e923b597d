"""What judging again costs: `next_judgement` (two classifications of every firing alert, at
now and at the next market open or close), which every run's `start_clock` now pays, and
`judge` at the rejudge deadline. Pure: no Redis, no network.

    .venv/bin/python -m bench.rejudge [--repeat 2000]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from triage.models import Alert
from triage.policy import builtin
from triage.rejudge import judge, next_judgement

SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=ZoneInfo("America/New_York"))


def stale(n: int) -> list[Alert]:
    """Return `n` firing MarketDataStale alerts (a group Alertmanager sends)."""
    labels = {"alertname": "MarketDataStale", "category": "market-data",
              "service": "data-ingestor", "severity": "critical"}  # fmt: skip
    return [
        Alert("firing", {**labels, "instance": f"i{i}"}, {}, SATURDAY_NOON, "", None, "", f"f{i}")
        for i in range(n)
    ]


def main() -> None:
    """Print microseconds per call for groups of 1, 10 and 100 alerts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    policy = builtin()
    print(f"{'alerts':>6} {'next_judgement us':>18} {'judge us':>9}")
    for n in (1, 10, 100):
        alerts = stale(n)
        repeat = max(args.repeat // n, 10)
        began = time.perf_counter()
        for _ in range(repeat):
            next_judgement(alerts, policy, SATURDAY_NOON)
        per_next = (time.perf_counter() - began) / repeat * 1e6
        began = time.perf_counter()
        for _ in range(repeat):
            judge(alerts, policy, SATURDAY_NOON)
        per_judge = (time.perf_counter() - began) / repeat * 1e6
        print(f"{n:>6} {per_next:>18.1f} {per_judge:>9.1f}")


if __name__ == "__main__":
    main()
