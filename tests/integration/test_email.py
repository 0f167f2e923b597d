"""The runbook's External Communication by e-mail, received by a real SMTP server (aiosmtpd):
the trading desk (at once, the phone call, the summary after resolution) and management (P0 at
once, P1 at 30 minutes, P2/P3 in one next-business-day summary), on the controllable clock.

Each e-mail's Date is the simulated moment it was sent: the clock's tick that sent it.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import trustme

from tasks.gateways.email import EmailUnavailable, OutboxEmail, SmtpGateway
from tasks.gateways.email_compose import Mail, build_message, message_id
from tasks.notify.email_send import send_once
from tasks.runtime import Runtime
from tasks.settings import Secret, Settings
from tasks.store.deliveries import current_attempt
from tasks.store.runs import entries_key
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.smtp import Received, SmtpServer
from tests.integration.test_communication import MINUTES, WEDNESDAY_10AM, lifetime, resolve
from tests.integration.test_sla_actions import MANAGEMENT
from tests.support.clock import NEW_YORK, record_trigger, respond, tick
from triage.policy import DeskCall

DESK = "trading-desk@eafix.example"
MANAGERS = "engineering-management@eafix.example"
SATURDAY_2AM = datetime(2026, 11, 28, 2, 0, tzinfo=NEW_YORK)
MONDAY_10AM = datetime(2026, 11, 30, 10, 0, tzinfo=NEW_YORK)
DESK_CALL = DeskCall("PREQ001", (("PDESK01", "escalation_policy_reference"),))


@pytest.fixture
def rt(settings: Settings, redis_client, tmp_path: Path, mailbox: SmtpServer) -> Runtime:
    return Runtime(replace(settings, bundle_dir=tmp_path))


def sent_at(received: Received) -> str:
    """Return when (simulated, New York time) an e-mail was sent: its Date header."""
    return f"{parsedate_to_datetime(received.message['Date']).astimezone(NEW_YORK):%a %H:%M}"


def subjects(mailbox: SmtpServer, address: str) -> list[str]:
    return [f"{sent_at(r)} {r.message['Subject']}" for r in mailbox.to(address)]


def test_p0_during_market_hours_the_desk_is_emailed_at_once_then_a_summary_after_resolution(
    rt: Runtime, pagerduty: FakePagerDuty, mailbox: SmtpServer
) -> None:
    fixed = WEDNESDAY_10AM + timedelta(minutes=40)
    incident, _ = lifetime(rt, pagerduty, "P0", WEDNESDAY_10AM, fixed, fixed + timedelta(hours=1))
    assert subjects(mailbox, DESK) == [
        "Wed 10:00 [EAFIX] P0 (PagerDuty: P1) incident during market hours: EAFIX alert",
        # Due at the resolution, sent at the clock's next tick (every 5 minutes here; every
        # few seconds for real): "within 1 hour of resolution".
        "Wed 10:45 [EAFIX] Resolved P0 (PagerDuty: P1): EAFIX alert - summary for the trading desk",
    ]
    alert, summary = mailbox.to(DESK)
    assert alert.rcpt_tos == (DESK,) and alert.mail_from == "eafix-responder@eafix.example"
    assert alert.message["Message-ID"].startswith("<eafix-responder.desk_alert.")
    assert summary.message["In-Reply-To"] == alert.message["Message-ID"]  # one conversation
    assert alert.message["X-EAFIX-Incident"] == incident
    text = alert.part("plain")
    assert "Market: OPEN, closes Fri 17:00 New York time" in text
    assert "<td>Fri 17:00 New York time" not in text and "OPEN, closes" in alert.part("html")
    lines = summary.part("plain").splitlines()
    assert "[P0 (PagerDuty: P1)] Resolved. Incident metrics against the SLA:" in lines
    assert "- resolved after 40m (SLA 2h of market hours: met)" in lines
    assert any(line.startswith("Timeline (") for line in lines)
    assert any("Evidence bundle: " in line for line in lines)
    assert "<h3>Timeline</h3>" in summary.part("html")


@pytest.mark.parametrize(
    ("case", "priority", "raised"),
    [
        ("P1 at 02:00 on Saturday: the market is closed", "P1", SATURDAY_2AM),
        ("P2 during market hours: not the desk's", "P2", WEDNESDAY_10AM),
    ],
)
def test_the_desk_hears_of_p0_p1_incidents_during_market_hours_only(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    mailbox: SmtpServer,
    case: str,
    priority: str,
    raised: datetime,
) -> None:
    fixed = raised + timedelta(minutes=20)
    lifetime(rt, pagerduty, priority, raised, fixed, fixed + timedelta(minutes=30))
    assert mailbox.to(DESK) == [], case


@pytest.mark.parametrize(
    ("case", "priority", "fixed_after", "told"),
    [
        ("P0: at once", "P0", None,
         ["Wed 10:00 [EAFIX] P0 (PagerDuty: P1) incident for management: EAFIX alert"]),
        ("P1 open at 30 minutes", "P1", None,
         ["Wed 10:30 [EAFIX] P1 (PagerDuty: P2) incident for management: EAFIX alert"]),
        ("P1 resolved in 20 minutes: its resolution at 30", "P1", 20,
         ["Wed 10:30 [EAFIX] Resolved P1 (PagerDuty: P2) for management: EAFIX alert"]),
    ],
)  # fmt: skip
def test_management_hears_of_p0_at_once_and_p1_within_30_minutes_by_email_too(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    mailbox: SmtpServer,
    case: str,
    priority: str,
    fixed_after: int | None,
    told: list[str],
) -> None:
    rt.policy = replace(rt.policy, pagerduty=replace(rt.policy.pagerduty, management=MANAGEMENT))
    fixed = WEDNESDAY_10AM + timedelta(minutes=fixed_after) if fixed_after else None
    incident, _ = lifetime(
        rt, pagerduty, priority, WEDNESDAY_10AM, fixed, WEDNESDAY_10AM + timedelta(hours=1)
    )
    assert subjects(mailbox, MANAGERS) == told, case
    [mail] = mailbox.to(MANAGERS)
    [note] = [n for n in pagerduty.notes_for(incident) if "anagement notification" in n["content"]]
    text, said = mail.part("plain").splitlines(), note["content"].splitlines()
    # The e-mail says what the note says, to management: whom PagerDuty calls in, or the
    # figures of an incident resolved before it fell due, line for line.
    if fixed:
        assert (
            text[2:4]
            == said[1:3]
            == [
                "- never acknowledged; resolved after 20m (SLA 15m: MISSED)",
                "- resolved after 20m (SLA 8h of market hours: met)",
            ]
        ), case
    else:
        called = "PEP0001 (escalation policy), PUSR001 (user)"
        assert text[1].endswith(f"PagerDuty requests responders from {called}."), case
        assert said[0].endswith(f"responders requested from {called}."), case
    assert "<html>" in mail.part("html") and f"Incident: {incident}" in text, case
    # The PagerDuty side works as before: a responder request for an open incident only.
    assert len(pagerduty.responder_requests.get(incident, [])) == (0 if fixed else 1), case


def test_p2_p3_incidents_of_a_business_day_are_one_summary_email_at_the_next_opening(
    rt: Runtime, pagerduty: FakePagerDuty, mailbox: SmtpServer
) -> None:
    """An alert storm of 25 P2/P3 incidents: one e-mail, listing each, not 25."""
    raised = []
    for n in range(25):
        at = MONDAY_10AM + timedelta(minutes=10 * n)
        priority = "P2" if n % 2 else "P3"
        incident = pagerduty.add_incident(f"k-storm-{n}", f"Storm{n}")
        respond(rt, record_trigger(rt, incident, f"Storm{n}", priority, at), at)
        raised.append(incident)
    resolve(rt, raised[0], MONDAY_10AM + timedelta(hours=1))
    tuesday = datetime(2026, 12, 1, 9, 0, tzinfo=NEW_YORK)
    for now in (tuesday - MINUTES, tuesday, tuesday + MINUTES):
        tick(rt, now)
    # One replayed Monday incident registers the summary again: still one e-mail.
    late = pagerduty.add_incident("k-late", "Late")
    respond(rt, record_trigger(rt, late, "Late", "P3", MONDAY_10AM), tuesday + MINUTES)
    tick(rt, tuesday + 2 * MINUTES)

    [summary] = mailbox.to(MANAGERS)
    assert sent_at(summary) == "Tue 09:00"
    assert summary.message["Subject"] == "[EAFIX] Next business day summary: 25 P2/P3 incidents"
    text, html = summary.part("plain"), summary.part("html")
    assert text.startswith("[P2/P3] Next business day summary for management: 25 incidents")
    assert all(f"- {incident} [" in text for incident in raised)
    assert html.count("<tr><td>") == 2 + 25  # a row per priority, a row per incident
    assert (
        f"<td>{raised[0]}</td><td>P3 (PagerDuty: P4)</td><td>Storm0</td><td>resolved</td>" in html
    )
    # The notes on PagerDuty say the same.
    [note] = [n for n in pagerduty.notes_for(raised[0]) if "Next business day" in n["content"]]
    assert note["content"].startswith(text.splitlines()[0])


def desk_evidence(rt: Runtime, run_id: str, open_positions: int, failed_orders: int) -> list:
    """Store the trading collector's manifest entry for a run, as the evidence would."""
    rows = [
        {"service": "gui-gateway", "endpoint": "positions", "http_status": 200,
         "open_positions": open_positions, "problem": False, "finding": "positions"},
        {"service": "execution-engine", "endpoint": "executions", "http_status": 200,
         "failed_orders": failed_orders, "problem": failed_orders > 0, "finding": "executions"},
    ]  # fmt: skip
    entries = [{"name": "trading", "status": "ok", "summary": "", "tables": {"endpoints": rows}}]
    rt.redis.set(entries_key(run_id), json.dumps(entries))
    return entries


