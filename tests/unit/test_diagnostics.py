"""The runbook's missing diagnostics, each test named after the line it encodes: Network/
Connectivity (`docker exec <container> ping`, `curl -I` the broker), Root Cause Analysis 3 and 4
(queue depths, latency between services) and Validation 4 (the performance test). No network:
connects are injected, HTTP is `responses`."""

from __future__ import annotations

import math
from typing import Any

import pytest
import requests
import responses
import yaml

from collectors import network, performance
from collectors.contract import CollectorContext, Status, Target
from triage.diagnostics import (
    DEFAULT_P99_UNDER_SECONDS,
    Dependency,
    Diagnostics,
    NetworkCheck,
    SeriesQuery,
    exec_outcome,
    judge_latency,
    judge_series,
    topology_edges,
)
from triage.policy import PolicyError, Service, builtin, builtin_text, load

BROKER = Dependency(
    "broker-api", "api.external-broker.com", 443, "https://api.external-broker.com/"
)
DB = Dependency("postgres", "postgres", 5432)
PROM = "http://prometheus:9090"


def _connect(outcome: type[BaseException] | None) -> Any:
    class Socket:
        def close(self) -> None:
            pass

    def connect(address: tuple[str, int], timeout: float) -> Socket:
        assert address in (("api.external-broker.com", 443), ("postgres", 5432))
        assert timeout == 2.0  # the policy's bound, passed on
        if outcome is not None:
            raise outcome("no")
        return Socket()

    return connect


# --- Network/Connectivity: curl -I https://api.external-broker.com/ ---------------------------

# dependency, what the connect does, what the HEAD answers, reached, why
CURL_I_CASES: list[tuple[str, Dependency, type[BaseException] | None, Any, bool, str]] = [
    ("the broker answers 200", BROKER, None, 200, True, "HTTP 200"),
    ("the broker refuses HEAD by design (405): it answered", BROKER, None, 405, True, "HTTP 405"),
    ("the broker answers 503", BROKER, None, 503, False, "HTTP 503"),
    ("the broker's port refuses the connection", BROKER, ConnectionRefusedError, None, False,
     "connection refused"),
    ("the broker's port never answers", BROKER, TimeoutError, None, False, "timed out"),
    ("the HEAD hangs after the connect", BROKER, None, requests.ReadTimeout, False, "timed out"),
    ("the database's port accepts a TCP connect", DB, None, None, True, "connected"),
    ("the database's port refuses", DB, ConnectionRefusedError, None, False, "connection refused"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "dependency", "connect", "head", "reached", "why"),
    CURL_I_CASES,
    ids=[c[0] for c in CURL_I_CASES],
)
@responses.activate
def test_network_connectivity_curl_i_the_external_broker(
    case: str, dependency: Dependency, connect: Any, head: Any, reached: bool, why: str
) -> None:
    if head is not None:
        body = head("hung") if isinstance(head, type) else None
        responses.head(dependency.url, status=head if isinstance(head, int) else 200, body=body)
    row = network.probe_dependency(dependency, 2.0, connect=_connect(connect))
    assert (row["reached"], row["why"]) == (reached, why)
    assert row["from"] == "responder" and row["target"] == dependency.name
    # Only the listed address was contacted, and no redirect was followed.
    assert [c.request.url for c in responses.calls] == ([dependency.url] if head else [])


@responses.activate
def test_a_redirect_from_the_broker_is_reported_not_followed() -> None:
    responses.head(BROKER.url, status=302, headers={"Location": "http://elsewhere.example/"})
    row = network.probe_dependency(BROKER, 2.0, connect=_connect(None))
    assert row["reached"] and row["why"] == "HTTP 302"
    assert len(responses.calls) == 1


# --- Network/Connectivity: docker exec <container> ping <target-container> ----------------------

