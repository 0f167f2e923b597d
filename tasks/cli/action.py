"""`responder action`: list, show, propose, approve, deny and run runbook actions from a
terminal, recorded with the operator's name (`--as`). The approval path is the same one a
PagerDuty workflow takes; the action runs in the worker."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from redis import RedisError

from tasks.actions import approval, recheck
from tasks.actions.approval import Outcome
from tasks.celery_app import make_celery
from tasks.cli.options import runtime_or_usage_error
from tasks.cli.terminal import say
from tasks.evidence.approval_links import approval_link, identity_of
from tasks.lanes import actions_queue
from tasks.names import ACT
from tasks.notify.approval_links import link_minutes
from tasks.runtime import Runtime
from tasks.settings import MAX_APPROVAL_LINK_MINUTES
from tasks.store.proposals import WAITING
from triage.actions import ActionRefused

VIA = "cli"

as_option = click.option(
    "--as", "who", required=True, help="Your name, PagerDuty user id or e-mail, for the audit."
)
incident_option = click.option(
    "--incident", "incident_id", required=True, help="The PagerDuty incident id it is for."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group("action")
def action_group() -> None:
    """Runbook actions: the catalog, proposals, approvals and their audit record."""


@action_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List the action catalog and the latest proposals."""
    rt = runtime_or_usage_error()
    recent = _redis(lambda: approval.proposals(rt).recent())
    if as_json:
        catalog = [
            {
                "name": a.name,
                "does": a.does,
                "call": a.call,
                "target": a.service or ("(every service)" if a.validation else "(named)"),
            }
            for a in rt.policy.actions.catalog.values()
        ]
        say(json.dumps({"catalog": catalog, "proposals": [asdict(p) for p in recent]}))
        return
    say("Catalog:")
    for action in rt.policy.actions.catalog.values():
        target = action.service or ("<every service>" if action.validation else "<catalog service>")
        say(f"  {action.name:<16} {target:<18} {action.call:<32} {action.does}")
    say("Proposals:" if recent else "No proposals yet.")
    for p in recent:
        say(
            f"  {p.id}  {p.proposed_at[:19].replace('T', ' ')}  {p.status:<9} {p.action} "
            f"on {p.target}  incident {p.incident_id}"
        )


@action_group.command("show")
@click.argument("proposal_id")
@json_option
def show_command(proposal_id: str, as_json: bool) -> None:
    """Show one proposal's audit record and its lines in the incident's history."""
    rt = runtime_or_usage_error()
    proposal = _redis(lambda: approval.proposals(rt).get(proposal_id))
    if proposal is None:
        raise click.ClickException(f"no proposal {proposal_id!r} (unknown or past retention)")
    history = [
        entry
        for entry in _redis(lambda: rt.incidents.history(proposal.incident_id))
        if f"action {proposal.id} " in entry["what"]
    ]
    if as_json:
        say(json.dumps({**asdict(proposal), "history": history}, indent=2))
        return
    record = asdict(proposal)
    checks = record.pop("checks")
    for name, value in record.items():
        if value not in ("", 0, 0.0) or name in ("status", "id"):
            say(f"{name + ':':<13} {value}")
    for check in checks:
        mark = "OK" if check["passed"] else "FAILED"
        say(f"check:        {mark} {check['check']} ({check['last']}, {check['seconds']} s)")
    say("history:")
    for entry in history:
        say(f"  {entry['at'][:19].replace('T', ' ')}  {entry['by']}: {entry['what']}")


@action_group.command("propose")
@click.argument("action")
@click.argument("target", required=False)
@incident_option
@as_option
def propose_command(action: str, target: str | None, incident_id: str, who: str) -> None:
    """Propose ACTION (on catalog service TARGET) for someone allowed to approve."""
    # It queues work: the proposal's buttons go to the incident's Slack thread.
    rt = runtime_or_usage_error(queue_tasks=True)
    try:
        proposal = _redis(lambda: approval.propose(rt, action, target, incident_id, who))
    except ActionRefused as exc:
        raise click.ClickException(f"refused: {exc}") from None
    say(
        f"proposed {proposal.id}: {proposal.action} on {proposal.target}, "
        f"until {proposal.expires_at[:16].replace('T', ' ')} UTC; "
        f"approve with: responder action approve {proposal.id} --as NAME"
    )