@pytest.mark.parametrize(
    ("case", "raised", "positions", "failed", "calls"),
    [
        ("3 open positions during market hours: called", WEDNESDAY_10AM, 3, 0, 1),
        ("orders failing during market hours: called", WEDNESDAY_10AM, 0, 2, 1),
        ("no open position, no failing order: no call", WEDNESDAY_10AM, 0, 0, 0),
        ("open positions on Saturday (phone: market hours only): no call", SATURDAY_2AM, 3, 0, 0),
    ],
)  # fmt: skip
def test_phone_call_for_critical_trading_impacts_is_one_responder_request(
    rt: Runtime,
    pagerduty: FakePagerDuty,
    case: str,
    raised: datetime,
    positions: int,
    failed: int,
    calls: int,
) -> None:
    from tasks.notify import desk

    policy = rt.policy
    desk_policy = replace(policy.communication.trading_desk, call=DESK_CALL)
    rt.policy = replace(
        policy, communication=replace(policy.communication, trading_desk=desk_policy)
    )
    incident = pagerduty.add_incident("k-desk", "RiskManagerDown")
    state = respond(rt, record_trigger(rt, incident, "RiskManagerDown", "P0", raised), raised)
    entries = desk_evidence(rt, state.run_id, positions, failed)
    for n in range(2):  # the evidence collected again (a refresh) calls no one twice
        desk.register_call(rt, state, entries, raised + timedelta(minutes=n))
        tick(rt, raised + timedelta(minutes=n, seconds=5))
    requests = [
        r
        for r in pagerduty.responder_requests.get(incident, [])
        if "trading impact" in r["message"]
    ]
    assert len(requests) == calls, case
    if calls:
        [request] = requests
        assert [
            t["responder_request_target"]["id"] for t in request["responder_request_targets"]
        ] == ["PDESK01"]
        notes = [n["content"] for n in pagerduty.notes_for(incident)]
        assert any("Trading desk: critical trading impact" in n for n in notes), case


