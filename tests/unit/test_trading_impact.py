"""The `trading` collector: the catalog's trading endpoints, asked at once (`responses`)."""

from __future__ import annotations

import requests
import responses
from responses import matchers

from collectors.contract import CollectorContext, Status, Target
from collectors.trading_impact import collect
from triage.policy import Service, builtin

GATEWAY = Service(
    "gui-gateway",
    "http://gui-gateway:8080/healthz",
    endpoints={"positions": "/api/positions", "reconcile": "/api/reconcile/positions"},
)


@responses.activate
def test_open_positions_and_a_reconciliation_mismatch_are_reported() -> None:
    responses.get(
        "http://gui-gateway:8080/api/positions",
        json=[{"id": "POS-1", "status": "open"}, {"id": "POS-2", "status": "closed"}],
    )
    responses.get(
        "http://gui-gateway:8080/api/reconcile/positions",
        json={"status": "mismatch", "mismatches": ["POS-2"]},
    )
    evidence = collect(Target(services=(GATEWAY,)), CollectorContext(redis_url=""))
    assert evidence.status is Status.FAILED
    assert evidence.summary == "1 open positions; reconciliation mismatch (POS-2)"
    assert set(evidence.files) == {
        "trading/gui-gateway-positions.json",
        "trading/gui-gateway-reconcile.json",
    }


@responses.activate
def test_an_endpoint_that_hangs_is_unavailable_and_the_others_still_answer() -> None:
    responses.get("http://gui-gateway:8080/api/positions", json=[])
    responses.get(
        "http://gui-gateway:8080/api/reconcile/positions", body=requests.ReadTimeout("timed out")
    )
    evidence = collect(Target(services=(GATEWAY,)), CollectorContext(redis_url=""))
    assert evidence.summary == "0 open positions; reconcile: unavailable (ReadTimeout)"
    assert evidence.status is Status.FAILED


@responses.activate
def test_trading_impact_assessment_recent_signals_since_1h() -> None:
    # The built-in catalog's signal-generator: the runbook's `curl .../api/signals?since=1h`.
    signals = builtin().catalog["signal-generator"]
    url = "http://signal-generator:8083/api/signals"
    responses.get(
        url,
        match=[matchers.query_param_matcher({"since": "1h"})],
        json=[{"id": f"SIG-{n}", "symbol": "EURUSD", "side": "buy"} for n in range(3)],
    )
    evidence = collect(Target(services=(signals,)), CollectorContext(redis_url=""))
    assert evidence.status is Status.OK
    assert evidence.summary == "3 recent signals"
    [row] = evidence.tables["endpoints"]
    assert (row["service"], row["endpoint"], row["path"]) == (
        "signal-generator", "signals", "/api/signals?since=1h",
    )  # fmt: skip
    assert set(evidence.files) == {"trading/signal-generator-signals.json"}
    # Signals that cannot be read are a problem, said as such.
    responses.replace(responses.GET, url, status=503)
    evidence = collect(Target(services=(signals,)), CollectorContext(redis_url=""))
    assert (evidence.status, evidence.summary) == (Status.FAILED, "signals: unavailable (HTTP 503)")
