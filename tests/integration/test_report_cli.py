"""`responder report` over incident records seeded in real Redis, against figures by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from tasks.cli import main
from tasks.settings import Settings
from tasks.store.incidents import IncidentStore
from tests.integration.test_pagerduty_webhook import event
from triage.models import parse_pagerduty

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # Wednesday 10:00 in New York: market open


def seed(store: IncidentStore, incident: str, priority: str, start_minutes: int, *moments) -> None:
    """Start our clock for `incident`, then apply (event, status, minutes after T0) in order."""
    store.mark_clock(incident, priority, (T0 + timedelta(minutes=start_minutes)).isoformat(), "r")
    for n, (kind, status, minutes) in enumerate(moments):
        if kind == "restart":
            store.mark_clock(incident, priority, (T0 + timedelta(minutes=minutes)).isoformat(), "r")
            continue
        payload = event(f"incident.{kind}", id=incident, status=status, event_id=n)
        payload["event"]["occurred_at"] = (T0 + timedelta(minutes=minutes)).isoformat()
        store.apply(parse_pagerduty(payload))


def test_report_figures_equal_the_ones_computed_by_hand(
    settings: Settings, redis_client, monkeypatch
) -> None:
    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    store = IncidentStore(redis_client)
    # P0 (acknowledge 5m, resolve 2h of market hours; the market is open all along).
    seed(store, "PA", "P0", 0, ("acknowledged", "acknowledged", 3), ("resolved", "resolved", 90))
    seed(store, "PB", "P0", 0, ("acknowledged", "acknowledged", 10), ("resolved", "resolved", 180))
    # P1 reopened at +60m: the first cycle's acknowledgement and resolution no longer count.
    seed(
        store, "PF", "P1", 0,
        ("acknowledged", "acknowledged", 5), ("resolved", "resolved", 20),
        ("reopened", "triggered", 60), ("restart", "", 60),
        ("acknowledged", "acknowledged", 80),
    )  # fmt: skip
    # P2 (acknowledge 1h, resolve 24h): resolved without acknowledgement; acknowledged and open;
    # never acknowledged.
    seed(store, "PC", "P2", 0, ("resolved", "resolved", 120))
    seed(store, "PD", "P2", 0, ("acknowledged", "acknowledged", 30))
    seed(store, "PE", "P2", 0)
    seed(store, "PG", "P3", -60 * 24 * 30)  # a month earlier: outside the window
    store.apply(parse_pagerduty(event("incident.triggered", id="PNOTOURS", status="triggered")))
    redis_client.rpush("responder:incident-history:PA", "not json", '{"what": "resolved"}')

    days = (datetime.now(UTC) - T0).days + 2  # the window reaches back to T0, not a month more
    result = CliRunner().invoke(main, ["report", "--since", f"{days}d", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["incidents"] == 6
    rows = {row["priority"]: row for row in report["priorities"]}
    assert rows["P0"] == {
        "priority": "P0", "incidents": 2, "acknowledged": 2, "resolved": 2,
        "mtta_seconds": 390,  # (3m + 10m) / 2
        "mttr_seconds": 8100,  # (90m + 180m) / 2
        "acknowledge_sla": {"met": 1, "judged": 2, "percent": 50.0},
        "resolve_sla": {"met": 1, "judged": 2, "percent": 50.0},
    }  # fmt: skip
    assert rows["P1"] == {
        "priority": "P1", "incidents": 1, "acknowledged": 1, "resolved": 0,
        "mtta_seconds": 1200,  # 20m after the reopen, over its 15m
        "mttr_seconds": None,
        "acknowledge_sla": {"met": 0, "judged": 1, "percent": 0.0},
        "resolve_sla": {"met": 0, "judged": 1, "percent": 0.0},  # 8h of market hours have passed
    }  # fmt: skip
    assert rows["P2"] == {
        "priority": "P2", "incidents": 3, "acknowledged": 1, "resolved": 1,
        # 30m for PD alone: PC was never acknowledged, so it has no time to acknowledge (its
        # acknowledge SLA is judged at its resolution, as its closing note judges it)
        "mtta_seconds": 1800,
        "mttr_seconds": 7200,
        "acknowledge_sla": {"met": 1, "judged": 3, "percent": 33.3},
        "resolve_sla": {"met": 1, "judged": 3, "percent": 33.3},
    }  # fmt: skip
    assert rows["P3"]["incidents"] == 0

    human = CliRunner().invoke(main, ["report", "--since", f"{days}d"]).output.splitlines()
    assert human[0].startswith("6 incidents since ")
    assert human[2].split() == ["P0", "2", "6m30s", "1/2", "(50%)", "2h15m", "1/2", "(50%)"]
    assert human[4].split() == ["P2", "3", "30m", "1/3", "(33.3%)", "2h", "1/3", "(33.3%)"]


def test_report_rejects_a_window_it_cannot_read(settings: Settings, monkeypatch) -> None:
    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    result = CliRunner().invoke(main, ["report", "--since", "soon"])
    assert result.exit_code == 2
    assert "expected a duration like 30m, 1h or 2d, got 'soon'" in result.output
