"""Slack end to end: a real worker, real Redis, the fake PagerDuty and the fake Slack.

One thread per incident in #eafix-incidents (the parent kept current on acknowledge and
resolve), the P0/P1 posts, exactly once under 429s, 500s and a lost answer, and the Approve /
Deny buttons through POST /webhooks/slack, signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tasks.actions import approval
from tasks.celery_app import make_celery, sender_of
from tasks.gateways.slack import SlackUnavailable
from tasks.gateways.slack_blocks import build
from tasks.names import SLACK_MESSAGE
from tasks.notify import slack_send
from tasks.run.state import save_run
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.store.deliveries import current_attempt
from tasks.store.proposals import WAITING
from tasks.store.runs import entries_key
from tasks.store.slack import ChannelPace, SlackThreads
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack, Message
from tests.integration.test_end_to_end import incident_key
from tests.integration.test_pagerduty_webhook import event, sign
from tests.integration.test_worker_kill import LIMITS, VISIBILITY_TIMEOUT
from tests.support import (
    SLACK_APPROVER,
    SLACK_SIGNING_SECRET,
    TOKEN,
    clock,
    post_alert,
    sample_payload,
    wait_for,
)
from tests.support.workers import give_back_held, kill_worker, start_worker, stop_worker
from triage.sla import is_market_open
from webhooks import create_app

INCIDENTS, TRADING, DEV = "#eafix-incidents", "#trading-operations", "#eafix-dev"


@pytest.fixture
def rt(settings: Settings, redis_client: Any) -> Iterator[Runtime]:
    """A runtime of the test's own that queues tasks to the session worker, as a worker does."""
    yield Runtime(settings, send_task=sender_of(make_celery(settings)))


def p0_payload(tag: str) -> dict[str, Any]:
    """Return an alert the policy classifies P0 (data corruption: at any hour)."""
    labels = {"alertname": "PositionChecksumMismatch", "category": "data-corruption",
              "service": "risk-manager", "severity": "critical"}  # fmt: skip
    payload = sample_payload(groupKey=f'{{}}:{{alertname="PositionChecksumMismatch", t="{tag}"}}')
    alert = payload["alerts"][0]
    alert.update(labels=labels, fingerprint=hashlib.sha256(tag.encode()).hexdigest()[:16])
    alert["annotations"]["summary"] = "position checksums differ"
    alert["startsAt"] = datetime.now(UTC).isoformat()
    payload["commonLabels"] = labels
    return payload


def p1_payload(tag: str) -> dict[str, Any]:
    """Return the sample alert (P1) under a group key of its own."""
    return sample_payload(
        groupKey=f'{{}}:{{alertname="SignalLatencyHigh", t="{tag}{time.time_ns()}"}}'
    )


def parent_of(slack: FakeSlack, incident: str) -> Message:
    """Return the incident's one parent in #eafix-incidents (fail on none or two)."""
    parents = slack.parents(INCIDENTS, f"[ref slack:{incident}/parent]")
    assert len(parents) == 1, [p.text for p in parents]
    return parents[0]


def pagerduty_event(receiver: str, incident: str, kind: str, title: str) -> None:
    """POST a signed PagerDuty webhook: the incident was acknowledged or resolved by Dana."""
    payload = event(f"incident.{kind}", event_id=f"{incident}-{kind}", id=incident,
                    status=kind, title=title, incident_key="")  # fmt: skip
    payload["event"]["agent"] = {"id": "PDANA", "type": "user_reference", "summary": "Dana"}
    payload["event"]["occurred_at"] = datetime.now(UTC).isoformat()
    raw = json.dumps(payload).encode()
    answer = requests.post(
        f"{receiver}/webhooks/pagerduty",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-PagerDuty-Signature": sign(raw),
            "X-Webhook-Id": f"wh-{incident}-{kind}",
        },  # fmt: skip
        timeout=10,
    )
    assert answer.status_code == 202, answer.text