@action_group.command("approve")
@click.argument("proposal_id")
@as_option
def approve_command(proposal_id: str, who: str) -> None:
    """Approve a proposal: the worker runs it once, verifies it and notes the outcome."""
    rt = runtime_or_usage_error()
    send = _sender(rt)
    if (gone := _redis(lambda: _not_needed(rt, proposal_id, who, send))) is not None:
        raise click.ClickException(gone)
    _answer(_redis(lambda: approval.approve(rt, proposal_id, who, VIA, send)))


def _not_needed(rt: Runtime, proposal_id: str, who: str, send: approval.Send) -> str | None:
    """Check a waiting proposal is still needed (the worker checks again before it acts).

    When not: set it aside, have the worker note it on the incident, and return the sentence.
    """
    proposal = approval.proposals(rt).get(proposal_id)
    if proposal is None or proposal.status != WAITING:
        return None  # approve() answers unknown, or who dealt with it
    why = recheck.no_longer_needed(rt, proposal)
    if not why:
        return None
    recheck.set_aside(rt, proposal, why, who)
    send(ACT, [proposal.id])  # the worker notes it on the incident; nothing runs
    return f"{proposal.id}: no longer needed: {why}; nothing ran"


@action_group.command("deny")
@click.argument("proposal_id")
@as_option
def deny_command(proposal_id: str, who: str) -> None:
    """Deny a proposal: it never runs."""
    rt = runtime_or_usage_error()
    _answer(_redis(lambda: approval.deny(rt, proposal_id, who, VIA, operator=True)))


@action_group.command("run")
@click.argument("action")
@click.argument("target", required=False)
@incident_option
@as_option
def run_command(action: str, target: str | None, incident_id: str, who: str) -> None:
    """Propose and approve ACTION at once, as an operator at a terminal."""
    rt = runtime_or_usage_error()
    send = _sender(rt)
    _answer(_redis(lambda: approval.run(rt, action, target, incident_id, who, VIA, send)))


@action_group.command("link")
@click.argument("incident_id")
@click.option("--for", "email", required=True, help="The approver's e-mail: the link's identity.")
@click.option(
    "--minutes",
    type=click.IntRange(1, MAX_APPROVAL_LINK_MINUTES),
    default=None,
    help="How long it lasts (default: RESPONDER_APPROVAL_LINK_MINUTES, else the proposal_ttl).",
)
@json_option
def link_command(incident_id: str, email: str, minutes: int | None, as_json: bool) -> None:
    """Print EMAIL's personal approval link to INCIDENT_ID's page; send it to them alone."""
    rt = runtime_or_usage_error()
    secret = rt.settings.link_secret.reveal()
    if not secret:
        raise click.UsageError("RESPONDER_LINK_SECRET is not set: no link can be signed")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", incident_id):
        raise click.BadParameter("expected a PagerDuty incident id", param_hint="INCIDENT_ID")
    try:
        identity = identity_of(email)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    minutes = minutes or link_minutes(rt)
    expires = int((datetime.now(UTC) + timedelta(minutes=minutes)).timestamp())
    link = approval_link(rt.settings.public_url, incident_id, identity, expires, secret)
    if as_json:
        until = datetime.fromtimestamp(expires, UTC).isoformat()
        say(json.dumps({"link": link, "for": identity, "expires_at": until}))
        return
    say(f"approval link for {identity}, valid {minutes} minutes (send it to them alone):")
    say(link)


def _sender(rt: Runtime) -> approval.Send:
    """Return a sender of tasks by name onto the actions queue."""
    celery = make_celery(rt.settings)
    queue = actions_queue(rt.settings.queue)

    def send(name: str, args: list[Any]) -> None:
        celery.send_task(name, args=args, queue=queue)

    return send


def _answer(outcome: Outcome) -> None:
    """Print the outcome; exit 1 unless it is what was asked."""
    text = f"{outcome.proposal_id}: {outcome.message}" if outcome.proposal_id else outcome.message
    if outcome.status not in ("approved", "partly", "checking", "denied"):
        raise click.ClickException(text)
    say(text)


def _redis(call: Any) -> Any:
    """Run `call`; a Redis failure is a failed operation saying so."""
    try:
        return call()
    except RedisError as exc:
        raise click.ClickException(f"cannot reach Redis: {type(exc).__name__}") from None
