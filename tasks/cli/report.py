"""`responder report`: the runbook's Incident Metrics (MTTA, MTTR, SLA compliance) per priority."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from tasks.cli.options import runtime_or_usage_error, window_start
from tasks.cli.terminal import say
from triage import report


@click.command("report")
@click.option(
    "--since", default="7d", show_default=True, help="Incidents whose clock started in this window."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def report_command(since: str, as_json: bool) -> None:
    """Print MTTA, MTTR and SLA compliance per priority from the stored incident records."""
    runtime = runtime_or_usage_error()
    start = window_start(since)
    if start is None:
        raise click.BadParameter("expected a duration like 24h or 7d", param_hint="--since")
    records = runtime.incidents.started_since(start)
    histories = [runtime.incidents.history(record.get("id", "")) for record in records]
    policy = runtime.policy
    now = datetime.now(UTC)
    times = [t for t in map(report.from_record, records, histories) if t is not None]
    rows = report.metrics(times, policy, now)
    if as_json:
        payload = {
            "since": start.isoformat(),
            "until": now.isoformat(),
            "incidents": len(times),
            "priorities": [row.to_dict() for row in rows],
        }
        say(json.dumps(payload, indent=2))
        return
    say(f"{len(times)} incidents since {start:%Y-%m-%d %H:%M} UTC ({since})")
    # A template the policy overrides that cannot render is configuration: the group says so
    # and exits 2, as for any broken policy.
    say(runtime.voice.report(rows))