def test_a_p0_gets_one_thread_kept_current_and_one_trading_post_despite_429s_and_a_500(
    worker: Path,
    receiver: str,
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    settings: Settings,
    redis_client: Any,
) -> None:
    payload = p0_payload(f"p0-{time.time_ns()}")
    title = "[FIRING:1] PositionChecksumMismatch"
    incident = pagerduty.add_incident(incident_key(payload), title)
    # Slack limits the first posts twice (a second each), then loses the answer of one post it
    # made: the retry must find that message by its marker, not post it again.
    slack.fail_next(2, 429, method="chat.postMessage", retry_after=1)
    slack.fail_next(1, 500, method="chat.postMessage", after_applying=True)
    market_open = is_market_open(datetime.now(UTC), Runtime(settings).policy.market_hours)

    accepted = post_alert(receiver, payload)
    assert accepted.json()["priority"] == "P0"
    # PagerDuty's first note goes before anything reaches Slack.
    first_note = wait_for(lambda: pagerduty.notes_for(incident), what="the first note")[0]
    parent = wait_for(
        lambda: slack.parents(INCIDENTS, f"[ref slack:{incident}/parent]"), what="the parent"
    )[0]
    assert parent.text.startswith("[P0 (PagerDuty: P1)] PositionChecksumMismatch")
    assert first_note["content"].startswith("[P0 (PagerDuty: P1)] PositionChecksumMismatch")
    assert "Why P0: data-corruption" in parent.text
    assert "Open, not acknowledged yet" in parent.text
    assert parent.blocks[0]["type"] == "section"
    assert parent.blocks[0]["text"]["type"] == "mrkdwn"
    # The evidence note and the first status update, in the thread, in PagerDuty's words.
    replies = wait_for(
        lambda: (r := slack.replies(parent)) and any(" evidence: " in m.text for m in r) and r,
        what="the evidence reply",
    )
    evidence_note = next(n for n in pagerduty.notes_for(incident) if " evidence: " in n["content"])
    evidence = next(m for m in replies if " evidence: " in m.text)
    heading = evidence_note["content"].splitlines()[0]
    assert evidence.text.startswith(heading)
    assert evidence.blocks[0]["text"]["text"].startswith(f"*{heading}*")
    if market_open:
        post = wait_for(lambda: slack.parents(TRADING), what="the trading desk's post")
        assert "incident during market hours" in post[0].text

    pagerduty_event(receiver, incident, "acknowledged", title)
    wait_for(lambda: "Acknowledged by Dana" in parent_of(slack, incident).text, what="ack")
    pagerduty_event(receiver, incident, "resolved", title)
    wait_for(lambda: "Resolved by Dana" in parent_of(slack, incident).text, what="resolved")
    closing = wait_for(
        lambda: [m for m in slack.replies(parent) if "Incident metrics" in m.text],
        what="the closing note in the thread",
    )
    assert len(closing) == 1

    # Exactly one of each, whatever Slack answered on the way.
    assert [c.status for c in slack.calls if c.method == "chat.postMessage"][:3] == [429, 429, 500]
    assert len(slack.parents(INCIDENTS, f"[ref slack:{incident}/")) == 1
    markers = [m.text.rsplit("[ref slack:", 1)[1] for m in slack.replies(parent)]
    assert len(markers) == len(set(markers)), markers
    assert len(slack.parents(TRADING, f"[ref slack:{incident}/")) == (1 if market_open else 0)
    assert len(slack.parents(DEV, f"[ref slack:{incident}/")) == 1  # P0 and P1 (all hands)
    assert len(parent_of(slack, incident).updates) >= 2


def test_a_p1_also_posts_once_in_eafix_dev(
    worker: Path, receiver: str, pagerduty: FakePagerDuty, slack: FakeSlack, redis_client: Any
) -> None:
    payload = sample_payload(
        groupKey=f'{{}}:{{alertname="SignalLatencyHigh", t="{time.time_ns()}"}}'
    )
    incident = pagerduty.add_incident(incident_key(payload), "[FIRING:1] SignalLatencyHigh")
    assert post_alert(receiver, payload).json()["priority"] == "P1"
    dev = wait_for(lambda: slack.parents(DEV, f"[ref slack:{incident}/dev]"), what="the dev post")
    assert dev[0].text.startswith("[P1 (PagerDuty: P2)] SignalLatencyHigh")
    parent = wait_for(lambda: slack.parents(INCIDENTS, f"[ref slack:{incident}/parent]"),
                      what="the parent")[0]  # fmt: skip
    wait_for(lambda: any("evidence" in m.text for m in slack.replies(parent)), what="evidence")
    assert len(slack.parents(DEV, f"[ref slack:{incident}/")) == 1