# exit code, output, program, reached, why
EXEC_CASES: list[tuple[str, int | None, str, str, bool, str]] = [
    ("ping gets its reply", 0, "1 packets transmitted, 1 received\nrtt min/avg/max = 1/1/1 ms\n",
     "ping", True, "rtt min/avg/max = 1/1/1 ms"),
    ("ping gets no reply", 1, "1 packets transmitted, 0 received\n", "ping", False,
     "exit 1: no reply"),
    ("ping cannot resolve the container", 2, "ping: x: Name or service not known", "ping", False,
     "exit 2: ping error (host not found?)"),
    ("the image has no ping", 127, 'exec: "ping": executable file not found in $PATH', "ping",
     False, "ping is not runnable in the container (exit 127)"),
    ("curl -I inside sees 200", 0, "HTTP/2 200\r\nserver: x\r\n", "curl", True, "HTTP 200"),
    ("curl -I inside sees 502", 0, "HTTP/1.1 502 Bad Gateway\r\n", "curl", False, "HTTP 502"),
    ("curl inside is refused", 7, "curl: (7) Failed to connect", "curl", False,
     "exit 7: connection refused"),
    ("curl inside times out", 28, "curl: (28) timed out", "curl", False, "exit 28: timed out"),
    ("nc -z inside connects", 0, "", "nc", True, "exit 0"),
    ("the exec never finished", None, "", "nc", False, "did not finish"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "exit_code", "output", "program", "reached", "why"),
    EXEC_CASES,
    ids=[c[0] for c in EXEC_CASES],
)
def test_network_connectivity_docker_exec_container_ping_target_container(
    case: str, exit_code: int | None, output: str, program: str, reached: bool, why: str
) -> None:
    assert exec_outcome(exit_code, output, program) == (reached, why)


def test_the_commands_run_in_containers_are_fixed_and_name_only_catalog_and_policy_hosts() -> None:
    policy = builtin()
    target = Target(tuple(policy.catalog.values()), affected=("risk-manager",))
    deps = policy.diagnostics.network.dependencies
    probes = network.container_probes(target, deps, ("execution-engine",), 3.0)
    assert {p.container_service for p in probes} == {"risk-manager"}  # the alert's service
    assert [p.argv for p in probes] == [
        ("ping", "-c", "1", "-W", "3", "signal-generator"),  # its upstream, by catalog host
        ("curl", "-sS", "-I", "-o", "/dev/stdout", "-m", "3", "https://api.external-broker.com/"),
        ("nc", "-z", "-w", "3", "postgres", "5432"),
        ("nc", "-z", "-w", "3", "redis", "6379"),
    ]
    # An alert naming no catalog service: the policy's containers probe.
    fallback = network.container_probes(Target(target.services), deps, ("execution-engine",), 3.0)
    assert {p.container_service for p in fallback} == {"execution-engine"}


def test_a_hung_probe_becomes_a_timed_out_row_within_the_bound() -> None:
    import threading

    release = threading.Event()

    def hung() -> dict[str, Any]:
        release.wait(30)
        return {"reached": True}

    try:
        rows = network.bounded(
            [hung, lambda: {"from": "responder", "reached": True, "why": "connected"}],
            [{"from": "responder", "target": "slow", "reached": False, "why": ""}, {}],
            0.2,
        )
    finally:
        release.set()
    assert rows[0] == {"from": "responder", "target": "slow", "reached": False,
                       "why": "timed out (no answer within 0.2 s)"}  # fmt: skip
    assert rows[1]["reached"]


def test_without_dependencies_or_containers_the_network_check_says_it_is_skipped() -> None:
    ctx = CollectorContext(redis_url="", diagnostics=Diagnostics(network=NetworkCheck()))
    evidence = network.collect(Target(()), ctx)
    assert evidence.status is Status.SKIPPED and "no external dependencies" in evidence.summary


def test_probes_from_containers_without_a_docker_engine_say_so_and_responder_probes_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        network, "probe_dependency",
        lambda d, t: {"from": "responder", "target": d.name, "address": d.address,
                      "check": "tcp connect", "reached": d.name == "postgres",
                      "why": "connected" if d.name == "postgres" else "connection refused"},
    )  # fmt: skip
    service = Service("execution-engine", "http://execution-engine:8085/healthz")
    ctx = CollectorContext(
        redis_url="",
        diagnostics=Diagnostics(network=NetworkCheck((BROKER, DB), 3.0, ("execution-engine",))),
    )
    evidence = network.collect(Target((service,)), ctx)
    assert evidence.status is Status.FAILED
    assert evidence.summary == (
        "1/2 probes reached their target; broker-api from responder: connection refused; "
        "no probes from containers: no Docker engine configured (RESPONDER_DOCKER_URL)"
    )


