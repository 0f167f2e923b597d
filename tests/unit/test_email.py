"""E-mail's pure parts: who is told of what and when, the message, and the retry decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from email import policy
from email.parser import BytesParser
from zoneinfo import ZoneInfo

import pytest

from collectors.trading_impact import impact_counts, judge
from tasks.gateways.email_compose import Mail, build_message, decide_smtp, message_id, worst_code
from tasks.settings import SettingsError, settings_from_env
from triage.communication import (
    DESK_ALERT,
    DESK_SUMMARY,
    MANAGEMENT,
    MANAGEMENT_SUMMARY,
    TradingImpact,
    desk_call_reasons,
    desk_told,
    recipients,
    trading_impact,
)
from triage.policy import DeskCall, builtin

NEW_YORK = ZoneInfo("America/New_York")
WEDNESDAY_10AM = datetime(2026, 11, 25, 10, 0, tzinfo=NEW_YORK)
SATURDAY_2AM = datetime(2026, 11, 28, 2, 0, tzinfo=NEW_YORK)
SUNDAY_6PM = datetime(2026, 11, 29, 18, 0, tzinfo=NEW_YORK)  # the market opened at 17:00
FRIDAY_5PM = datetime(2026, 11, 27, 17, 0, tzinfo=NEW_YORK)  # it closes at 17:00
POLICY = builtin()
DESK = ("trading-desk@eafix.example",)
MANAGERS = ("engineering-management@eafix.example",)


@pytest.mark.parametrize(
    ("case", "priority", "at", "told"),
    [
        ("P0 on Wednesday morning: the market trades", "P0", WEDNESDAY_10AM, True),
        ("P1 on Wednesday morning", "P1", WEDNESDAY_10AM, True),
        ("P1 on Sunday evening, after the market opened", "P1", SUNDAY_6PM, True),
        ("P0 on Saturday night: the market is closed", "P0", SATURDAY_2AM, False),
        ("P0 at Friday's close", "P0", FRIDAY_5PM, False),
        ("P2 during market hours: not the desk's", "P2", WEDNESDAY_10AM, False),
        ("P3 during market hours", "P3", WEDNESDAY_10AM, False),
    ],
)  # fmt: skip
def test_trading_desk_immediate_notification_for_p0_p1_incidents_during_market_hours(
    case: str, priority: str, at: datetime, told: bool
) -> None:
    assert desk_told(priority, at, POLICY) is told, case


def test_no_desk_address_in_the_policy_tells_the_desk_nothing() -> None:
    quiet = replace(
        POLICY,
        communication=replace(
            POLICY.communication,
            trading_desk=replace(POLICY.communication.trading_desk, email=()),
        ),
    )
    assert not desk_told("P0", WEDNESDAY_10AM, quiet)


@pytest.mark.parametrize(
    ("kind", "priority", "to"),
    [
        (DESK_ALERT, "P0", DESK),
        (DESK_SUMMARY, "P1", DESK),
        (DESK_ALERT, "P2", ()),
        # Internal contacts, "CTO: [Phone - P0 Only]": management's notice of a P0 reaches
        # the CTO's address too (communication.contacts.cto), of a P1 it does not.
        (MANAGEMENT, "P0", (*MANAGERS, "cto@eafix.example")),
        (MANAGEMENT, "P1", MANAGERS),
        (MANAGEMENT_SUMMARY, "P2", MANAGERS),
    ],
)
def test_recipients_per_kind_and_priority(kind: str, priority: str, to: tuple[str, ...]) -> None:
    assert recipients(kind, priority, POLICY) == to


def test_management_summary_by_email_can_be_turned_off() -> None:
    communication = POLICY.communication
    off = replace(communication, management=replace(communication.management, summary=False))
    assert recipients(MANAGEMENT_SUMMARY, "P2", replace(POLICY, communication=off)) == ()
    assert recipients(MANAGEMENT, "P1", replace(POLICY, communication=off)) == MANAGERS


CALLING = replace(
    POLICY,
    communication=replace(
        POLICY.communication,
        trading_desk=replace(
            POLICY.communication.trading_desk,
            call=DeskCall("PREQ", (("PDESK", "user_reference"),)),
        ),
    ),
)


NO_CALL = replace(
    POLICY,
    communication=replace(
        POLICY.communication,
        trading_desk=replace(POLICY.communication.trading_desk, call=None),
    ),
)
READ = {"checked": True, "positions_read": True}


@pytest.mark.parametrize(
    ("case", "impact", "priority", "at", "policy", "reasons"),
    [
        ("open positions during a P0 in market hours", TradingImpact(3, 0, **READ), "P0",
         WEDNESDAY_10AM, CALLING, ["positions_at_risk"]),
        ("orders failing during a P1", TradingImpact(0, 2, **READ), "P1", WEDNESDAY_10AM,
         CALLING, ["orders_failing"]),
        ("both", TradingImpact(1, 1, **READ), "P0", WEDNESDAY_10AM, CALLING,
         ["positions_at_risk", "orders_failing"]),
        ("nothing at risk", TradingImpact(0, 0, **READ), "P0", WEDNESDAY_10AM, CALLING, []),
        ("the market is closed: phone in market hours only", TradingImpact(3, 0), "P0",
         SATURDAY_2AM, CALLING, []),
        ("a P2 does not call the desk", TradingImpact(3, 0), "P2", WEDNESDAY_10AM, CALLING, []),
        ("no call in the policy", TradingImpact(3, 0), "P0", WEDNESDAY_10AM, NO_CALL, []),
        # Runbook: "Phone call for critical trading impacts": positions nobody can read may be
        # at risk; the built-in policy calls for them too (a policy listing `when` may not).
        ("unreadable positions in a P0, built-in policy", TradingImpact(), "P0", WEDNESDAY_10AM,
         POLICY, ["positions_unknown"]),
        ("unreadable positions in a P1, built-in policy",
         TradingImpact(0, 0, checked=True), "P1", WEDNESDAY_10AM, POLICY, ["positions_unknown"]),
        ("unreadable positions, a policy that calls for positions at risk only", TradingImpact(),
         "P0", WEDNESDAY_10AM, CALLING, []),
        ("positions read and none open, built-in policy", TradingImpact(0, 0, **READ), "P0",
         WEDNESDAY_10AM, POLICY, []),
        ("unreadable positions while the market is closed", TradingImpact(), "P0", SATURDAY_2AM,
         POLICY, []),
    ],
)  # fmt: skip
def test_phone_call_for_critical_trading_impacts(
    case: str, impact: TradingImpact, priority: str, at: datetime, policy, reasons: list[str]
) -> None:
    assert desk_call_reasons(impact, priority, at, policy) == reasons, case


def test_the_trading_impact_is_read_from_the_trading_collectors_table() -> None:
    positions = [{"status": "open"}, {"status": "open"}, {"status": "closed"}]
    executions = [{"status": "filled"}, {"status": "REJECTED"}, {"status": "failed"}]
    rows = [
        {"endpoint": "positions", "http_status": 200, **impact_counts("positions", positions)},
        {"endpoint": "executions", "http_status": 200, **impact_counts("executions", executions)},
        {"endpoint": "reconcile", "http_status": 200, "problem": True},
        {"endpoint": "positions", "error": "ConnectTimeout", "problem": True},
    ]
    impact = trading_impact([{"name": "http"}, {"name": "trading", "tables": {"endpoints": rows}}])
    assert impact == TradingImpact(2, 2, reconciliation_failed=True, **READ, ran=True)
    assert impact.describe() == (
        "2 open positions at risk, 2 orders failing, position reconciliation failing"
    )
    assert trading_impact([]).describe() == "not checked: open positions unknown"
    nothing = [{"endpoint": "positions", "http_status": 503, "problem": True}]
    down = trading_impact([{"name": "trading", "tables": {"endpoints": nothing}}])
    assert down.describe() == "open positions unknown (unreadable)"
    unread = trading_impact([{"name": "trading", "tables": {"endpoints": rows[1:]}}])
    assert unread.describe() == (
        "2 orders failing, position reconciliation failing, open positions unknown (unreadable)"
    )
    assert judge("executions", executions, {}) == ("3 recent executions, 2 failed", True)


def mail(**changes: str) -> Mail:
    base = Mail(
        "desk_alert", "d-1-r1", DESK, "[EAFIX] P0 incident: Risk <down>", "text", "<p>x</p>",
        "P0", "PINC1",
    )  # fmt: skip
    return replace(base, **changes)


def test_the_message_has_a_text_and_an_html_part_and_a_stable_message_id() -> None:
    raw = build_message(mail(), "responder@eafix.example", WEDNESDAY_10AM).as_bytes()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message["To"] == "trading-desk@eafix.example"
    assert message["From"] == "EAFIX responder <responder@eafix.example>"
    assert message["Subject"] == "[EAFIX] P0 incident: Risk <down>"
    assert message["Message-ID"] == "<eafix-responder.desk_alert.d-1-r1@eafix.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-EAFIX-Incident"] == "PINC1" and "In-Reply-To" not in message
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert (
        build_message(mail(), "responder@eafix.example", SATURDAY_2AM)["Message-ID"]
        == (message["Message-ID"])
    )  # the same on every attempt: a duplicate is recognisable


def test_a_follow_up_threads_under_the_first_and_a_subject_stays_one_line() -> None:
    summary = mail(kind="desk_summary", thread="d-1-r1", thread_kind="desk_alert",
                   subject="Resolved\r\nBcc: someone@else.example")  # fmt: skip
    message = build_message(summary, "responder@eafix.example", WEDNESDAY_10AM)
    assert (
        message["In-Reply-To"]
        == message["References"]
        == message_id("desk_alert", "d-1-r1", "responder@eafix.example")
    )
    assert message["Subject"] == "Resolved Bcc: someone@else.example"
    assert "Bcc" not in message


def test_message_ids_carry_only_safe_characters() -> None:
    assert message_id("management", "PINC1@2026-11-25T15:00:00+00:00", "r@x.example") == (
        "<eafix-responder.management.PINC1-2026-11-25T15-00-00-00-00@x.example>"
    )


@pytest.mark.parametrize(
    ("case", "code", "attempt", "retry", "delay"),
    [
        ("451 local error: try again", 451, 1, True, 2.0),
        ("421 service not available: later", 421, 2, True, 4.0),
        ("452 insufficient storage", 452, 3, True, 8.0),
        ("connection refused, reset or timed out", None, 1, True, 2.0),
        ("backoff is capped", None, 20, True, 60.0),
        ("550 no such mailbox: for good", 550, 1, False, 0.0),
        ("535 bad credentials: for good", 535, 1, False, 0.0),
        ("554 transaction failed", 554, 1, False, 0.0),
    ],
)  # fmt: skip
def test_smtp_4xx_and_connection_errors_retry_5xx_are_permanent(
    case: str, code: int | None, attempt: int, retry: bool, delay: float
) -> None:
    verdict = decide_smtp(code, attempt, 2.0)
    assert (verdict.retry, verdict.delay) == (retry, delay), case
    assert (str(code) if code else "unreachable") in verdict.reason


def test_several_recipients_refused_the_permanent_refusal_decides() -> None:
    assert worst_code([451, 550]) == 550
    assert worst_code([451, 452]) == 451
    assert worst_code([]) is None


def test_smtp_settings_from_the_environment_with_the_password_a_secret() -> None:
    settings = settings_from_env(
        {
            "RESPONDER_SMTP_HOST": "smtp.example.com",
            "RESPONDER_SMTP_PORT": "2525",
            "RESPONDER_SMTP_STARTTLS": "0",
            "RESPONDER_SMTP_USER": "responder",
            "RESPONDER_SMTP_PASSWORD": "hunter2-smtp",
            "RESPONDER_SMTP_FROM": "alerts@eafix.example",
            "RESPONDER_SMTP_TIMEOUT": "3",
        }
    )
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
        "smtp.example.com", 2525, False,
    )  # fmt: skip
    assert settings.smtp_timeout_seconds == 3.0 and not settings.email_outbox_mode
    assert "hunter2-smtp" not in repr(settings) and "hunter2-smtp" in settings.secrets()
    assert settings_from_env({}).email_outbox_mode  # no host: the outbox
    with pytest.raises(SettingsError, match="RESPONDER_SMTP_STARTTLS"):
        settings_from_env({"RESPONDER_SMTP_STARTTLS": "maybe"})


def test_the_html_part_escapes_what_the_alert_says_and_the_text_part_keeps_it() -> None:
    from tasks.notes.voice import Voice

    facts = {
        "priority": "P0", "title": "<script>alert(1)</script> & down", "reason": "a <b>reason</b>",
        "incident_id": "PINC", "raised": WEDNESDAY_10AM, "acknowledge": WEDNESDAY_10AM,
        "resolve": WEDNESDAY_10AM, "market": {"open": True, "change": "Fri 17:00"},
        "bundle": 'https://r/b/1?x="><script>',
    }  # fmt: skip
    text, html = Voice.of(POLICY).email("desk_alert", **facts)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; down" in html
    assert 'href="https://r/b/1?x=&#34;&gt;&lt;script&gt;"' in html
    assert text.startswith(
        "P0 (PagerDuty: P1) incident during market hours: <script>alert(1)</script> & down"
    )