def slack_click(
    receiver: str,
    proposal_id: str,
    user: str,
    action: str = "approve",
    *,
    secret: str = SLACK_SIGNING_SECRET,
    sent_at: float | None = None,
    message: Message | None = None,
) -> requests.Response:
    """POST a button click as Slack sends it: a form field `payload`, signed v0."""
    body, headers = click_request(proposal_id, user, action, secret, sent_at, message)
    return requests.post(f"{receiver}/webhooks/slack", data=body, headers=headers, timeout=10)


def click_request(
    proposal_id: str,
    user: str,
    action: str = "approve",
    secret: str = SLACK_SIGNING_SECRET,
    sent_at: float | None = None,
    message: Message | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Return a click's body and signed headers; each click has its own trigger_id."""
    payload = {
        "type": "block_actions",
        "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:12]}",
        "user": {"id": user, "username": "dana"},
        "channel": {"id": message.channel if message else "C0INCIDENTS"},
        "message": {"ts": message.ts if message else "1.0",
                    "thread_ts": message.thread_ts if message else ""},
        "actions": [{"action_id": action, "block_id": f"proposal:{proposal_id}",
                     "value": proposal_id, "type": "button"}],
    }  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(sent_at if sent_at is not None else time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    return body, headers


def test_a_signed_click_approves_once_and_refusals_run_nothing(
    worker: Path,
    receiver: str,
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    rt: Runtime,
) -> None:
    payload = sample_payload(
        groupKey=f'{{}}:{{alertname="SignalLatencyHigh", b="{time.time_ns()}"}}'
    )
    incident = pagerduty.add_incident(incident_key(payload), "[FIRING:1] SignalLatencyHigh")
    post_alert(receiver, payload)
    parent = wait_for(lambda: slack.parents(INCIDENTS, f"[ref slack:{incident}/parent]"),
                      what="the parent")[0]  # fmt: skip
    proposal = approval.propose(rt, "stop-trading", None, incident, "responder")
    shown = wait_for(
        lambda: [m for m in slack.replies(parent) if f"proposal:{proposal.id}]" in m.text],
        what="the proposal with its buttons",
    )[0]
    buttons = shown.blocks[-1]
    assert [b["action_id"] for b in buttons["elements"]] == ["approve", "deny"]
    user, approver = SLACK_APPROVER

    refusals = [
        (slack_click(receiver, proposal.id, user, secret="wrong"), 401, "bad signature"),
        (slack_click(receiver, proposal.id, user, sent_at=time.time() - 600), 401, "stale"),
        (slack_click(receiver, proposal.id, "U0NOBODY"), 403, "not mapped to an approver"),
    ]
    for answer, status, reason in refusals:
        assert answer.status_code == status, answer.text
        assert reason in answer.json()["error"]
    assert approval.proposals(rt).get(proposal.id).status == WAITING  # nothing ran

    captured = click_request(proposal.id, user, message=shown)
    first = requests.post(f"{receiver}/webhooks/slack", data=captured[0], headers=captured[1])
    assert first.status_code == 200 and first.json()["status"] == "approved", first.text
    second = slack_click(receiver, proposal.id, user, message=shown)
    assert second.json()["status"] == "already"
    assert second.json()["text"].startswith(f"already done by <@{user}>")
    # The first click captured and sent again, within Slack's five minutes: refused unread.
    replayed = requests.post(f"{receiver}/webhooks/slack", data=captured[0], headers=captured[1])
    assert replayed.status_code == 409, replayed.text
    assert replayed.json() == {
        "error": "this signed request was received before; nothing ran",
        "field": "X-Slack-Signature",
    }
    record = approval.proposals(rt).get(proposal.id)
    assert (record.approved_by, record.via) == (approver, "slack")
    told = wait_for(lambda: len(slack.ephemeral) >= 2 and slack.ephemeral, what="the answers")
    assert [t["user"] for t in told] == [user, user]  # none for the replay
    # One answer per click, each sent by its own task: on a busy machine the second click's
    # may arrive first, so the answers are compared in any order.
    assert sorted("already done by" in t["text"] for t in told) == [False, True]
    assert any(t["text"].startswith("approved: stop-trading") for t in told)
    # The proposal's message loses its buttons and says who approved.
    wait_for(
        lambda: "Approved" in shown.text and not any(b["type"] == "actions" for b in shown.blocks),
        what="the proposal's new state",
    )
    # Each click's task updates the message after its answer: the test ends when both have, so
    # that no update of this test's reaches Slack during the next one.
    wait_for(
        lambda: (
            [c.params.get("ts") for c in slack.calls if c.method == "chat.update"]
            == [shown.ts, shown.ts]
        ),
        what="both clicks' updates of the proposal's message",
    )


def test_a_post_whose_answer_was_lost_is_found_by_its_marker_not_posted_again(
    slack: FakeSlack, settings: Settings, redis_client: Any
) -> None:
    """As when the worker dies between Slack's post and the once-record: the redelivered
    task (the same task id) reads the channel's history before posting."""
    runtime = Runtime(settings)
    SlackThreads(redis_client).remember_channel(INCIDENTS, "C0INCIDENTS")
    message = build("PKILL/parent", INCIDENTS, "*[P0] lost answer*")
    token = current_attempt.set("task-lost-answer")
    try:
        slack.fail_next(1, 500, method="chat.postMessage", after_applying=True)
        with pytest.raises(Exception, match="HTTP 500"):
            slack_send.post_once(runtime, runtime.slack, "PKILL", "parent", message, "")
        again = slack_send.post_once(runtime, runtime.slack, "PKILL", "parent", message, "")
    finally:
        current_attempt.reset(token)
    assert again is not None and again.ts == slack.parents(INCIDENTS)[0].ts
    assert len(slack.parents(INCIDENTS, "[ref slack:PKILL/parent]")) == 1
    assert [c.method for c in slack.calls] == [
        "chat.postMessage", "conversations.history"
    ]  # fmt: skip


def test_a_channel_takes_one_message_a_second_in_line_and_urgent_work_goes_first(
    redis_client: Any,
) -> None:
    pace = ChannelPace(redis_client)
    assert pace.take("#c", False, "a", now=1000.0) == 0
    assert pace.take("#c", False, "b", now=1000.2) == pytest.approx(0.81)  # next in line
    assert pace.take("#c", False, "c", now=1000.3) == pytest.approx(1.71)  # a slot later
    # An urgent message stands before every routine one: first claim on the channel.
    assert pace.take("#c", True, "u", now=1000.4) == pytest.approx(0.61)
    assert pace.take("#c", False, "b", now=1001.05) == pytest.approx(1.01)  # behind it now
    assert pace.take("#c", True, "u", now=1001.1) == 0
    assert pace.take("#c", False, "b", now=1001.5) == pytest.approx(0.61)  # a second apart
    assert pace.take("#c", False, "b", now=1002.2) == 0
    assert pace.take("#other", False, "x", now=1002.2) == 0  # channels are paced apart
    # A waiter late for its turn by over 3 s (its task died) leaves the line: no one waits on it.
    assert pace.take("#c", False, "c", now=1002.5) == pytest.approx(0.71)
    assert pace.take("#c", False, "d", now=1040.0) == 0
    pace.block("#c", 30, now=1040.5)  # Slack said 429 Retry-After: 30
    assert pace.take("#c", True, "e", now=1041.0) == pytest.approx(29.51)


@pytest.mark.parametrize(
    ("at", "desk_hears"),
    [
        (datetime(2026, 11, 25, 15, 0, tzinfo=UTC), True),  # Wednesday 10:00 New York: trading
        (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), False),  # Saturday: the market is closed
    ],
)
def test_the_trading_desk_hears_the_trading_impact_only_while_the_market_trades(
    at: datetime,
    desk_hears: bool,
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    settings: Settings,
    redis_client: Any,
) -> None:
    queued: list[dict[str, Any]] = []
    runtime = Runtime(settings, send_task=lambda name, args, queue: queued.append(args[0]))
    incident = pagerduty.add_incident(f"k-desk-{desk_hears}", "RiskManagerDown")
    incident_id = incident
    state = clock.respond(runtime, clock.record_trigger(runtime, incident_id, "RiskManagerDown",
                                                        "P0", at), at)  # fmt: skip
    state.affected = ["risk-manager"]
    save_run(runtime, state)
    assert [r["what"] for r in queued][:1] == ["first"]  # after the first note, on its lane
    for request in list(queued):
        send_as_worker(runtime, request, at)
    rows = [{"endpoint": "positions", "finding": "3 open positions", "problem": False},
            {"endpoint": "reconcile", "finding": "reconciliation failed (EURUSD)",
             "problem": True}]  # fmt: skip
    entries = [
        {"name": "trading", "status": "failed", "summary": "", "tables": {"endpoints": rows}}
    ]
    redis_client.set(entries_key(state.run_id), json.dumps(entries))

    trading = {"what": "trading", "incident_id": incident_id, "run_id": state.run_id}
    done = send_as_worker(runtime, trading, at)
    send_as_worker(runtime, trading, at)  # a retry

    posts = slack.parents(TRADING)
    assert len(posts) == (1 if desk_hears else 0), done
    parent = parent_of(slack, incident_id)
    assert ("Market: OPEN" in parent.text) is desk_hears
    if desk_hears:
        text = posts[0].text
        assert "P0 incident during market hours: RiskManagerDown" in text.splitlines()[0]
        assert "`risk-manager`: every order is risk-checked before it is sent" in text
        assert "open positions: 3 open positions" in text
        assert "reconciliation: reconciliation failed (EURUSD)" in text


def send_as_worker(runtime: Runtime, request: dict[str, Any], at: datetime) -> str:
    """Carry a Slack request out as the task does at `at`, waiting when held back."""
    while True:
        try:
            return slack_send.send(runtime, runtime.slack, request, at)
        except SlackUnavailable as exc:
            if not exc.held_back:
                raise
            time.sleep(exc.wait_seconds)  # the task's countdown


def test_without_a_token_slack_messages_go_to_the_outbox_once(
    settings: Settings, redis_client: Any, tmp_path: Path
) -> None:
    runtime = Runtime(replace(settings, slack_token=Secret(""), outbox_dir=tmp_path))
    message = build("POUT/parent", "C0INCIDENTS", "*[P1] written down*")
    token = current_attempt.set("task-outbox")
    try:
        posted = slack_send.post_once(runtime, runtime.slack, "POUT", "parent", message, "")
        redis_client.set("responder:effect:slack:POUT:parent", "pending:task-outbox:1")
        again = slack_send.post_once(runtime, runtime.slack, "POUT", "parent", message, "")
    finally:
        current_attempt.reset(token)
    files = sorted((tmp_path / "slack").glob("*.json"))
    assert [json.loads(f.read_text())["method"] for f in files] == ["chat.postMessage"]
    call = json.loads(files[0].read_text())["json"]
    assert call["channel"] == "C0INCIDENTS" and call["text"].startswith("[P1] written down")
    assert posted is not None and again is not None and again.ts == posted.ts  # found, not posted


KILL_QUEUE = "responder-slack-kill"


@pytest.fixture
def kill_env(responder_env: dict[str, str], redis_client: Any) -> Iterator[dict[str, str]]:
    """A worker environment on queues of its own, with a short visibility timeout."""
    queues = [KILL_QUEUE, f"{KILL_QUEUE}-urgent", f"{KILL_QUEUE}-actions"]
    queues += [f"{KILL_QUEUE}-notify", f"{KILL_QUEUE}-notify-urgent"]  # Slack's own queues
    redis_client.delete(*queues)
    yield {**os.environ, **responder_env, **LIMITS, "RESPONDER_QUEUE": KILL_QUEUE,
           "RESPONDER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}  # fmt: skip
    redis_client.delete(*queues)


def test_a_worker_killed_between_slacks_post_and_its_once_record_does_not_post_twice(
    kill_env: dict[str, str],
    settings: Settings,
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    redis_client: Any,
    tmp_path: Path,
) -> None:
    app = create_app(replace(settings, queue=KILL_QUEUE))
    payload = p1_payload("kill")
    incident = pagerduty.add_incident(incident_key(payload), "[FIRING:1] SignalLatencyHigh")
    slack.hold("chat.postMessage", 20)  # Slack posts the parent; its answer never comes back
    log = tmp_path / "workers.log"
    first = start_worker(kill_env, log, "kill-first", concurrency=3)
    second = None
    try:
        answer = app.test_client().post(
            "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 202
        wait_for(lambda: slack.parents(INCIDENTS, f"[ref slack:{incident}/parent]"),
                 what="Slack to post the parent")  # fmt: skip
        kill_worker(first)  # before the answer, so before the once-record
        # Started now, while the time limit passes: it takes what is given back.
        second = start_worker(kill_env, log, "kill-second", concurrency=3)
        wait_for(
            lambda: give_back_held(
                redis_client, "kill-first", int(LIMITS["RESPONDER_TASK_TIME_LIMIT"])
            ),
            what="the killed worker's messages, past the time limit, to be given back",
        )
        parent = parent_of(slack, incident)
        wait_for(lambda: any(" evidence: " in m.text for m in slack.replies(parent)),
                 what="the fresh worker to go on in the thread")  # fmt: skip
    finally:
        for worker in (first, second):
            if worker is not None:
                stop_worker(worker)
    assert len(slack.parents(INCIDENTS, f"[ref slack:{incident}/parent]")) == 1
    assert any(c.method == "conversations.history" for c in slack.calls)  # it looked first


def test_an_action_run_at_once_queues_no_approve_buttons_for_slack(
    pagerduty: FakePagerDuty, settings: Settings, redis_client: Any
) -> None:
    """`/run`, a workflow or `responder action run` proposes and approves in one step: its
    proposal never waits for a click. Queuing the thread's "proposals" request for it let a
    Slack worker that took the request before the approval post Approve / Deny buttons for
    an action already running; a proposal that waits is still announced."""
    queued: list[dict[str, Any]] = []
    # Slack's requests only (a proposal also queues its approvers' e-mailed links).
    runtime = Runtime(
        settings,
        send_task=lambda name, args, queue: (
            queued.append(args[0]) if name == SLACK_MESSAGE else None
        ),
    )
    incident = pagerduty.add_incident("k-run-at-once", "RiskManagerDown")
    SlackThreads(runtime.redis).open(incident, "P1")
    sent: list[str] = []

    outcome = approval.run(
        runtime, "stop-trading", None, incident, "PABC123", "note", lambda n, a: sent.append(n)
    )
    assert outcome.status == "approved", outcome.message
    assert [r["what"] for r in queued] == []

    waiting = approval.propose(runtime, "stop-trading", None, incident, "responder")
    assert waiting.status == WAITING
    assert [r["what"] for r in queued] == ["proposals"]
    # Run by someone the action does not allow: refused, it waits for an approver's click.
    actions = runtime.policy.actions
    restart = replace(actions.catalog["restart-service"], approvers=("PALLOWED",))
    catalog = {**actions.catalog, "restart-service": restart}
    runtime.policy = replace(runtime.policy, actions=replace(actions, catalog=catalog))
    refused = approval.run(
        runtime, "restart-service", "risk-manager", incident, "PNOBODY", "note", lambda n, a: None
    )
    assert refused.status == "refused", refused.message
    assert approval.proposals(runtime).get(refused.proposal_id).status == WAITING
    assert [r["what"] for r in queued] == ["proposals", "proposals"]