# --- Root Cause Analysis 3 and 4: queue depths, latency between services ------------------------

SERVICES = (
    Service("data-ingestor", "http://data-ingestor:8081/healthz"),
    Service("indicator-engine", "http://i:8082/healthz", depends_on=("data-ingestor",)),
    Service("signal-generator", "http://s:8083/healthz", depends_on=("indicator-engine",)),
)
EDGES = ["data-ingestor -> indicator-engine", "indicator-engine -> signal-generator"]


def _vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": labels, "value": [1.7e9, value]} for labels, value in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _answer(queues: dict[str, Any], edges: dict[str, Any]) -> Any:
    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        import json
        from urllib.parse import parse_qs, urlsplit

        query = (
            parse_qs(urlsplit(request.url).query).get("query") or parse_qs(request.body)["query"]
        )
        body = queues if "queue" in query[0] else edges
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    return callback


# queues vector, edges vector, status, summary
RCA_CASES: list[tuple[str, dict[str, Any], dict[str, Any], Status, str]] = [
    ("review message queue depths: one is deep",
     _vector(({"service": "signal-generator"}, "250"), ({"service": "data-ingestor"}, "2")),
     _vector(({"upstream": "data-ingestor", "service": "indicator-engine"}, "0.01"),
             ({"upstream": "indicator-engine", "service": "signal-generator"}, "0.02")),
     Status.FAILED,
     "deep queues (over 100): signal-generator 250; edges: none over 1 s (2 of 2 measured)"),
    ("check network latency between services: one edge is slow",
     _vector(({"service": "signal-generator"}, "3"),),
     _vector(({"upstream": "data-ingestor", "service": "indicator-engine"}, "0.01"),
             ({"upstream": "indicator-engine", "service": "signal-generator"}, "7.1"),
             ({"upstream": "nowhere", "service": "indicator-engine"}, "99")),
     Status.FAILED,
     "queues: none over 100 (1 of 3 measured); slow edges (p99 over 1 s): "
     "indicator-engine -> signal-generator p99 7.1 s"),
    ("nothing measured is no data, never fine",
     _vector(), _vector(({"upstream": "data-ingestor", "service": "indicator-engine"}, "NaN"),),
     Status.OK, "queues: no data for any of 3; edges: no data for any of 2"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "queues", "edges", "status", "summary"), RCA_CASES, ids=[c[0] for c in RCA_CASES]
)
@responses.activate
def test_root_cause_analysis_review_queue_depths_and_latency_between_services(
    case: str, queues: dict[str, Any], edges: dict[str, Any], status: Status, summary: str
) -> None:
    for method in (responses.GET, responses.POST):
        responses.add_callback(method, f"{PROM}/api/v1/query", callback=_answer(queues, edges))
    ctx = CollectorContext(redis_url="", timeout_seconds=1, prometheus_url=PROM)
    evidence = performance.collect(Target(SERVICES), ctx)
    assert (evidence.status, evidence.summary) == (status, summary)
    assert [r["name"] for r in evidence.tables["edges"]] == EDGES  # topology edges only
    assert [r["name"] for r in evidence.tables["queues"]] == [s.name for s in SERVICES]


@responses.activate
def test_an_unreachable_prometheus_fails_the_queue_and_latency_check_saying_why() -> None:
    responses.get(f"{PROM}/api/v1/query", body=requests.ConnectionError("Connection refused"))
    ctx = CollectorContext(redis_url="", timeout_seconds=1, prometheus_url=PROM)
    evidence = performance.collect(Target(SERVICES), ctx)
    assert evidence.status is Status.FAILED
    assert evidence.summary == "Prometheus unreachable: connection refused"


def test_without_prometheus_the_queue_and_latency_check_is_skipped() -> None:
    evidence = performance.collect(Target(SERVICES), CollectorContext(redis_url=""))
    assert evidence.status is Status.SKIPPED


