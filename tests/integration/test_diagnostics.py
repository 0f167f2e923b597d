"""The runbook's missing diagnostics against real things: sockets that answer, refuse and hang,
the fake Docker engine's exec (the Engine API's wire format, through the Docker SDK), and a real
Prometheus scraping two simulated EAFIXes (one with slow signals)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml

from collectors import network, performance, service_health
from collectors.contract import CollectorContext, Status, Target
from demo.docker_engine import FakeContainer, FakeDockerEngine, host_network_exec
from demo.simulator import SERVICES, Simulator
from tasks.actions.validation import run_validation
from tasks.runtime import Runtime
from tasks.settings import settings_from_env
from tests.integration.test_plots import free_port
from tests.support import HealthServer, wait_for
from triage.diagnostics import Dependency, Diagnostics, LatencyTest, NetworkCheck
from triage.policy import Service, Validation, builtin


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port whose kernel accepts connections that nobody ever answers (a hung dependency)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: a connect is refused."""
    return free_port()


@pytest.fixture
def answering() -> Iterator[HealthServer]:
    server = HealthServer()
    server.status["broken"] = "down"  # /broken/ answers 503
    yield server
    server.stop()


def _port(server: HealthServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def test_network_connectivity_from_the_responder_says_why_each_probe_failed_and_never_hangs(
    answering: HealthServer, hung_port: int, closed_port: int
) -> None:
    host = answering.base_url
    dependencies = (
        Dependency("broker-api", "127.0.0.1", _port(answering), f"{host}/broker/"),
        Dependency("broker-backup", "127.0.0.1", _port(answering), f"{host}/broken/"),
        Dependency("market-feed", "127.0.0.1", closed_port),
        Dependency("hung-broker", "127.0.0.1", hung_port, f"http://127.0.0.1:{hung_port}/"),
    )
    ctx = CollectorContext(
        redis_url="", timeout_seconds=5, diagnostics=Diagnostics(NetworkCheck(dependencies, 1.0))
    )
    evidence = network.collect(Target(()), ctx)
    rows = {row["target"]: row for row in evidence.tables["probes"]}
    assert (rows["broker-api"]["reached"], rows["broker-api"]["why"]) == (True, "HTTP 200")
    assert rows["broker-api"]["check"] == "tcp connect, HTTP HEAD"
    assert (rows["broker-backup"]["reached"], rows["broker-backup"]["why"]) == (False, "HTTP 503")
    assert rows["market-feed"]["why"] == "connection refused"
    assert not rows["hung-broker"]["reached"]  # the connect is accepted, the HEAD never answered
    assert rows["hung-broker"]["why"] in ("timed out", "timed out (no answer within 3 s)")
    assert evidence.status is Status.FAILED
    assert evidence.summary.startswith("1/4 probes reached their target; ")
    assert "broker-backup from responder: HTTP 503" in evidence.summary
    assert "market-feed from responder: connection refused" in evidence.summary


# The reserved top-level domain `.invalid` never resolves (RFC 6761): the lookup is real.
UNRESOLVED = "signal-generator.eafix.invalid"


def test_service_failures_validate_service_discovery_a_name_that_does_not_resolve_is_named(
    answering: HealthServer,
) -> None:
    healthy = Service("risk-manager", f"{answering.base_url}/healthz")
    lost = Service("signal-generator", f"http://{UNRESOLVED}:8083/healthz")
    health = service_health.collect(
        Target((healthy, lost)), CollectorContext(redis_url="", timeout_seconds=5)
    )
    rows = {row["service"]: row for row in health.tables["services"]}
    assert rows["risk-manager"]["health"] == "ok"
    assert rows["signal-generator"]["health"] == "unreachable"
    # Either of the resolver's two answers for a name it cannot resolve, never a bare type.
    assert rows["signal-generator"]["error"] in (
        "cannot connect: name or service not known",
        "cannot connect: temporary failure in name resolution",
    )
    assert health.status is Status.FAILED
    assert (
        health.summary
        == f"1/2 services healthy; signal-generator {rows['signal-generator']['error']}"
    )
    # The network check's own probe of a dependency whose name does not resolve says so too.
    dependency = Dependency("broker-api", UNRESOLVED, 443, f"https://{UNRESOLVED}/")
    ctx = CollectorContext(
        redis_url="", timeout_seconds=5, diagnostics=Diagnostics(NetworkCheck((dependency,), 2.0))
    )
    [row] = network.collect(Target(()), ctx).tables["probes"]
    assert (row["target"], row["reached"], row["why"]) == ("broker-api", False, "host not found")


@pytest.fixture
def engine() -> Iterator[FakeDockerEngine]:
    containers = [FakeContainer(name) for name in SERVICES]
    engine = FakeDockerEngine(containers).start()
    engine.exec_handler = host_network_exec
    yield engine
    engine.stop()


def test_network_connectivity_docker_exec_container_ping_and_curl_from_inside_the_container(
    engine: FakeDockerEngine, answering: HealthServer, closed_port: int
) -> None:
    policy = builtin()
    catalog = {
        name: Service(name, f"http://127.0.0.1:{8000 + i}/healthz", depends_on=s.depends_on)
        for i, (name, s) in enumerate(policy.catalog.items())
    }
    catalog["signal-generator"] = Service(
        "signal-generator", "http://no-such-host.invalid:8083/healthz",
        depends_on=("indicator-engine",),
    )  # fmt: skip
    dependencies = (
        Dependency("broker-api", "127.0.0.1", _port(answering), f"{answering.base_url}/broker/"),
        Dependency("market-feed", "127.0.0.1", closed_port),
    )
    ctx = CollectorContext(
        redis_url="", timeout_seconds=5, docker_url=engine.url, compose_project="eafix",
        diagnostics=Diagnostics(NetworkCheck(dependencies, 2.0, ("execution-engine",))),
    )  # fmt: skip
    # The alert names the risk manager; a label's text is nowhere below, only catalog names.
    target = Target(tuple(catalog.values()), affected=("risk-manager",))
    evidence = network.collect(target, ctx)
    inside = [row for row in evidence.tables["probes"] if row["from"] == "risk-manager container"]
    assert [(r["target"], r["reached"], r["why"]) for r in inside] == [
        ("signal-generator", False, "exit 2: ping error (host not found?)"),
        ("broker-api", True, "HTTP 200"),
        ("market-feed", False, "exit 1"),
    ]
    # Run at once, so in any order: these three argument lists, nothing else.
    assert sorted(engine.executed()) == [
        ["curl", "-sS", "-I", "-o", "/dev/stdout", "-m", "2", f"{answering.base_url}/broker/"],
        ["nc", "-z", "-w", "2", "127.0.0.1", str(closed_port)],
        ["ping", "-c", "1", "-W", "2", "no-such-host.invalid"],
    ]
    # A container that is not running refuses the exec; the row says so.
    engine.set_state("risk-manager", "exited", 1)
    again = network.collect(target, ctx)
    refused = [row for row in again.tables["probes"] if row["from"] == "risk-manager container"]
    assert refused and all("is not running" in row["why"] for row in refused)


def test_a_slim_image_without_the_tools_says_so_per_probe(engine: FakeDockerEngine) -> None:
    engine.exec_handler = lambda container, argv: (
        127, f'exec: "{argv[0]}": executable file not found in $PATH\n'
    )  # fmt: skip
    service = Service("execution-engine", "http://127.0.0.1:1/healthz", depends_on=())
    dependency = Dependency("broker-api", "127.0.0.1", 1, "http://127.0.0.1:1/")
    ctx = CollectorContext(
        redis_url="", docker_url=engine.url, compose_project="eafix",
        diagnostics=Diagnostics(NetworkCheck((dependency,), 1.0, ("execution-engine",))),
    )  # fmt: skip
    evidence = network.collect(Target((service,)), ctx)
    inside = [r for r in evidence.tables["probes"] if r["from"] == "execution-engine container"]
    assert [r["why"] for r in inside] == ["curl is not runnable in the container (exit 127)"]


# --- Prometheus: queue depths, latency between services, the latency test -------------------------


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two simulated EAFIXes, `slow` with the signal-latency scenario, scraped every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is not installed (Debian package prometheus); `make test` does")
    slow, fast = Simulator(tick_seconds=0.1).start(), Simulator(tick_seconds=0.1).start()
    slow.inject("signal-latency")
    folder = tmp_path_factory.mktemp("prometheus-diagnostics")
    address = f"127.0.0.1:{free_port()}"
    jobs = [
        {"job_name": f"{world}-{name}", "static_configs": [{"targets": [
            sim.url(name).removeprefix("http://")]}], "relabel_configs": [
            {"target_label": "world", "replacement": world}]}
        for world, sim in (("slow", slow), ("fast", fast)) for name in SERVICES
    ]  # fmt: skip
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--web.listen-address={address}", f"--storage.tsdb.path={folder / 'data'}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    url = f"http://{address}"

    def rated() -> bool:  # two scrapes of every world: rate() has its two samples
        try:
            answer = requests.get(
                f"{url}/api/v1/query",
                params={"query": "count(rate(eafix_edge_latency_seconds_count[1m]) > 0)"},
                timeout=2,
            ).json()
        except requests.RequestException:
            return False
        result = answer.get("data", {}).get("result", [])
        return bool(result) and float(result[0]["value"][1]) >= 8

    try:
        wait_for(rated, timeout=180, what="Prometheus to scrape both simulated worlds twice")
        yield {"url": url, "slow": slow, "fast": fast}
    finally:
        process.terminate()
        process.wait(timeout=10)
        slow.stop()
        fast.stop()


def _in_world(world: str) -> Diagnostics:
    """The built-in queries, each narrowed to one simulated world."""
    queues = f'max by (service) (eafix_queue_depth{{world="{world}"}})'
    edges = (
        "histogram_quantile(0.99, sum by (le, upstream, service) "
        f'(rate(eafix_edge_latency_seconds_bucket{{world="{world}"}}[1m])))'
    )
    default = Diagnostics()
    return Diagnostics(
        queue_depth=default.queue_depth.__class__(queues, 100.0, default.queue_depth.runbook),
        edge_latency=default.edge_latency.__class__(edges, 1.0, default.edge_latency.runbook),
    )


def test_root_cause_analysis_names_the_deep_queue_and_the_slow_edge(
    prometheus: dict[str, Any],
) -> None:
    target = Target(tuple(builtin().catalog.values()))
    ctx = CollectorContext(
        redis_url="", timeout_seconds=5, prometheus_url=prometheus["url"],
        diagnostics=_in_world("slow"),
    )  # fmt: skip
    evidence = performance.collect(target, ctx)
    assert evidence.status is Status.FAILED, evidence.summary
    assert "deep queues (over 100): signal-generator 2" in evidence.summary  # 240-260
    assert "slow edges (p99 over 1 s): indicator-engine -> signal-generator p99 " in (
        evidence.summary
    )
    edges = {row["name"]: row for row in evidence.tables["edges"]}
    assert edges["indicator-engine -> signal-generator"]["state"] == "over"
    assert edges["data-ingestor -> indicator-engine"]["state"] == "ok"
    # The gateway's edges (risk-manager, execution-engine) are in the topology, not measured.
    assert edges["risk-manager -> gui-gateway"]["state"] == "no data"

    healthy = performance.collect(
        target, CollectorContext(**{**ctx.__dict__, "diagnostics": _in_world("fast")})
    )
    assert healthy.status is Status.OK, healthy.summary
    assert healthy.summary.startswith("queues: none over 100 (6 of 6 measured); edges: none over")


def _p99(world: str) -> str:
    return (
        "histogram_quantile(0.99, sum by (le) "
        f'(rate(eafix_signal_latency_seconds_bucket{{world="{world}"}}[1m])))'
    )


@pytest.mark.parametrize(
    ("query", "result", "says"),
    [
        (_p99("fast"), "passed", "< 1 s"),
        (_p99("slow"), "failed", "not under 1 s"),
        ('histogram_quantile(0.99, rate(eafix_never_seen_bucket[1m]))', "no data",
         "no data: "),
    ],
    ids=["fixed: under the threshold", "still slow", "nothing measured"],
)  # fmt: skip
def test_validation_4_performance_test_through_the_validate_action(
    prometheus: dict[str, Any], redis_url: str, query: str, result: str, says: str
) -> None:
    rt = Runtime(
        settings_from_env(
            {"RESPONDER_REDIS_URL": redis_url, "RESPONDER_PROMETHEUS_URL": prometheus["url"]}
        )
    )
    answer, checks = run_validation(rt, Validation(latency=LatencyTest(query, 1.0)))
    [check] = checks
    assert check["check"] == "performance: p99 latency under 1 s"
    assert check["result"] == result and check["passed"] is (result == "passed")
    assert says in check["last"]
    assert answer.ran == "validation: the p99 latency test"
    if result != "no data":
        assert isinstance(check["measured"], float)  # the value is said, not only the verdict
        assert f"p99 {check['measured']:.3g} s" in check["last"]
