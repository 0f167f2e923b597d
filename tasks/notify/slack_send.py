"""The work behind the Slack task: one request in, its messages out, each exactly once in effect.

A request names an incident and what to say:
- `first`: the thread's parent in the incidents channel (the first-response summary), and
  the P1 post in the dev channel;
- `note`: a note of the incident (evidence, status update, escalation, action, closing) as a
  reply in its thread, then any proposed action not yet shown, with its buttons;
- `trading`: the trading-impact post in the trading channel, once the evidence is in;
- `status`: the parent updated to the incident's status now (acknowledged by, resolved);
- `proposals`: the proposed actions not shown yet, each with Approve / Deny buttons;
- `click`: the answer to a button click, to the clicker alone, and the proposal's message
  showing what became of it.

Exactly once, as for PagerDuty notes (`tasks.store.effects.once`): a post is claimed pending
before it is sent, marked done with its ts after; a retry that finds its own or a dead attempt
pending looks for the message by the marker that ends its text (conversations.history, or the
thread's replies) before posting again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tasks.actions.approval import proposals
from tasks.evidence.links import bundle_location
from tasks.gateways.slack import Posted, SlackGateway, SlackUnavailable
from tasks.gateways.slack_blocks import SlackMessage, build, proposal_buttons
from tasks.lanes import Lane, current_lane
from tasks.retries import decide
from tasks.run.state import RunState, existing_run
from tasks.runtime import Runtime
from tasks.store import runs
from tasks.store.effects import IN_FLIGHT, HeldWhy, once
from tasks.store.proposals import WAITING, Proposal
from tasks.store.slack import ChannelPace, SlackThreads, Thread
from triage.communication import channels_for

log = logging.getLogger(__name__)
LOOKBACK_SECONDS = 120.0  # a lookup reads the history from this long before the attempt
# A reply whose parent is not out yet asks again after this: soon on the urgent lane; on the
# routine one, whose parents may queue a minute for their channel in a storm, less often.
PARENT_WAIT_SECONDS = {Lane.URGENT: 1.0, Lane.ROUTINE: 5.0}
TRADING_FINDINGS = {
    "positions": "open positions",
    "reconcile": "reconciliation",
    "signals": "signals",
    "executions": "executions",
}


def scope(incident_id: str) -> str:
    """Return the once-records' scope of an incident's Slack messages."""
    return f"slack:{incident_id}"


def send(rt: Runtime, gateway: SlackGateway, request: dict[str, Any], now: datetime) -> str:
    """Carry one Slack request out; return what was done (the task's result)."""
    what = request["what"]
    incident_id = str(request["incident_id"])
    if what == "first":
        return first(rt, gateway, incident_id, str(request["run_id"]), now)
    if what == "note":
        return note(rt, gateway, incident_id, str(request["key"]), str(request["text"]))
    if what == "trading":
        return trading(rt, gateway, incident_id, str(request["run_id"]), now)
    if what == "status":
        return status(rt, gateway, incident_id)
    if what == "click":
        return click(rt, gateway, request)
    if what == "proposals":
        if not (thread := SlackThreads(rt.redis).get(incident_id)) or not thread.posted:
            return "no thread yet: the parent shows them when it is posted"
        return f"{announce_proposals(rt, gateway, incident_id)} proposals shown"
    raise ValueError(f"unknown Slack request {what!r}")


def first(rt: Runtime, gateway: SlackGateway, incident_id: str, run_id: str, now: datetime) -> str:
    """Post the incident's parent (and the dev channel's post) from the run's first-note facts."""
    state = existing_run(rt, run_id)
    if state is None:
        return "no run"
    threads = SlackThreads(rt.redis)
    priority = str(state.classification.priority)
    thread = threads.get(incident_id) or Thread(incident_id, priority, opened=time.time())
    if thread.facts is None:  # decided once: a retry says what the first attempt said
        thread.facts = facts_of(rt, state, incident_id, now)
    facts = thread.facts
    chosen = channels_for(rt.policy.slack, thread.priority, bool(facts["market"]["open"]))
    if "incidents" in chosen:  # only a thread that will have a parent is kept
        threads.save(thread)
    done = []
    if "incidents" in chosen and not thread.posted:
        message = parent_message(rt, thread, chosen["incidents"])
        posted = post_once(rt, gateway, incident_id, "parent", message, "")
        if posted is not None:
            thread.channel, thread.ts = posted.channel, posted.ts
            threads.save(thread)
            threads.remember_channel(chosen["incidents"], posted.channel)
        done.append("parent")
    if "dev" in chosen:
        mrkdwn = rt.voice.slack_incident(facts, None)
        message = build(f"{incident_id}/dev", chosen["dev"], mrkdwn)
        post_once(rt, gateway, incident_id, "dev", message, "")
        done.append("dev")
    announce_proposals(rt, gateway, incident_id)
    return ", ".join(done) or "no channel for this priority"


def facts_of(rt: Runtime, state: RunState, incident_id: str, now: datetime) -> dict[str, Any]:
    """Return the parent's facts: the first note's, and where the incident and bundle are."""
    record = rt.incidents.get(incident_id) or {}
    incident_url = str(record.get("html_url") or "")
    if not incident_url and state.pagerduty_incident is not None:
        incident_url = state.pagerduty_incident.html_url
    bundle = bundle_location(rt.settings, state.run_id, now)
    return rt.voice.incident_facts(
        state.title,
        state.classification,
        state.deadlines,
        now,
        incident_id=incident_id,
        incident_url=incident_url,
        bundle_url=bundle if bundle.startswith(("http://", "https://")) else "",
    )


def parent_message(rt: Runtime, thread: Thread, channel: str) -> SlackMessage:
    """Return the parent as it stands: the first-response facts and the status now."""
    record = rt.incidents.get(thread.incident_id) or {}
    word = str(record.get("status") or "triggered")
    by = str(record.get(f"{word}_by") or "") if word in ("acknowledged", "resolved") else ""
    mrkdwn = rt.voice.slack_incident(thread.facts or {}, {"word": word, "by": by})
    return build(f"{thread.incident_id}/parent", channel, mrkdwn)


def status(rt: Runtime, gateway: SlackGateway, incident_id: str) -> str:
    """Update the parent to the incident's status now (it never goes back to an older one)."""
    thread = SlackThreads(rt.redis).get(incident_id)
    if thread is None or thread.facts is None:
        return "no thread"
    if not thread.posted:
        return _wait_for_parent(rt, thread)
    message = parent_message(rt, thread, thread.channel)
    gateway.update(thread.channel, thread.ts, message)
    return "updated"


def note(rt: Runtime, gateway: SlackGateway, incident_id: str, key: str, text: str) -> str:
    """Post a note's text as a reply in the incident's thread, then new proposals' buttons."""
    thread = SlackThreads(rt.redis).get(incident_id)
    if thread is None:
        return "no thread"
    if not thread.posted:
        return _wait_for_parent(rt, thread)
    message = build(f"{incident_id}/{key}", thread.channel, rt.voice.slack_note(text))
    post_once(rt, gateway, incident_id, f"note:{key}", message, thread.ts)
    announce_proposals(rt, gateway, incident_id)
    return "replied"


def announce_proposals(rt: Runtime, gateway: SlackGateway, incident_id: str) -> int:
    """Post each waiting proposal of the incident not shown yet, with Approve / Deny buttons."""
    thread = SlackThreads(rt.redis).get(incident_id)
    if thread is None or not thread.posted:
        return 0
    shown = 0
    for proposal in proposals(rt).recent(200):
        if proposal.incident_id != incident_id or proposal.status != WAITING:
            continue
        if rt.deliveries.effect_done(scope(incident_id), f"proposal:{proposal.id}"):
            continue
        message = proposal_message(rt, proposal, thread.channel)
        post_once(rt, gateway, incident_id, f"proposal:{proposal.id}", message, thread.ts)
        shown += 1
    return shown


def proposal_message(rt: Runtime, proposal: Proposal, channel: str) -> SlackMessage:
    """Return a proposal's message: buttons while it waits, what became of it after."""
    action = rt.policy.actions.catalog.get(proposal.action)
    does = action.does if action is not None else proposal.action
    decided = ""
    if proposal.status != WAITING:
        by = proposal.approved_by or proposal.reason or "someone"
        decided = f"{proposal.status.capitalize()}: {by}" + (
            f" (via {proposal.via})" if proposal.via else ""
        )
    mrkdwn = rt.voice.slack_proposal(
        proposal.id, proposal.action, proposal.target, does, proposal.expires, decided
    )
    buttons = (
        proposal_buttons(proposal.id, proposal.action, proposal.target) if not decided else None
    )
    return build(f"{proposal.incident_id}/proposal:{proposal.id}", channel, mrkdwn, actions=buttons)


def click(rt: Runtime, gateway: SlackGateway, request: dict[str, Any]) -> str:
    """Tell the clicker what their click did; show on the proposal's message what it became."""
    channel, user = str(request["channel"]), str(request["user"])
    thread_ts = str(request.get("thread_ts") or "")
    gateway.tell(channel, user, str(request["answer"]), thread_ts)
    proposal = proposals(rt).get(str(request["proposal_id"]))
    message_ts = str(request.get("message_ts") or "")
    if proposal is not None and proposal.status != WAITING and message_ts:
        gateway.update(channel, message_ts, proposal_message(rt, proposal, channel))
    return "answered"


def trading(
    rt: Runtime, gateway: SlackGateway, incident_id: str, run_id: str, now: datetime
) -> str:
    """Post the trading impact to the trading channel (P0/P1 while the market is open)."""
    state = existing_run(rt, run_id)
    if state is None:
        return "no run"
    priority = str(state.classification.priority)
    market_open = bool(rt.voice.market(now)["open"])
    channel = channels_for(rt.policy.slack, priority, market_open).get("trading")
    if channel is None:
        return "not for the trading desk"
    affected = [
        {"name": name, "why": rt.policy.catalog[name].why}
        for name in state.affected
        if name in rt.policy.catalog and rt.policy.catalog[name].trading_path
    ]
    findings, why_unread = trading_findings(rt, run_id)
    incidents = rt.policy.slack.incidents
    mrkdwn = rt.voice.slack_trading(
        priority,
        state.title,
        affected,
        findings,
        why_unread,
        incidents.channel if incidents is not None else "PagerDuty",
    )
    message = build(f"{incident_id}/trading", channel, mrkdwn)
    post_once(rt, gateway, incident_id, "trading", message, "")
    return "trading"


def mention(channel: str) -> str:
    """Return how mrkdwn names a channel: an id as a link (`<#C123>`), a #name as it is."""
    return channel if channel.startswith("#") else f"<#{channel}>"


def trading_findings(rt: Runtime, run_id: str) -> tuple[list[dict[str, Any]], str]:
    """Return what the `trading` collector found, in the desk's words, or why there is nothing."""
    entries = runs.entries(rt.redis, run_id) or []
    entry = next((e for e in entries if e.get("name") == "trading"), None)
    if entry is None:
        return [], "no trading check ran for this incident"
    rows = (entry.get("tables") or {}).get("endpoints") or []
    findings = [
        {
            "what": TRADING_FINDINGS.get(str(row.get("endpoint")), str(row.get("endpoint"))),
            "finding": str(row.get("finding", "")),
            "problem": bool(row.get("problem")),
        }
        for row in rows
    ]
    return findings, "" if findings else str(entry.get("summary") or entry.get("status"))


def post_once(
    rt: Runtime,
    gateway: SlackGateway,
    incident_id: str,
    step: str,
    message: SlackMessage,
    thread_ts: str,
) -> Posted | None:
    """Post `message` exactly once in effect; return where it is, None when it was already.

    See the module's docstring; the channel's pace is taken before the claim, so a message
    waiting for its slot leaves no pending record behind.
    """
    where = scope(incident_id)
    pace = ChannelPace(rt.redis)

    def held(why: HeldWhy, wait: float) -> SlackUnavailable:
        said = (
            "another attempt at it is in flight"
            if why == IN_FLIGHT
            else "another attempt claimed it"
        )
        return _held(f"Slack {step} held back: {said}", wait)

    def find(since: float) -> tuple[Posted, str] | None:
        channel = SlackThreads(rt.redis).channel_id(message.channel)
        if channel.startswith("#"):
            # History is read by channel id only: a policy that names the channel, before
            # any post told us its id, cannot look. Posting again may show it twice.
            log.warning(
                "Slack %s: cannot look for an interrupted post in %s (give the channel's id "
                "in the policy); posting again",
                step,
                channel,
            )
        elif found := gateway.find(channel, message.key, since - LOOKBACK_SECONDS, thread_ts):
            return found, f"{found.channel} {found.ts} (found)"
        return None

    def take_pace() -> None:
        urgent = current_lane.get() is Lane.URGENT
        if gateway.paced and (wait := pace.take(message.channel, urgent, f"{where}:{step}")) > 0:
            why = f"Slack {step} held back: {message.channel} takes one message a second"
            raise _held(why, wait)

    def post(done: Callable[[str], None]) -> Posted:
        try:
            return gateway.post(message, thread_ts)
        except SlackUnavailable as exc:
            if exc.status == 429:  # every worker waits for this channel, not only this one
                pace.block(message.channel, decide(429, exc.headers, 1).delay)
            raise

    return once(
        rt.deliveries,
        where,
        step,
        post,
        record=lambda posted: f"{posted.channel} {posted.ts}",
        held=held,
        find=find,
        before_claim=take_pace,
    ).value


def _held(why: str, wait: float) -> SlackUnavailable:
    return SlackUnavailable(why, 429, {"ratelimit-reset": f"{wait:.3f}"}, held_back=True)


def _wait_for_parent(rt: Runtime, thread: Thread) -> str:
    """Wait (a countdown) for the parent another task is posting; give up when it has."""
    if time.time() - thread.opened > rt.policy.storm.give_up_after.total_seconds():
        return "no thread: its parent was never posted (see the dead letters)"
    why = "Slack reply held back: the thread's parent is not posted yet"
    raise _held(why, PARENT_WAIT_SECONDS[current_lane.get()])


def wants_thread(rt: Runtime, priority: str, now: datetime) -> bool:
    """Return True when an incident of `priority` gets a thread (or a post) in Slack now."""
    market_open = bool(rt.voice.market(now)["open"])
    return bool(channels_for(rt.policy.slack, priority, market_open))