def test_judged_rows_say_no_data_for_what_was_not_measured() -> None:
    rows = judge_series(["a", "b", "c"], {"a": 5.0, "b": math.nan}, 4.0, "")
    assert [(r["name"], r["state"], r["shown"]) for r in rows] == [
        ("a", "over", "5"), ("b", "no data", "no data"), ("c", "no data", "no data"),
    ]  # fmt: skip
    assert topology_edges({"b": ("a",), "c": ("a", "b")}) == [("a", "b"), ("a", "c"), ("b", "c")]


# --- Validation 4: Performance test (latency-test.py) ---------------------------------------------

# measured p99, threshold, result, the line
LATENCY_CASES: list[tuple[str, float | None, float, str, str]] = [
    ("well under the threshold passes", 0.25, 1.0, "passed", "p99 0.25 s < 1 s"),
    ("at the threshold is not under it", 1.0, 1.0, "failed", "p99 1 s, not under 1 s"),
    ("the 7 s of the incident still there fails", 7.2, 1.0, "failed", "p99 7.2 s, not under 1 s"),
    ("no series is no data, not passed", None, 1.0, "no data",
     "no data: Prometheus returned no series for the query; threshold 1 s"),
    ("NaN (no observations) is no data, not passed", math.nan, 1.0, "no data",
     "no data: Prometheus returned no series for the query; threshold 1 s"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "measured", "under", "result", "line"),
    LATENCY_CASES,
    ids=[c[0] for c in LATENCY_CASES],
)
def test_validation_4_performance_test_p99_latency_under_the_threshold(
    case: str, measured: float | None, under: float, result: str, line: str
) -> None:
    verdict = judge_latency(measured, under)
    assert (verdict.result, verdict.line) == (result, line)
    assert verdict.passed is (result == "passed")


@pytest.mark.parametrize(
    ("case", "answer", "measured", "why"),
    [
        ("one series", _vector(({}, "0.18"),), 0.18, ""),
        ("no observations yet", _vector(({}, "NaN"),), None,
         "Prometheus has no samples for the query"),
        ("no series", _vector(), None, ""),
    ],
)  # fmt: skip
@responses.activate
def test_the_latency_test_measures_the_p99_prometheus_answers(
    case: str, answer: dict[str, Any], measured: float | None, why: str
) -> None:
    for method in (responses.GET, responses.POST):
        responses.add(method, f"{PROM}/api/v1/query", json=answer)
    assert performance.measure(PROM, "p99", 1) == (measured, why)


def test_the_latency_test_without_prometheus_is_no_data_saying_why() -> None:
    measured, why = performance.measure("", "p99", 1)
    verdict = judge_latency(measured, DEFAULT_P99_UNDER_SECONDS, why)
    assert verdict.result == "no data" and "no Prometheus configured" in verdict.line


# --- the policy --------------------------------------------------------------------------------


def test_the_built_in_policy_names_the_runbook_lines_and_defaults() -> None:
    policy = builtin()
    diagnostics = policy.diagnostics
    names = [d.name for d in diagnostics.network.dependencies]
    assert names == ["broker-api", "postgres", "redis"]
    assert diagnostics.network.dependencies[0].runbook == (
        "Network/Connectivity: curl -I https://api.external-broker.com/"
    )
    assert "Review message queue depths" in diagnostics.queue_depth.runbook
    assert "Check network latency between services" in diagnostics.edge_latency.runbook
    latency = policy.actions.catalog["validate"].validation.latency  # type: ignore[union-attr]
    assert latency is not None and latency.p99_under_seconds == 1.0
    assert "Validation 4" in latency.runbook
    for priority in ("P0", "P1"):
        assert {"network", "performance"} <= set(policy.plan[priority])  # type: ignore[index]


def _with(diagnostics: dict[str, Any] | None, latency: Any = None) -> str:
    raw = yaml.safe_load(builtin_text())
    if diagnostics is None:
        raw.pop("diagnostics")
    else:
        raw["diagnostics"] = diagnostics
    for action in raw["actions"]["catalog"]:
        if action["name"] == "validate":
            if latency is None:
                action["validation"].pop("latency")
            else:
                action["validation"]["latency"] = latency
    return yaml.safe_dump(raw, sort_keys=False)


