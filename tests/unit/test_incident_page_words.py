"""What the incident page says, in words: countdowns, deadline states, evidence order, the
timeline's kinds, the trading impact. Pure functions, no Redis, no browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.evidence.links import bundle_link, incident_link, incident_subject, link_problem
from triage.policy import builtin
from webhooks import incident_page_view as view

NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # a Monday, the market open


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "in 0 s"),
        (42.9, "in 42 s"),
        (12 * 60 + 5, "in 12 min 05 s"),
        (-(3 * 60 + 10), "3 min 10 s overdue"),
        (2 * 3600 + 5 * 60, "in 2 h 05 min"),
        (-(26 * 3600), "26 h 00 min overdue"),
        (3 * 86400 + 7200, "in 3 days 2 h"),
    ],
)
def test_a_deadline_is_said_in_words_overdue_says_overdue(seconds: float, words: str) -> None:
    assert view.in_words(seconds) == words


def test_a_moment_past_is_said_as_ago() -> None:
    assert view.ago(4 * 60 + 1) == "4 min 01 s ago"


PLANNED = {
    "priority": "P1",
    "triggered_at": (NOW - timedelta(minutes=20)).isoformat(),
    "acknowledge": (NOW - timedelta(minutes=15)).isoformat(),
    "notify_management": (NOW - timedelta(minutes=3)).isoformat(),
    "next_update": (NOW + timedelta(minutes=10)).isoformat(),
    "resolve": (NOW + timedelta(hours=3)).isoformat(),
    "management": "notify",
}


def test_deadlines_are_soonest_first_with_their_state_met_overdue_or_running() -> None:
    record = {
        "status": "acknowledged",
        "acknowledged_at": (NOW - timedelta(minutes=17)).isoformat(),
    }
    rows = view.deadlines(PLANNED, {}, record, NOW)
    assert [(r["label"], r["state"]) for r in rows] == [
        ("Acknowledge", "met"),
        ("Tell management", "overdue"),
        ("Next status update", "running"),
        ("Resolve", "running"),
    ]
    assert rows[1]["words"] == "3 min 00 s overdue" and rows[1]["live"]
    assert view.next_deadline(rows)["kind"] == "notify_management"  # type: ignore[index]


def test_a_deadline_met_after_it_was_due_says_late() -> None:
    record = {"status": "acknowledged", "acknowledged_at": (NOW - timedelta(minutes=5)).isoformat()}
    [ack] = [r for r in view.deadlines(PLANNED, {}, record, NOW) if r["kind"] == "acknowledge"]
    assert ack["state"] == "met-late" and ack["words"] == "met late, 10 min 00 s overdue"


def test_the_clock_moves_a_deadline_and_a_resolved_incident_stops_every_clock() -> None:
    moved = (NOW + timedelta(minutes=30)).isoformat()
    rows = view.deadlines(PLANNED, {"next_update": moved}, {"status": "triggered"}, NOW)
    assert [r["due"] for r in rows if r["kind"] == "next_update"] == [moved]
    stopped = view.deadlines(PLANNED, {}, {"status": "resolved"}, NOW)
    assert {r["state"] for r in stopped} == {"stopped"}
    assert view.next_deadline(stopped) is None


def test_evidence_lists_failures_first_and_sorts_files_by_kind() -> None:
    manifest = {
        "collectors": [
            {"name": "http", "status": "ok", "summary": "6/6 healthy", "files": ["http/h.json"]},
            {"name": "git", "status": "skipped", "summary": "no repo", "files": []},
            {"name": "docker", "status": "failed", "summary": "exited", "files": ["docker/a.log"]},
            {"name": "prometheus", "status": "timeout", "summary": "slow", "files": ["p/up.png"]},
        ]
    }
    rows = view.evidence(manifest)
    assert [r["label"] for r in rows] == [
        "Containers",
        "Metrics (Prometheus)",
        "Service health",
        "Recent deployments",
    ]
    assert rows[0]["status_words"] == "Failed" and rows[0]["logs"] == ["docker/a.log"]
    assert rows[1]["plots"] == [{"file": "p/up.png", "caption": "p/up.png"}]
    assert rows[2]["other_files"] == ["http/h.json"]


def test_a_plot_is_described_in_words_when_the_collector_said_what_it_shows() -> None:
    described = {
        "file": "p/q0.png",
        "title": "SignalLatencyHigh",
        "expression": "signal_latency_p99_seconds",
        "threshold": {"label": "> 5 s"},
    }
    entry = {"name": "prometheus", "status": "ok", "files": ["p/q0.png"], "plots": [described]}
    [row] = view.evidence({"collectors": [entry]})
    assert row["plots"][0]["caption"] == (
        "SignalLatencyHigh signal_latency_p99_seconds (threshold > 5 s)"
    )


def test_error_lines_of_a_log_are_marked() -> None:
    lines = view.log_lines("ok line\n2026 ERROR lost\nTraceback (most recent call last)\n")
    assert [line["error"] for line in lines] == [False, True, True]


@pytest.mark.parametrize(
    ("what", "kind"),
    [
        ("escalated to level 2", "escalation"),
        ("responders requested from PMGMT", "escalation"),
        ("note added", "note"),
        ("status update posted: investigating", "note"),
        ("action act-1a2b3c4d approved: stop-trading on gui-gateway (via incident page)", "action"),
        ("triggered", "alert"),
        ("alert fired: TradingServiceDown (P1)", "alert"),
        ("acknowledged", "status"),
        ("something new", "other"),
    ],
)
def test_each_history_line_has_a_kind(what: str, kind: str) -> None:
    assert view.timeline_kind(what) == kind


def test_the_timeline_merges_sources_once_each_oldest_first() -> None:
    at = NOW - timedelta(minutes=5)
    line = {"at": at.isoformat(), "what": "escalated to level 2", "by": "responder"}
    earlier = {"at": (at - timedelta(minutes=1)).isoformat(), "what": "triggered", "by": ""}
    merged = view.timeline([line], [line, earlier], [{"at": "not a time", "what": "x"}], now=NOW)
    assert [e["what"] for e in merged] == ["triggered: the incident opened", "escalated to level 2"]
    assert merged[1]["kind_label"] == "Escalation" and merged[1]["ago"] == "5 min 00 s ago"


def test_the_trading_impact_comes_from_the_trading_check_or_the_services() -> None:
    policy = builtin()
    trading = {"name": "trading", "status": "ok", "summary": "orders flow"}
    assert view.impact({"collectors": [trading]}, []) == "orders flow"
    down = [{"name": "execution-engine", "trading_path": True, "healthy": False, "health": "down"}]
    assert "execution-engine" in view.impact({}, down)
    assert view.impact({}, []).startswith("Not known yet")
    shown = view.services(policy, ["execution-engine"], {})
    assert shown[0]["health"] == "not checked" and shown[0]["trading_path"]


def test_market_and_priority_are_said_with_pagerdutys_name() -> None:
    policy = builtin()
    assert view.market(policy, NOW)["words"].startswith("Open: closes in ")
    assert view.priority(policy, "P0") == {"ours": "P0", "pagerduty": "P1"}


def test_an_incident_link_is_signed_apart_from_bundle_links() -> None:
    expires = int((NOW + timedelta(days=1)).timestamp())
    link = incident_link("https://r.example/", "PABC123", expires, "s3cret")
    assert link.startswith("https://r.example/incidents/PABC123?expires=")
    sig = link.rsplit("sig=", 1)[1]
    assert link_problem(incident_subject("PABC123"), str(expires), sig, "s3cret", NOW) is None
    # A bundle's signature never opens an incident page of the same name, nor the reverse.
    bundle_sig = bundle_link("", "PABC123", expires, "s3cret").rsplit("sig=", 1)[1]
    assert link_problem(incident_subject("PABC123"), str(expires), bundle_sig, "s3cret", NOW)
    assert link_problem("PABC123", str(expires), sig, "s3cret", NOW)


# The runbook's Validation is what says a service is well after the fix; the page's health is
# the evidence's, so it says when it was measured. bundle written, incident status -> words
@pytest.mark.parametrize(
    ("created_at", "status", "words"),
    [
        ("2026-11-29T13:05:00+00:00", "triggered",
         "Measured Sun 29 Nov 13:05 UTC (10 min 00 s ago)."),
        ("2026-11-29T13:05:00+00:00", "resolved",
         "Measured Sun 29 Nov 13:05 UTC (10 min 00 s ago), while the incident fired: not checked "
         "since it was resolved."),
        (None, "triggered", "Not measured yet: the evidence is still being collected."),
    ],
    ids=["open", "resolved after the measurement", "not measured yet"],
)  # fmt: skip
def test_validation_a_health_read_before_the_fix_says_when_it_was_measured(
    created_at: str | None, status: str, words: str
) -> None:
    now = datetime(2026, 11, 29, 13, 15, tzinfo=UTC)
    assert view.measured(created_at, now, status) == words