def message_to(address: str, kind: str = "desk_alert", key: str = "run-1") -> Mail:
    return Mail(kind, key, (address,), "Subject", "text <b>", "<p>html &amp;</p>", "P0", "PINC")


def test_a_retried_send_sends_once_and_an_interrupted_one_again_with_the_same_message_id(
    rt: Runtime, mailbox: SmtpServer
) -> None:
    mail = message_to(DESK)
    assert send_once(rt, mail).startswith("desk_alert: e-mailed")
    assert send_once(rt, mail) == "desk_alert: already sent"
    # A worker died after the server's 250 and before the once-record: the record is pending.
    other = replace(mail, key="run-2")
    token = current_attempt.set("task-a")
    try:
        rt.deliveries.claim_attempt("email:run-2", "desk_alert", None, "task-a")
        send_once(rt, other)  # the same task, retried: sends again
    finally:
        current_attempt.reset(token)
    first, second = mailbox.to(DESK)
    assert first.message["Message-ID"] != second.message["Message-ID"]
    assert second.message["Message-ID"] == message_id("desk_alert", "run-2", "r@eafix.example")
    # Another task's attempt in flight: this one waits instead of sending beside it.
    rt.deliveries.claim_attempt("email:run-3", "desk_alert", None, "task-b")
    with pytest.raises(EmailUnavailable) as caught:
        send_once(rt, replace(mail, key="run-3"))
    assert caught.value.held_back and len(mailbox.to(DESK)) == 2


