"""A small, living EAFIX: six services with health, metrics and the runbook's endpoints.

One process serves every service on its own loopback port. A ticker moves market data,
signals and orders along; `inject(scenario)` breaks one thing the way the alert rules of
`../shared/eafix/alert-rules.yml` notice. Test and demo code only: no product package
imports it.

A service that is down is one whose process is not running (its container exited): it answers
503 to everything but `/_sim/`. `stop_service` and `start_service` are what `docker stop` and
`docker start`/`restart` do to it (the demo world's Docker engine calls them); starting a
service clears the scenario that took it down. `watchers` hear each service go down or come
back, whatever the cause. While trading is stopped (`POST /emergency/stop-trading`) no order
goes out and nothing is executed; signals still flow.

    python -m demo.simulator --base-port 18080        # ports 18080..18085, Ctrl-C stops
    curl -X POST localhost:18080/_sim/inject/signal-latency
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SERVICES = (
    "gui-gateway",
    "data-ingestor",
    "indicator-engine",
    "signal-generator",
    "risk-manager",
    "execution-engine",
)
TRADING_PATH = set(SERVICES)  # the gateway too: it serves /emergency/stop-trading
# The trading flow's hops (the catalog's depends_on): a message goes from upstream to service.
EDGES = (
    ("data-ingestor", "indicator-engine"),
    ("indicator-engine", "signal-generator"),
    ("signal-generator", "risk-manager"),
    ("risk-manager", "execution-engine"),
)
SLOW_EDGE = ("indicator-engine", "signal-generator")  # where signal-latency's 7 s are spent

# scenario -> (what it breaks, the alert the rules raise)
SCENARIOS = {
    "service-down": ("execution-engine stops answering (trading path)", "TradingServiceDown"),
    "risk-manager-down": ("risk-manager stops answering", "RiskManagerDown"),
    "gateway-down": ("gui-gateway stops answering (trading path)", "ServiceDown"),
    "complete-outage": ("every service stops answering", "EAFIXCompleteOutage"),
    "signal-latency": ("signals take about 7 s", "SignalLatencyHigh"),
    "stale-market-data": ("no market-data tick arrives", "MarketDataStale"),
    "reconciliation-failure": ("broker reconciliation fails", "PositionReconciliationFailed"),
    "checksum-mismatch": ("stored positions fail their checksum", "PositionChecksumMismatch"),
    "risk-check-errors": ("risk checks error", "RiskCheckErrors"),
    "auth-spike": ("failed logins spike at the gateway", "AuthFailureSpike"),
    "indicator-nan": ("the indicator engine emits NaN", "IndicatorDataQuality"),
    "noisy-logs": ("services log ERROR lines (no alert rule: evidence only)", ""),
}  # fmt: skip
# The scenarios that stop services' processes, and which.
TAKES_DOWN = {
    "service-down": ("execution-engine",),
    "risk-manager-down": ("risk-manager",),
    "gateway-down": ("gui-gateway",),
    "complete-outage": SERVICES,
}

log = logging.getLogger("eafix.sim")


@dataclass
class ServiceState:
    """One simulated service: its registry, metrics and whether it answers."""

    name: str
    port: int
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    down: bool = False
    server: Any = None


class Simulator:
    """The six services, their metrics and the failures that can be injected."""

    def __init__(self, ports: dict[str, int] | None = None, tick_seconds: float = 0.25) -> None:
        self.tick_seconds = tick_seconds
        self.services = {name: ServiceState(name, (ports or {}).get(name, 0)) for name in SERVICES}
        self.active: set[str] = set()
        self.logs: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.positions = [
            {"id": "POS-1", "pair": "EURUSD", "side": "long", "units": 100000, "status": "open"},
            {"id": "POS-2", "pair": "USDJPY", "side": "short", "units": 50000, "status": "open"},
            {"id": "POS-3", "pair": "GBPUSD", "side": "long", "units": 25000, "status": "closed"},
        ]
        self.signals: list[dict[str, Any]] = []
        self.executions: list[dict[str, Any]] = []
        self.trading_stopped = False
        self.trading_stopped_at = ""
        self.emergency_calls: list[str] = []  # each stop or resume the gateway was asked for
        # Each hears (service, running) when a service goes down or comes back.
        self.watchers: list[Callable[[str, bool], None]] = []
        reg = {name: s.registry for name, s in self.services.items()}
        self.latency = Histogram(
            "eafix_signal_latency_seconds",
            "Tick received to signal emitted.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=reg["signal-generator"],
        )
        self.last_tick = Gauge(
            "eafix_last_tick_timestamp_seconds", "Time of the last tick.",
            registry=reg["data-ingestor"],
        )  # fmt: skip
        self.checksum_mismatches = Counter(
            "eafix_position_checksum_mismatches", "Positions failing their checksum.",
            registry=reg["risk-manager"],
        )  # fmt: skip
        self.reconciliation_failures = Counter(
            "eafix_reconciliation_failures", "Failed reconciliations.", registry=reg["gui-gateway"]
        )
        self.risk_checks_failed = Counter(
            "eafix_risk_checks_failed", "Risk checks that errored.", registry=reg["risk-manager"]
        )
        self.orders = Counter(
            "eafix_orders", "Orders by outcome.", ["status"], registry=reg["execution-engine"]
        )
        self.nan_values = Counter(
            "eafix_indicator_nan_values", "NaN indicator outputs.", registry=reg["indicator-engine"]
        )
        self.auth_failures = Counter(
            "eafix_auth_failures", "Failed logins and API-key checks.", registry=reg["gui-gateway"]
        )
        # Root Cause Analysis 3 and 4: each service's inbound queue, each hop's latency (the
        # receiving service measures it).
        self.queue_depth = {
            name: Gauge("eafix_queue_depth", "Messages waiting in the service's inbound queue.",
                        ["service"], registry=reg[name]).labels(name)
            for name in SERVICES
        }  # fmt: skip
        self.edge_latency = {
            (up, down): Histogram(
                "eafix_edge_latency_seconds", "Time a message takes from upstream to service.",
                ["upstream", "service"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 10),
                registry=reg[down],
            ).labels(up, down)
            for up, down in EDGES
        }  # fmt: skip

    # --- running ---------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1") -> Simulator:
        """Serve every service and start the ticker."""
        for state in self.services.values():
            state.server = make_server(
                host, state.port, self._app(state), threaded=True, request_handler=_Quiet
            )
            state.port = state.server.server_port
            threading.Thread(target=state.server.serve_forever, daemon=True).start()
        self.last_tick.set(time.time())
        threading.Thread(target=self._ticker, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop the ticker and every server."""
        self._stop.set()
        for state in self.services.values():
            if state.server is not None:
                state.server.shutdown()
                state.server.server_close()

    def url(self, service: str) -> str:
        """Return a service's base URL."""
        return f"http://127.0.0.1:{self.services[service].port}"

    # --- scenarios -------------------------------------------------------------------

    def inject(self, scenario: str) -> str:
        """Break something; return what was broken."""
        if scenario not in SCENARIOS:
            raise KeyError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        with self._lock:
            self.active.add(scenario)
            if scenario == "stale-market-data":
                self.last_tick.set(time.time() - 600)
        for name in TAKES_DOWN.get(scenario, ()):
            self._set_down(name, True)
        return SCENARIOS[scenario][0]

    def clear(self) -> None:
        """Mend everything: every service running, no scenario active, trading on."""
        with self._lock:
            self.active.clear()
            self.last_tick.set(time.time())
            self.trading_stopped, self.trading_stopped_at = False, ""
        for name in SERVICES:
            self._set_down(name, False)

    def stop_service(self, name: str) -> None:
        """Stop a service's process, as `docker stop` does: it answers no more."""
        self._set_down(name, True)

    def start_service(self, name: str) -> None:
        """Start a service's process again (`docker start`, `docker restart`): it answers, healthy.

        A scenario that only stopped processes is over once all of them run again.
        """
        with self._lock:
            self.services[name].down = False
            for scenario in [s for s in self.active if s in TAKES_DOWN]:
                if not any(self.services[n].down for n in TAKES_DOWN[scenario]):
                    self.active.discard(scenario)
        self._tell(name, True)

    def stop_trading(self) -> None:
        """The gateway's emergency stop: no order goes out until trading resumes."""
        with self._lock:
            self.emergency_calls.append("stop-trading")
            if not self.trading_stopped:
                self.trading_stopped, self.trading_stopped_at = True, _iso(time.time())

    def resume_trading(self) -> None:
        """Let orders go out again."""
        with self._lock:
            self.emergency_calls.append("resume-trading")
            self.trading_stopped, self.trading_stopped_at = False, ""

    def trading_status(self) -> dict[str, str]:
        """Return what `GET /api/trading/status` answers: trading stopped (since when) or active."""
        if self.trading_stopped:
            return {"trading": "stopped", "since": self.trading_stopped_at}
        return {"trading": "active"}

    def running(self, name: str) -> bool:
        """Return whether a service's process runs."""
        return not self.services[name].down

    def _set_down(self, name: str, down: bool) -> None:
        with self._lock:
            self.services[name].down = down
        self._tell(name, not down)

    def _tell(self, name: str, running: bool) -> None:
        for watcher in list(self.watchers):
            watcher(name, running)

    def _ticker(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.tick(time.time())

    def tick(self, now: float) -> None:
        """Move market data, signals and orders along by one tick, as the scenarios break them."""
        with self._lock:
            active = set(self.active)
            if "stale-market-data" not in active and not self.services["data-ingestor"].down:
                self.last_tick.set(now)
            slow = "signal-latency" in active
            latency = random.uniform(6.5, 7.5) if slow else random.uniform(0.02, 0.2)
            self.latency.observe(latency)
            for edge, histogram in self.edge_latency.items():
                hop = latency if slow and edge == SLOW_EDGE else random.uniform(0.002, 0.02)
                histogram.observe(hop)
            for name, depth in self.queue_depth.items():
                # Behind the slow hop messages pile up; elsewhere a few wait at most.
                backed_up = slow and name == SLOW_EDGE[1]
                depth.set(random.randint(240, 260) if backed_up else random.randint(0, 5))
            self.signals.append(
                {"at": _iso(now), "pair": "EURUSD", "side": "buy", "latency_s": round(latency, 3)}
            )
            self.signals = self.signals[-200:]
            # An order goes out only while trading runs and the execution engine is up; with
            # the risk manager down it goes out unchecked (why the runbook stops trading then).
            if not self.trading_stopped and not self.services["execution-engine"].down:
                checked = not self.services["risk-manager"].down
                self.orders.labels("filled").inc()
                self.executions.append(
                    {"at": _iso(now), "pair": "EURUSD", "status": "filled", "risk_checked": checked}
                )
                self.executions = self.executions[-200:]
            if "checksum-mismatch" in active:
                self.checksum_mismatches.inc()
            if "reconciliation-failure" in active:
                self.reconciliation_failures.inc()
            if "risk-check-errors" in active:
                self.risk_checks_failed.inc(3)
            if "auth-spike" in active:
                # 400 a second: AuthFailureSpike's 5-minute rate passes 5 a second in about
                # 4 s, where 100 a second took 15 s of every demo and test that injects it.
                self.auth_failures.inc(100)
            if "indicator-nan" in active:
                self.nan_values.inc(5)
            if "noisy-logs" in active:
                self.logs.append(f"{_iso(now)} ERROR execution-engine broker session reset")
                self.logs = self.logs[-500:]

    # --- HTTP ------------------------------------------------------------------------

    def _app(self, state: ServiceState) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            return self._handle(state, Request(environ))(environ, start_response)

        return app

    def _handle(self, state: ServiceState, request: Request) -> Response:
        path = request.path
        if path.startswith("/_sim/"):
            return self._control(request)
        if state.down:
            return _json({"status": "down", "error": "service unavailable"}, 503)
        if path in ("/health", "/healthz"):
            return _json(self._health(state))
        if path == "/metrics":
            return Response(
                generate_latest(state.registry), content_type="text/plain; version=0.0.4"
            )
        handler = _ROUTES.get((state.name, request.method, path))
        if handler is None:
            return _json({"error": "not found"}, 404)
        return _json(handler(self, request))

    def _health(self, state: ServiceState) -> dict[str, Any]:
        checks: dict[str, str] = {"self": "ok"}
        with self._lock:
            active = set(self.active)
        if state.name == "data-ingestor" and "stale-market-data" in active:
            checks["market_feed"] = "stale"
        if state.name == "signal-generator" and "signal-latency" in active:
            checks["latency"] = "p99 7s"
        if state.name == "risk-manager" and active & {"checksum-mismatch", "risk-check-errors"}:
            checks["positions"] = "checksum mismatch" if "checksum-mismatch" in active else "errors"
        if state.name == "gui-gateway" and "reconciliation-failure" in active:
            checks["broker_reconciliation"] = "failing"
        status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
        return {"status": status, "service": state.name, "checks": checks}

    def _control(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        try:
            if parts[1:2] == ["inject"] and len(parts) == 3:
                return _json({"injected": parts[2], "effect": self.inject(parts[2])})
            if parts[1:] == ["clear"]:
                self.clear()
                return _json({"cleared": True})
            if parts[1:] == ["state"]:
                return _json({"active": sorted(self.active), "logs": self.logs[-50:]})
        except KeyError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"error": "unknown control path"}, 404)


