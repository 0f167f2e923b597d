"""`responder status` names the Redis primary (and who said so) and each live worker."""

from __future__ import annotations

import pytest

from tasks.backlog import Backlog
from tasks.cli.status import describe
from tasks.lanes import Lane
from tasks.topology import RedisPrimary, WorkerBeat

BACKLOG = Backlog(
    queued={Lane.URGENT: 0, Lane.ROUTINE: 0},
    oldest_seconds={Lane.URGENT: None, Lane.ROUTINE: None},
    held=3, workers=2, budget_used=0, budget_limit=960, coalesced=0, dead_letters=0,
    joined_notes_due=0,
)  # fmt: skip
WORKERS = [WorkerBeat("failover@host-a", 2, 14.0), WorkerBeat("failover@host-b", 1, 9.5)]


@pytest.mark.parametrize(
    ("primary", "line"),
    [
        (
            RedisPrimary("10.77.0.2:6379", "sentinel", 2),
            "redis: primary 10.77.0.2:6379 (the Sentinels name it; 2 replica(s) connected)",
        ),
        (
            RedisPrimary("127.0.0.1:6379", "url", 0),
            "redis: primary 127.0.0.1:6379 (RESPONDER_REDIS_URL names it; 0 replica(s) connected)",
        ),
        (
            RedisPrimary("10.77.0.3:6379", "sentinel", None),
            "redis: primary 10.77.0.3:6379 (the Sentinels name it; it did not answer INFO)",
        ),
        (None, "WARNING: no Sentinel names a Redis primary now (a failover in progress?)"),
    ],
)
def test_status_first_line_names_the_primary_and_its_source(
    primary: RedisPrimary | None, line: str
) -> None:
    assert describe(BACKLOG, primary, WORKERS)[0] == line


def test_status_lists_each_worker_under_the_worker_count() -> None:
    lines = describe(BACKLOG, RedisPrimary("10.77.0.2:6379", "sentinel", 2), WORKERS)
    at = lines.index("workers: 2 alive, holding 3 tasks")
    assert lines[at + 1 : at + 3] == [
        "  worker failover@host-a: holding 2 tasks, heartbeat 14.0 s from lapsing",
        "  worker failover@host-b: holding 1 tasks, heartbeat 9.5 s from lapsing",
    ]


def test_status_without_topology_keeps_its_old_lines() -> None:
    assert describe(BACKLOG)[0].startswith("urgent")