def test_without_an_smtp_host_emails_are_eml_files_in_the_outbox(
    rt: Runtime, tmp_path: Path
) -> None:
    rt.settings = replace(rt.settings, smtp_host="", outbox_dir=tmp_path / "outbox")
    assert isinstance(rt.email, OutboxEmail)
    send_once(rt, message_to(DESK))
    [path] = (tmp_path / "outbox" / "email").glob("*/*.eml")
    text = path.read_text()
    assert "Subject: Subject" in text and "To: trading-desk@eafix.example" in text
    assert "Content-Type: text/html" in text and "Content-Type: text/plain" in text


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[SmtpServer, trustme.CA]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = SmtpServer(tls_context=context, credentials=("responder", "s3cret-pass")).start()
    yield server, ca
    server.stop()


def test_starttls_and_auth_with_a_password_that_never_shows(
    settings: Settings, tls_server: tuple[SmtpServer, trustme.CA], tmp_path: Path
) -> None:
    server, ca = tls_server
    server.reset()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    smtp = replace(
        settings,
        smtp_port=server.port,
        smtp_starttls=True,
        smtp_ca_file=str(ca_file),
        smtp_user="responder",
        smtp_password=Secret("s3cret-pass"),
    )
    message = build_message(message_to(DESK), "r@eafix.example", WEDNESDAY_10AM)
    gateway = SmtpGateway(smtp, Runtime(smtp).redact)
    accepted: list[bool] = []
    gateway.send(message, lambda: accepted.append(True))
    [received] = server.received
    assert accepted == [True] and received.tls and received.login == "responder"
    # A wrong password: 535, permanent; the message names neither password.
    wrong = replace(smtp, smtp_password=Secret("not-the-pass"))
    with pytest.raises(EmailUnavailable) as caught:
        SmtpGateway(wrong, Runtime(wrong).redact).send(message, lambda: None)
    assert caught.value.code == 535 and caught.value.surely_not_sent
    assert "s3cret-pass" not in str(caught.value) and "not-the-pass" not in str(caught.value)


