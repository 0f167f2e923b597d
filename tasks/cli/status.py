"""`responder status`: the backlog at a glance, and whether the responder is the bottleneck."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from tasks.backlog import Backlog, read_backlog
from tasks.cli.options import runtime_or_usage_error
from tasks.cli.terminal import say
from tasks.lanes import Lane

BEHIND_SECONDS = 60.0  # urgent work waiting longer than this is worth saying so


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status_command(as_json: bool) -> None:
    """Show queues per lane, the oldest waiting work, workers, PagerDuty budget, dead letters."""
    backlog = read_backlog(runtime_or_usage_error())
    if as_json:
        say(json.dumps(asdict(backlog), indent=2))
        return
    for line in describe(backlog):
        say(line)


def describe(backlog: Backlog) -> list[str]:
    """Return the status as lines a person reads in a few seconds."""
    lines = []
    for lane in (Lane.URGENT, Lane.ROUTINE):
        age = backlog.oldest_seconds[lane]
        waiting = f", oldest waiting {age:.0f} s" if age is not None else ""
        lines.append(f"{lane.value:<8} lane: {backlog.queued[lane]} queued{waiting}")
    lines.append(f"workers: {backlog.workers} alive, holding {backlog.held} tasks")
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
