"""`responder sla`: open incidents with their next deadlines and how long is left."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import click

from tasks.cli.options import runtime_or_usage_error
from tasks.cli.terminal import say
from tasks.store.sla_clock import left


@click.command("sla")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def sla_command(as_json: bool) -> None:
    """List running SLA deadlines by incident, soonest first."""
    pending = runtime_or_usage_error().clock.pending()
    now = datetime.now(UTC)
    if as_json:
        say(json.dumps([{**asdict(d), "left": left(d, now)} for d in pending], indent=2))
        return
    if not pending:
        say("no running SLA clocks")
        return
    for deadline in pending:
        due = deadline.due[:16].replace("T", " ")
        say(
            f"{deadline.incident_id:<12} {deadline.priority}  {deadline.kind:<18} {due} UTC  "
            f"{left(deadline, now):<10} {deadline.title[:50]}"
        )
