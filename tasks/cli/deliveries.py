"""`responder deliveries` and `responder replay`: the delivery log from the command line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from tasks.celery_app import make_celery
from tasks.cli.options import runtime_or_usage_error, window_start
from tasks.cli.terminal import say
from tasks.lanes import queue_for
from tasks.names import CLOSE_INCIDENT, RESPOND
from tasks.runtime import Runtime
from tasks.sla import incident_events
from tasks.store.dead_letters import DeadLetter
from tasks.store.deliveries import run_id
from triage.models import PayloadError, parse_alertmanager, parse_pagerduty

SOURCES = click.Choice(["alertmanager", "pagerduty"])


def _select(
    runtime: Runtime, delivery_id: str | None, since: datetime | None, source: str | None
) -> list[dict[str, Any]]:
    ids = [delivery_id] if delivery_id else runtime.deliveries.list_ids(since)
    found = []
    for one in ids:
        delivery = runtime.deliveries.get(one)
        if delivery is None:
            if delivery_id:
                raise click.ClickException(f"no delivery {one!r} (unknown or past retention)")
            continue
        if source is None or delivery.get("source") == source:
            found.append(delivery)
    return found


def describe(delivery: dict[str, Any]) -> dict[str, Any]:
    """Return the facts an operator scans a delivery list for."""
    classification = delivery.get("classification") or {}
    if delivery.get("source") == "pagerduty":
        what = f"{delivery.get('event_type')} {delivery.get('incident_id') or ''}".strip()
    else:
        what = ", ".join(dict.fromkeys(a["name"] for a in delivery.get("alerts", [])))
    return {
        "id": delivery["id"],
        "source": delivery.get("source"),
        "received_at": delivery.get("received_at"),
        "what": what,
        "priority": classification.get("priority"),
        "duplicate": not delivery.get("fresh_keys"),
        "pipeline": delivery.get("pipeline"),
        "bundle_id": delivery.get("bundle_id"),
    }


def describe_dead_letter(letter: DeadLetter) -> dict[str, Any]:
    """Return the facts an operator needs about work that failed for good."""
    return {
        "id": letter.id,
        "failed_at": datetime.fromtimestamp(letter.failed_at, UTC).isoformat(),
        "task": letter.task.rsplit(".", 1)[-1],
        "step": letter.step,
        "delivery_id": letter.delivery_id,
        "incident_id": letter.incident_id,
        "reason": letter.reason,
    }


def _print_dead_letters(runtime: Runtime, as_json: bool) -> None:
    rows = [describe_dead_letter(letter) for letter in runtime.dead_letters.list()]
    if as_json:
        say(json.dumps(rows, indent=2))
        return
    if not rows:
        say("nothing failed for good")
    for row in rows:
        about = row["delivery_id"] or row["incident_id"] or "-"
        say(f"{row['failed_at'][:19]}  {row['step'] or row['task']:<16} {about}  {row['reason']}")


@click.command("deliveries")
@click.option("--since", help="Only deliveries received in this window, e.g. 1h or 2d.")
@click.option("--source", type=SOURCES, help="Only deliveries from this source.")
@click.option("--failed", is_flag=True, help="List work that failed for good (dead letters).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def deliveries_command(since: str | None, source: str | None, failed: bool, as_json: bool) -> None:
    """List stored deliveries, oldest first; with --failed, the dead letters."""
    runtime = runtime_or_usage_error()
    if failed:
        _print_dead_letters(runtime, as_json)
        return
    rows = [describe(d) for d in _select(runtime, None, window_start(since), source)]
    if as_json:
        say(json.dumps(rows, indent=2))
        return
    if not rows:
        say("no deliveries")
        return
    for row in rows:
        flag = "dup" if row["duplicate"] else row["priority"] or "-"
        say(f"{row['id']}  {row['source']:<12} {flag:<4} {row['what'][:40]:<40} {row['pipeline']}")


@dataclass(frozen=True)
class ReplayPlan:
    """What replaying one delivery would do, and why not when it would not."""

    delivery: dict[str, Any]
    action: str  # "respond", "apply" or "skip"
    why: str


def plan_replay(delivery: dict[str, Any], force: bool) -> ReplayPlan:
    """Decide what replaying `delivery` does; duplicates are skipped unless forced."""
    if not delivery.get("fresh_keys") and not force:
        return ReplayPlan(delivery, "skip", "a duplicate of an earlier delivery (--force runs it)")
    try:
        payload = json.loads(delivery["raw_body"])
        if delivery.get("source") == "pagerduty":
            event = parse_pagerduty(payload)
            if event.incident is None:
                return ReplayPlan(delivery, "skip", f"{event.event_type} has no incident")
            if event.starts_response:
                return ReplayPlan(delivery, "respond", f"incident {event.incident.id}")
            return ReplayPlan(delivery, "apply", f"{event.event_type} to the incident record")
        group = parse_alertmanager(payload)
    except (PayloadError, ValueError) as exc:
        return ReplayPlan(delivery, "skip", f"stored body no longer parses: {exc}")
    if not group.firing:
        return ReplayPlan(delivery, "skip", "no firing alert (resolved alerts are not diagnosed)")
    names = ", ".join(dict.fromkeys(a.name for a in group.firing))
    return ReplayPlan(delivery, "respond", names)


@click.command("replay")
@click.argument("delivery_id", required=False)
@click.option("--since", help="Replay every delivery received in this window, e.g. 1h.")
@click.option("--source", type=SOURCES, help="Only deliveries from this source.")
@click.option("--dry-run", is_flag=True, help="Say what would run; change nothing.")
@click.option("--force", is_flag=True, help="Replay duplicates too (ignore dedup).")
@click.option("--failed", is_flag=True, help="Send every dead letter's task again.")
def replay_command(
    delivery_id: str | None,
    since: str | None,
    source: str | None,
    dry_run: bool,
    force: bool,
    failed: bool,
) -> None:
    """Run stored deliveries again: DELIVERY_ID, all of a window with --since, or --failed."""
    if sum(map(bool, (delivery_id, since, failed))) != 1:
        raise click.UsageError("give one of DELIVERY_ID, --since or --failed")
    runtime = runtime_or_usage_error()
    if failed:
        _replay_dead_letters(runtime, dry_run)
        return
    plans = [
        plan_replay(d, force) for d in _select(runtime, delivery_id, window_start(since), source)
    ]
    celery = None if dry_run else make_celery(runtime.settings)
    for plan in plans:
        say(_replay_one(runtime, celery, plan, dry_run))
    skipped = sum(plan.action == "skip" for plan in plans)
    if since:
        ran = "would run" if dry_run else "replayed"
        say(f"{len(plans) - skipped} {ran}, {skipped} skipped")
    # The exit status rule (README, CLI): a delivery asked for and not run, by its id or in a
    # window, was refused: 1, whether it was named or found (a dry run exits as the run would).
    if skipped:
        raise SystemExit(1)


def _replay_dead_letters(runtime: Runtime, dry_run: bool) -> None:
    """Send each dead letter's task again with its arguments; once-markers keep effects single."""
    letters = runtime.dead_letters.list()
    if not letters:
        say("nothing failed for good")
        return
    celery = None if dry_run else make_celery(runtime.settings)
    for letter in letters:
        about = letter.delivery_id or letter.incident_id or "-"
        if celery is None:
            say(f"would send {letter.task} again for {about}: {letter.reason}")
            continue
        celery.send_task(letter.task, args=letter.args, queue=letter.queue)
        runtime.dead_letters.take([letter.id])
        say(f"sent {letter.task} again for {about} (it failed: {letter.reason})")


