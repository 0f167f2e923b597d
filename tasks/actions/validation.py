"""The `validate` action: the runbook's Validation as checks, each a line in its note.

Every catalog service's health (the `http` collector), the trading flow test (the `flow`
collector: the catalog's test tick, then the signal it makes) and the contract checks the
policy lists (a GET on a catalog service, its JSON judged by `triage.actions`), and the
performance test (Validation 4: the p99 latency Prometheus measures, under the policy's
threshold; no data is said, never passed). Checks only:
nothing but the runbook's own test tick is sent, and every URL comes from the policy.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from collectors.contract import Status, Target
from collectors.performance import measure
from collectors.registry import run_collector
from tasks.actions.execute import Answer
from tasks.evidence.collect import collector_context
from tasks.runtime import Runtime
from triage.actions import contract_problem, describe_contract
from triage.diagnostics import LatencyTest, judge_latency
from triage.policy import ContractCheck, Validation, service_endpoint

READ_TIMEOUT_SECONDS = 5.0  # one contract check's GET


def run_validation(rt: Runtime, validation: Validation) -> tuple[Answer, list[dict[str, Any]]]:
    """Run every check of a validation at once; return the summary and each check's result."""
    started = time.monotonic()
    target = Target(services=tuple(rt.policy.catalog.values()), alert_name="validation")
    ctx = collector_context(rt)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="validate") as pool:
        health = pool.submit(run_collector, "http", target, ctx) if validation.health else None
        flow = pool.submit(run_collector, "flow", target, ctx) if validation.flow else None
        latency = pool.submit(_latency, rt, validation.latency) if validation.latency else None
        contracts = list(pool.map(lambda c: _contract(rt, c), validation.contracts))
    checks: list[dict[str, Any]] = []
    if health is not None:
        checks += _health_checks(health.result())
    if flow is not None:
        evidence = flow.result()
        checks.append(
            _check(
                "trading flow: a simulated tick makes a signal",
                evidence.status is Status.OK,
                evidence.duration_seconds,
                evidence.summary if evidence.status is not Status.SKIPPED
                else f"not run: {evidence.summary}",
            )
        )  # fmt: skip
    checks += contracts
    if latency is not None:
        checks.append(latency.result())
    checks = [{**c, "last": rt.redact(c["last"])} for c in checks]
    passed = sum(c["passed"] for c in checks)
    what = ", ".join(
        part
        for part in (
            "health of every catalog service" if validation.health else "",
            "the trading flow test" if validation.flow else "",
            f"{len(validation.contracts)} contract checks" if validation.contracts else "",
            "the p99 latency test" if validation.latency else "",
        )
        if part
    )
    answer = f"{passed} of {len(checks)} checks passed"
    return Answer(True, f"validation: {what}", answer, time.monotonic() - started), checks


def _health_checks(evidence: Any) -> list[dict[str, Any]]:
    """Return one check per catalog service the health collector read."""
    rows = evidence.tables.get("services") or []
    if not rows:  # the collector failed as a whole: one line saying why
        return [_check("health of every catalog service", False, evidence.duration_seconds,
                       evidence.summary)]  # fmt: skip
    return [
        _check(
            f"health {row['service']}",
            row["health"] == "ok",
            row["latency_ms"] / 1000,
            row["health"] if not row["error"] else f"{row['health']}: {row['error']}",
        )
        for row in rows
    ]


def _contract(rt: Runtime, contract: ContractCheck) -> dict[str, Any]:
    """GET a contract check's path on its catalog service and judge the answer."""
    started = time.monotonic()
    url = service_endpoint(rt.policy.catalog[contract.service], contract.get)
    status: int | None = None
    body: Any = None
    try:
        response = requests.get(url, timeout=READ_TIMEOUT_SECONDS, allow_redirects=False)
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
    except requests.RequestException:
        status = None
    problem = contract_problem(contract, status, body)
    last = problem or f"HTTP {status}, as expected"
    return _check(describe_contract(contract), not problem, time.monotonic() - started, last)


def _latency(rt: Runtime, test: LatencyTest) -> dict[str, Any]:
    """Measure the p99 latency now and judge it against the policy's threshold."""
    started = time.monotonic()
    measured, why = measure(rt.settings.prometheus_url, test.query, READ_TIMEOUT_SECONDS)
    verdict = judge_latency(measured, test.p99_under_seconds, why)
    check = _check(
        f"performance: p99 latency under {test.p99_under_seconds:g} s",
        verdict.passed,
        time.monotonic() - started,
        verdict.line,
    )
    return {**check, "result": verdict.result, "measured": verdict.measured}


def _check(name: str, passed: bool, seconds: float, last: str) -> dict[str, Any]:
    # `result` has a third value, "no data" (the latency test measured nothing): not a pass.
    return {"check": name, "passed": bool(passed), "seconds": round(seconds, 3), "last": last,
            "result": "passed" if passed else "failed"}  # fmt: skip
