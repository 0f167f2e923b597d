"""E-mail with the real worker: receiver -> Redis -> Celery worker -> a real SMTP server
(aiosmtpd) and the schema-validating fake PagerDuty. Beat's SLA tick is sent by the test.

SMTP answers are scripted through the protocol: 451 twice then accepted is one e-mail after
two retries; a 550 is a dead letter naming the reason and a note asking for it by hand.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from tasks.celery_app import make_celery
from tasks.lanes import urgent_queue
from tasks.names import SLA_ACTION
from tasks.settings import Settings, settings_from_env
from tasks.store.dead_letters import DeadLetters
from tasks.store.sla_clock import Deadline
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.smtp import SmtpServer
from tests.integration.test_worker_kill import kill_env as kill_env  # the kill test's fixture
from tests.support import QuietHandler, wait_for
from tests.support.clock import NEW_YORK
from tests.support.workers import give_back_held, kill_worker, start_worker, stop_worker

DESK = "trading-desk@eafix.example"
MANAGERS = "engineering-management@eafix.example"
# Last Wednesday 10:00 New York time, the market open: the incident's own moment, whatever day
# the test runs on (the desk hears of P0/P1 incidents raised during market hours).
WEDNESDAY_10AM = datetime(2026, 11, 25, 10, 0, tzinfo=NEW_YORK)


@pytest.fixture
def receiver(settings: Settings) -> Iterator[str]:
    """A receiver of its own with the replay window open: these tests post a fixed Wednesday's
    events, as recorded."""
    from tests.integration.test_pagerduty_webhook import HISTORY
    from webhooks import create_app

    app = create_app(replace(settings, **HISTORY))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def app(settings: Settings):
    return make_celery(settings)


def tick(app) -> None:
    """Send beat's SLA tick to the worker, as beat does every few seconds."""
    app.send_task("tasks.pipeline.sla_tick", queue=urgent_queue(app.conf.task_default_queue))


def post_event(receiver: str, payload: dict) -> dict:
    from tests.integration.test_pagerduty_webhook import sign

    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sign(body)}
    answer = requests.post(f"{receiver}/webhooks/pagerduty", data=body, headers=headers, timeout=5)
    assert answer.status_code == 202, answer.text
    return answer.json()


def test_a_p0_during_market_hours_emails_the_desk_at_once_and_a_summary_after_resolve(
    worker: Path,
    receiver: str,
    app,
    pagerduty: FakePagerDuty,
    mailbox: SmtpServer,
    redis_client,
) -> None:
    from tests.integration.test_pagerduty_webhook import event

    title = "[FIRING:1] PositionChecksumMismatch risk-manager"  # data corruption: P0
    incident = pagerduty.add_incident("e2e-email", title)
    at = WEDNESDAY_10AM.astimezone(UTC).isoformat()
    triggered = event(id=incident, incident_key="e2e-email", title=title)
    triggered["event"]["occurred_at"] = at
    assert post_event(receiver, triggered)["priority"] == "P0"
    wait_for(lambda: pagerduty.notes_for(incident), what="the first note")

    def desk_mails(count: int) -> bool:
        tick(app)
        return len(mailbox.to(DESK)) >= count

    wait_for(lambda: desk_mails(1), what="the desk's e-mail")
    [alert] = mailbox.to(DESK)
    assert (
        alert.message["Subject"]
        == f"[EAFIX] P0 (PagerDuty: P1) incident during market hours: {title}"
    )
    assert alert.part("plain") and "<html>" in alert.part("html")
    wait_for(lambda: mailbox.to(MANAGERS), what="management's e-mail (P0: at once)")

    resolved = event("incident.resolved", id=incident, status="resolved", event_id=2)
    resolved["event"]["occurred_at"] = (WEDNESDAY_10AM + timedelta(minutes=40)).isoformat()
    resolved["event"]["data"].update(incident_key="e2e-email", title=title)
    post_event(receiver, resolved)
    wait_for(lambda: desk_mails(2), what="the desk's summary after resolution")
    for _ in range(3):  # more ticks send nothing more
        tick(app)
    wait_for(lambda: redis_client.zcard("responder:deadlines") == 0, what="no deadline left")
    alert, summary = mailbox.to(DESK)
    assert (
        summary.message["Subject"]
        == f"[EAFIX] Resolved P0 (PagerDuty: P1): {title} - summary for the trading desk"
    )
    assert summary.message["In-Reply-To"] == alert.message["Message-ID"]
    assert "- resolved after 40m (SLA 2h of market hours: met)" in summary.part("plain")
    assert len(mailbox.to(MANAGERS)) == 1


def desk_alert(incident: str) -> dict:
    now = datetime.now(UTC).isoformat()
    return asdict(Deadline(incident, "desk_alert", now, "P0", "", "RiskManagerDown"))


def test_451_twice_then_accepted_is_one_email(
    worker: Path, app, pagerduty: FakePagerDuty, mailbox: SmtpServer, redis_client
) -> None:
    mailbox.script("P451", ["451 4.3.0 Try again later", "451 4.3.0 Try again later"])
    app.send_task(SLA_ACTION, args=[desk_alert("P451")], queue=urgent_queue("responder"))
    [mail] = wait_for(lambda: mailbox.to(DESK), what="the e-mail after two 451s")
    assert mailbox.attempts["P451"] == 3 and mail.message["X-EAFIX-Incident"] == "P451"
    assert wait_for(
        lambda: (redis_client.get("responder:effect:email:P451:desk_alert") or b"").startswith(
            b"done"
        ),
        what="the once-record",
    )
    assert len(mailbox.to(DESK)) == 1