def _positions(sim: Simulator, request: Request) -> Any:
    return sim.positions


def _reconcile(sim: Simulator, request: Request) -> Any:
    failing = "reconciliation-failure" in sim.active
    return {"status": "mismatch" if failing else "ok", "checked": len(sim.positions),
            "mismatches": ["POS-2"] if failing else []}  # fmt: skip


def _stop_trading(sim: Simulator, request: Request) -> Any:
    sim.stop_trading()
    return sim.trading_status()


def _resume_trading(sim: Simulator, request: Request) -> Any:
    sim.resume_trading()
    return sim.trading_status()


def _trading_status(sim: Simulator, request: Request) -> Any:
    return sim.trading_status()


def _tick(sim: Simulator, request: Request) -> Any:
    sim.last_tick.set(time.time())
    return {"tick": "accepted"}


def _signals(sim: Simulator, request: Request) -> Any:
    limit = request.args.get("limit", type=int)
    return sim.signals[-limit:] if limit else sim.signals[-50:]


def _executions(sim: Simulator, request: Request) -> Any:
    return sim.executions[-50:]


_ROUTES = {
    ("gui-gateway", "GET", "/api/positions"): _positions,
    ("gui-gateway", "GET", "/api/reconcile/positions"): _reconcile,
    ("gui-gateway", "POST", "/emergency/stop-trading"): _stop_trading,
    ("gui-gateway", "POST", "/emergency/resume-trading"): _resume_trading,
    ("gui-gateway", "GET", "/api/trading/status"): _trading_status,
    ("data-ingestor", "POST", "/test/simulate-tick"): _tick,
    ("signal-generator", "GET", "/api/signals"): _signals,
    ("execution-engine", "GET", "/api/executions"): _executions,
}


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def main() -> None:
    """Run the simulator in the foreground."""
    parser = argparse.ArgumentParser(description="Run the EAFIX simulator.")
    parser.add_argument("--base-port", type=int, default=18080)
    args = parser.parse_args()
    ports = {name: args.base_port + n for n, name in enumerate(SERVICES)}
    sim = Simulator(ports).start()
    for name in SERVICES:
        print(f"{name:<18} {sim.url(name)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