def _replay_one(runtime: Runtime, celery: Any, plan: ReplayPlan, dry_run: bool) -> str:
    delivery_id = plan.delivery["id"]
    if plan.action == "skip":
        return f"skip {delivery_id}: {plan.why}"
    if dry_run:
        return f"would {plan.action} {delivery_id}: {plan.why}"
    if plan.action == "apply":
        event = parse_pagerduty(json.loads(plan.delivery["raw_body"]))
        newest = incident_events.apply_event(runtime, event)
        if not newest:
            return f"applied {delivery_id}: {plan.why}; older than the record, clocks untouched"
        if event.incident is not None and incident_events.closes(event):
            queue = incident_events.closing_queue(
                runtime.settings.queue, event.incident, runtime.policy, datetime.now(UTC)
            )
            celery.send_task(CLOSE_INCIDENT, args=[delivery_id], queue=queue)
            return f"applied {delivery_id}: {plan.why}; closing note queued"
        return f"applied {delivery_id}: {plan.why}"
    run = runtime.deliveries.next_run(delivery_id)
    priority = (plan.delivery.get("classification") or {}).get("priority")
    celery.send_task(
        RESPOND, args=[delivery_id, run], queue=queue_for(runtime.settings.queue, priority)
    )
    runtime.deliveries.update(delivery_id, pipeline="queued (replay)")
    return f"replaying {delivery_id} as run {run} (bundle {run_id(delivery_id, run)}): {plan.why}"