def test_without_the_section_every_diagnostic_takes_its_default() -> None:
    policy = load(_with(None, latency=True))
    assert policy.diagnostics == Diagnostics()
    assert policy.diagnostics.queue_depth == SeriesQuery(
        "max by (service) (eafix_queue_depth)", 100.0,
        "Root Cause Analysis, Performance Issues 3: Review message queue depths",
    )  # fmt: skip
    validation = policy.actions.catalog["validate"].validation
    assert validation is not None and validation.latency is not None
    assert validation.latency.p99_under_seconds == DEFAULT_P99_UNDER_SECONDS
    assert load(_with(None)).actions.catalog["validate"].validation.latency is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("diagnostics", "latency", "message"),
    [
        ({"external_dependencies": [{"name": "x", "url": "ftp://x/"}]}, None,
         "diagnostics.external_dependencies[0].url"),
        ({"external_dependencies": [{"name": "x"}]}, None, "diagnostics.external_dependencies[0]"),
        ({"external_dependencies": [{"name": "x", "tcp": "a:1"}, {"name": "x", "tcp": "b:2"}]},
         None, "duplicate dependency 'x'"),
        ({"network": {"from_containers": ["nosuch"]}}, None, "'nosuch' is not a catalog service"),
        ({"edge_latency": {"slow_above": "fast"}}, None, "diagnostics.edge_latency.slow_above"),
        ({}, {"p99_under": -1}, "validation.latency"),
    ],
)  # fmt: skip
def test_a_bad_diagnostics_section_is_named_by_field(
    diagnostics: dict[str, Any], latency: Any, message: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        load(_with(diagnostics, latency))
    assert message in str(raised.value)


# --- how the evidence shows them ------------------------------------------------------------------


def test_the_bundle_page_tables_every_probe_queue_and_edge_with_the_findings_marked() -> None:
    import html
    import re
    from datetime import UTC, datetime
    from pathlib import Path

    from tasks.evidence.bundle import manifest_entry
    from tasks.notes.voice import Voice

    rows = [
        {"from": "responder", "target": "broker-api", "address": "api.external-broker.com:443",
         "check": "tcp connect", "reached": False, "why": "timed out"},
        {"from": "risk-manager container", "target": "signal-generator",
         "address": "signal-generator", "check": "ping (docker exec)", "reached": True,
         "why": "rtt 0.1 ms"},
    ]  # fmt: skip
    probes = network.Evidence("network", Status.FAILED, network.summarise(rows), {"probes": rows})
    queues = judge_series(["signal-generator"], {"signal-generator": 250.0}, 100.0, "")
    edges = judge_series(["a -> b"], {"a -> b": 7.1}, 1.0, "seconds")
    for row in queues:
        row["threshold"] = 100.0
    for row in edges:
        row["threshold"] = 1.0
    rca = performance.Evidence("performance", Status.FAILED, "deep", {"queues": queues,
                                                                      "edges": edges})  # fmt: skip
    manifest = {
        "created_at": datetime(2026, 12, 7, 12, tzinfo=UTC).isoformat(),
        "title": "SignalLatencyHigh",
        "classification": {"priority": "P1", "rule": "signal-latency-over-5s", "reason": ""},
        "collectors": [manifest_entry(e, [], lambda t: t) for e in (probes, rca)],
    }
    page = Voice.of(builtin()).bundle_index(manifest, Path("/none"))
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "2 of 2 checks found problems" in text
    assert "Network connectivity" in text and "Queues and latency" in text
    assert "responder broker-api api.external-broker.com:443 tcp connect FAILED: timed out" in text
    assert "risk-manager container signal-generator signal-generator ping (docker exec) " \
           "reached: rtt 0.1 ms" in text  # fmt: skip
    assert "signal-generator 250 100" in text and "a -> b 7.1 s 1 s" in text
    failed_rows = re.findall(r'<tr class="failed"><td>([^<]*)</td>', page)
    assert failed_rows == ["responder", "signal-generator", "a -&gt; b"]