def test_550_is_a_dead_letter_naming_the_reason_and_a_note_asks_for_it_by_hand(
    worker: Path, app, pagerduty: FakePagerDuty, mailbox: SmtpServer, redis_client
) -> None:
    incident = pagerduty.add_incident("k-550", "RiskManagerDown")
    mailbox.script(incident, ["550 5.1.1 <trading-desk@eafix.example>: no such mailbox"])
    app.send_task(SLA_ACTION, args=[desk_alert(incident)], queue=urgent_queue("responder"))
    [letter] = wait_for(lambda: DeadLetters(redis_client).list(), what="the dead letter")
    assert "SMTP" in letter.reason and "550" in letter.reason
    assert "no such mailbox" in letter.reason and "permanent" in letter.reason
    assert (letter.incident_id, letter.step) == (incident, "SLA desk_alert e-mail")
    [note] = wait_for(lambda: pagerduty.notes_for(incident), what="the note")
    assert "e-mail the trading desk by hand" in note["content"]
    assert mailbox.to(DESK) == [] and mailbox.attempts[incident] == 1  # not retried


def test_a_p0_with_open_positions_at_risk_calls_the_trading_desk_once(
    worker: Path,
    receiver: str,
    app,
    pagerduty: FakePagerDuty,
    health_server,
    redis_client,
) -> None:
    from tests.integration.test_pagerduty_webhook import event

    positions = [{"id": n, "status": "open"} for n in range(3)] + [{"id": 9, "status": "closed"}]
    health_server.bodies["/api/positions"] = positions
    try:
        title = "[FIRING:1] RiskManagerDown risk-manager"  # risk management failure: P0
        incident = pagerduty.add_incident("e2e-desk-call", title)
        payload = event(id=incident, incident_key="e2e-desk-call", title=title, event_id=7)
        assert post_event(receiver, payload)["priority"] == "P0"
        wait_for(lambda: len(pagerduty.notes_for(incident)) >= 2, what="the evidence note")

        def called() -> list:
            tick(app)
            requests_ = pagerduty.responder_requests.get(incident, [])
            return [r for r in requests_ if "trading impact" in r["message"]]

        [request] = wait_for(called, what="the trading desk's responder request")
        assert "3 open positions at risk" in request["message"]
        targets = [
            t["responder_request_target"]["id"] for t in request["responder_request_targets"]
        ]
        assert targets == ["PDESK01"]
        wait_for(
            lambda: any(
                "Trading desk: critical" in n["content"] for n in pagerduty.notes_for(incident)
            ),
            what="the note saying the desk was called",
        )
        for _ in range(3):
            tick(app)
        wait_for(lambda: redis_client.zcard("responder:deadlines-claimed") == 0, what="ticks done")
        assert len(called()) == 1
    finally:
        health_server.bodies.clear()


def test_a_worker_killed_after_the_server_took_the_email_sends_it_again_with_its_message_id(
    kill_env: dict[str, str],
    mailbox: SmtpServer,
    redis_client,
    tmp_path: Path,
) -> None:
    """The window SMTP leaves (docs/email.md): the server has the message, the worker dies
    before it learns so. The task comes back and sends it again, with the same Message-ID, so
    the duplicate is recognisable; then it is done, and nothing is sent a third time."""
    from tests.integration.test_worker_kill import LIMITS, QUEUE

    mailbox.script("PKILL", ["hold:4"])  # stored, then the 250 waits: the worker dies first
    log = tmp_path / "workers.log"
    first = start_worker(kill_env, log, "kill-first", concurrency=3)
    second = None
    try:
        app = make_celery(settings_from_env(kill_env))  # the kill test's queue
        app.send_task(SLA_ACTION, args=[desk_alert("PKILL")], queue=urgent_queue(QUEUE))
        wait_for(lambda: mailbox.to(DESK), what="the server to have the message")
        kill_worker(first)
        state = redis_client.get("responder:effect:email:PKILL:desk_alert") or b""
        assert state.startswith(b"pending")  # the worker never learnt of the 250
        # Started now, while the time limit passes: it takes what is given back.
        second = start_worker(kill_env, log, "kill-second", concurrency=3)
        wait_for(
            lambda: give_back_held(
                redis_client, "kill-first", int(LIMITS["RESPONDER_TASK_TIME_LIMIT"])
            ),
            what="the killed worker's messages, past the time limit, to be given back",
        )
        wait_for(lambda: len(mailbox.to(DESK)) >= 2, what="the e-mail sent again")
        wait_for(
            lambda: (redis_client.get("responder:effect:email:PKILL:desk_alert") or b"").startswith(
                b"done"
            ),
            what="the once-record",
        )
    finally:
        for worker in (first, second):
            if worker is not None:
                stop_worker(worker)
    sent, again = mailbox.to(DESK)
    assert sent.message["Message-ID"] == again.message["Message-ID"]
    assert mailbox.attempts["PKILL"] == 2
