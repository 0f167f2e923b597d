"""`responder status`: the backlog at a glance, and whether the responder is the bottleneck."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
import redis

from tasks.backlog import Backlog, read_backlog
from tasks.cli.options import runtime_or_usage_error
from tasks.cli.terminal import say
from tasks.lanes import Lane
from tasks.topology import RedisPrimary, WorkerBeat, redis_primary, worker_beats

BEHIND_SECONDS = 60.0  # urgent work waiting longer than this is worth saying so


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status_command(as_json: bool) -> None:
    """Show queues, the oldest waiting work, the Redis primary, each worker, beat, dead letters."""
    rt = runtime_or_usage_error()
    backlog = read_backlog(rt)
    primary = _primary_or_none(rt.redis)
    workers = worker_beats(rt.redis)
    if as_json:
        shown = {
            **asdict(backlog),
            "redis_primary": asdict(primary) if primary else None,
            "worker_list": [asdict(worker) for worker in workers],
        }
        say(json.dumps(shown, indent=2))
        return
    for line in describe(backlog, primary, workers):
        say(line)


def _primary_or_none(client: redis.Redis) -> RedisPrimary | None:
    """Return the Redis primary, or None when no Sentinel names one (mid-failover)."""
    try:
        return redis_primary(client)
    except redis.RedisError:  # MasterNotFoundError is one
        return None


def describe_topology(primary: RedisPrimary | None, workers: list[WorkerBeat]) -> list[str]:
    """Return the lines naming the Redis primary and each live worker."""
    if primary is None:
        lines = ["WARNING: no Sentinel names a Redis primary now (a failover in progress?)"]
    else:
        said = "the Sentinels name" if primary.source == "sentinel" else "RESPONDER_REDIS_URL names"
        followers = (
            f"{primary.replicas} replica(s) connected"
            if primary.replicas is not None
            else "it did not answer INFO"
        )
        lines = [f"redis: primary {primary.address} ({said} it; {followers})"]
    lines += [
        f"  worker {worker.name}: holding {worker.holding} tasks, "
        f"heartbeat {worker.expires_in_seconds:.1f} s from lapsing"
        for worker in workers
    ]
    return lines


def describe(
    backlog: Backlog, primary: RedisPrimary | None = None, workers: list[WorkerBeat] | None = None
) -> list[str]:
    """Return the status as lines a person reads in a few seconds."""
    topology = describe_topology(primary, workers or []) if workers is not None else []
    lines = topology[:1]
    for lane in (Lane.URGENT, Lane.ROUTINE):
        age = backlog.oldest_seconds[lane]
        waiting = f", oldest waiting {age:.0f} s" if age is not None else ""
        lines.append(f"{lane.value:<8} lane: {backlog.queued[lane]} queued{waiting}")
    lines.append(f"workers: {backlog.workers} alive, holding {backlog.held} tasks")
    lines += topology[1:]
    if backlog.beat:
        beat = backlog.beat
        lines.append(
            f"beat: {beat.host} (pid {beat.pid}) holds the beat lease since {beat.since}, "
            f"{beat.expires_in_seconds:.1f} s left unless renewed"
        )
    else:
        lines.append("WARNING: no beat holds the beat lease: no SLA clock, no recovery")
    lines.append(
        f"PagerDuty: {backlog.budget_used} of {backlog.budget_limit} requests used in the last 60 s"
    )
    lines.append(
        f"coalesced deliveries: {backlog.coalesced}; 'more alerts' notes due: "
        f"{backlog.joined_notes_due}; dead letters: {backlog.dead_letters}"
        + (" (responder deliveries --failed)" if backlog.dead_letters else "")
    )
    if backlog.sla_requeued:
        lines.append(
            f"SLA auditor: {backlog.sla_requeued} due deadlines were not acted on and queued again"
        )
    if backlog.workers == 0:
        lines.append("WARNING: no worker is alive: nothing is being processed")
    urgent_age = backlog.oldest_seconds[Lane.URGENT] or 0.0
    if urgent_age > BEHIND_SECONDS or backlog.budget_used >= backlog.budget_limit:
        lines.append("WARNING: the responder is the bottleneck (urgent work waits or budget spent)")
    return lines