def test_a_hung_smtp_server_times_out_and_spares_the_next_attempts_its_timeout(
    rt: Runtime,
) -> None:
    """A server that accepts connections and never greets: smtplib's timeout ends the first
    attempt (retried: the network); the next ones within BREAKER_SECONDS fail at once, so a
    hung server costs one worker slot one timeout, not every e-mail's."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    rt.settings = replace(rt.settings, smtp_port=port, smtp_timeout_seconds=0.5)
    try:
        with pytest.raises(EmailUnavailable) as first:
            send_once(rt, message_to(DESK, key="hung-1"))
        for n in range(2, 6):
            with pytest.raises(EmailUnavailable) as later:
                send_once(rt, message_to(DESK, key=f"hung-{n}"))
            assert later.value.code is None and "not tried again" in str(later.value)
    finally:
        listener.close()
        for connection in held:
            connection.close()
    assert first.value.code is None  # the network: retried (decide_smtp)
    assert "timed out" in str(first.value)
    assert len(held) == 1  # one connection: the later attempts did not wait on the server
    # Nothing was sent: the claims are cleared, a retry sends without a doubt.
    assert rt.deliveries.effect_state("email:hung-1", "desk_alert") is None


def test_no_secret_reaches_an_email(rt: Runtime, mailbox: SmtpServer) -> None:
    secret = rt.settings.pagerduty_token.reveal()
    assert secret
    leaky = Mail("desk_alert", "leak", (DESK,), f"Down {secret}", f"token={secret}",
                 f"<p>{secret}</p>", "P0", "PINC")  # fmt: skip
    send_once(rt, leaky)
    [mail] = mailbox.to(DESK)
    assert secret not in mail.message.as_string()
    assert mail.message["Subject"].startswith("Down ") and "token=" in mail.part("plain")


def test_email_and_pagerduty_do_not_wait_for_each_others_failures(
    rt: Runtime, pagerduty: FakePagerDuty, mailbox: SmtpServer
) -> None:
    from tasks.gateways.pagerduty import PagerDutyUnavailable
    from tasks.sla import actions

    rt.policy = replace(rt.policy, pagerduty=replace(rt.policy.pagerduty, management=MANAGEMENT))
    incident = pagerduty.add_incident("k-both", "EAFIX alert")
    respond(rt, record_trigger(rt, incident, "EAFIX alert", "P0", WEDNESDAY_10AM), WEDNESDAY_10AM)
    [deadline] = [d for d in rt.clock.pending() if d.kind == "notify_management"]
    # SMTP answers 451: PagerDuty is still asked and noted; the retry sends only the e-mail.
    mailbox.script(incident, ["451 4.3.0 Try again later"])
    with pytest.raises(EmailUnavailable):
        actions.act(rt, deadline, WEDNESDAY_10AM)
    assert len(pagerduty.responder_requests[incident]) == 1 and mailbox.to(MANAGERS) == []
    actions.act(rt, deadline, WEDNESDAY_10AM)  # the task's retry
    assert len(mailbox.to(MANAGERS)) == 1 and len(pagerduty.responder_requests[incident]) == 1
    # PagerDuty answers 503: management has its e-mail all the same; the retry does the rest.
    other = pagerduty.add_incident("k-both-2", "EAFIX alert")
    at = WEDNESDAY_10AM + MINUTES
    respond(rt, record_trigger(rt, other, "EAFIX alert", "P0", at), at)
    [later] = [
        d for d in rt.clock.pending() if d.kind == "notify_management" and d.incident_id == other
    ]
    pagerduty.fail_next(503, 1, method="POST", path_suffix="/responder_requests")
    with pytest.raises(PagerDutyUnavailable):
        actions.act(rt, later, at)
    assert len(mailbox.to(MANAGERS)) == 2 and other not in pagerduty.responder_requests
    actions.act(rt, later, at)
    assert len(mailbox.to(MANAGERS)) == 2 and len(pagerduty.responder_requests[other]) == 1
    notes = [
        n for i in (incident, other) for n in pagerduty.notes_for(i) if "anagement" in n["content"]
    ]
    assert len(notes) == 2
