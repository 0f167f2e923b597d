"""Validation 3, "Trading flow test": POST a simulated tick, then see a signal (`responses`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from collectors.contract import CollectorContext, Status, Target
from collectors.trading_flow import collect, run_flow
from triage.policy import Service

INGESTOR = Service(
    "data-ingestor", "http://data-ingestor:8081/healthz", flow_test={"tick": "/test/simulate-tick"}
)
SIGNALS = Service(
    "signal-generator",
    "http://signal-generator:8083/healthz",
    flow_test={"signal": "/api/signals?limit=1"},
)
TICK_URL = "http://data-ingestor:8081/test/simulate-tick"
SIGNAL_URL = "http://signal-generator:8083/api/signals?limit=1"
CTX = CollectorContext(redis_url="", timeout_seconds=1)
WHERE = " (data-ingestor /test/simulate-tick, then signal-generator /api/signals?limit=1)"


def _iso(offset_seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_seconds)).isoformat()


# tick answer, signals answer (JSON body or HTTP status), status, summary (before WHERE)
CASES: list[tuple[str, Any, Any, Status, str]] = [
    ("a signal after the tick passes", 200, lambda: [{"at": _iso(30), "pair": "EURUSD"}],
     Status.OK, "tick accepted; a signal 30.0 s after it"),
    ("a signal only from before the tick fails", 200,
     lambda: [{"at": "2026-11-27T10:00:00+00:00"}], Status.FAILED,
     "tick accepted; no signal after it within 0 s (the newest is from 10:00:00 UTC)"),
    ("no signal at all fails", 200, lambda: [], Status.FAILED,
     "tick accepted; no signal at all within 0 s"),
    ("a signal without a time passes, saying so", 200, lambda: [{"pair": "EURUSD"}], Status.OK,
     "tick accepted; a signal came back (it carries no time: it may be older)"),
    ("the newest of several signals counts", 200,
     lambda: [{"at": _iso(-600)}, {"at": _iso(5)}, {"at": _iso(-300)}], Status.OK,
     "tick accepted; a signal 5.0 s after it"),
    ("signals in an object count too", 200, lambda: {"signals": [{"timestamp": 4102444800}]},
     Status.OK, None),
    ("a time no clock can read is no time", 200, lambda: [{"timestamp": 1e30}], Status.OK,
     "tick accepted; a signal came back (it carries no time: it may be older)"),
    ("an unavailable signals endpoint fails", 200, 503, Status.FAILED,
     "tick accepted; the signals endpoint is unavailable (HTTP 503)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "tick", "signals", "status", "summary"), CASES, ids=[row[0] for row in CASES]
)
@responses.activate
def test_validation_3_trading_flow_test_simulate_a_tick_see_a_signal(
    case: str, tick: int, signals: Any, status: Status, summary: str | None
) -> None:
    responses.post(TICK_URL, status=tick, json={"tick": "accepted"})
    if isinstance(signals, int):
        responses.get(SIGNAL_URL, status=signals)
    else:
        responses.get(SIGNAL_URL, json=signals())
    with requests.Session() as session:
        evidence = run_flow(
            session, (INGESTOR, "/test/simulate-tick"), (SIGNALS, "/api/signals?limit=1"),
            CTX, within=0, sleep=lambda _: None,
        )  # fmt: skip
    assert evidence.status is status
    if summary is not None:
        assert evidence.summary == summary + WHERE
    calls = [(c.request.method, c.request.url) for c in responses.calls]
    assert calls[0] == ("POST", TICK_URL)  # the tick first, on the catalog's host
    assert calls[1] == ("GET", SIGNAL_URL)


@responses.activate
def test_a_refused_tick_fails_without_looking_for_a_signal() -> None:
    responses.post(TICK_URL, status=404, json={"error": "not found"})
    evidence = collect(Target(services=(INGESTOR, SIGNALS)), CTX)
    assert (evidence.status, evidence.summary) == (
        Status.FAILED,
        "tick refused by data-ingestor /test/simulate-tick: HTTP 404",
    )
    assert len(responses.calls) == 1


@responses.activate
def test_the_collector_waits_for_a_signal_newer_than_the_tick() -> None:
    # The first answer predates the tick, the second comes after it: polled, not failed.
    responses.post(TICK_URL, json={"tick": "accepted"})
    responses.get(SIGNAL_URL, json=[{"at": "2026-11-27T10:00:00+00:00"}])
    responses.get(SIGNAL_URL, json=[{"at": _iso(60)}])
    evidence = collect(Target(services=(INGESTOR, SIGNALS)), CTX)
    assert evidence.status is Status.OK, evidence.summary
    assert len(responses.calls) == 3


def test_without_the_catalog_s_flow_test_it_is_skipped_saying_what_is_missing() -> None:
    plain = Service("data-ingestor", "http://data-ingestor:8081/healthz")
    evidence = collect(Target(services=(plain, SIGNALS)), CTX)
    assert (evidence.status, evidence.summary) == (
        Status.SKIPPED,
        "the catalog names no flow_test tick",
    )
