"""The `http` collector against live local endpoints and dead ones."""

from __future__ import annotations

import socket

from collectors.contract import CollectorContext, Status, Target
from collectors.service_health import collect, health_of, summarise
from triage.policy import Service


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_summary_groups_services_by_problem() -> None:
    rows = [
        {"service": "a", "health": "ok", "error": ""},
        {"service": "b", "health": "unreachable", "error": "cannot connect: connection refused"},
        {"service": "c", "health": "unreachable", "error": "cannot connect: connection refused"},
        {"service": "d", "health": "degraded", "error": ""},
    ]
    assert summarise(rows) == (
        "1/4 services healthy; b, c cannot connect: connection refused; d degraded"
    )


def test_health_comes_from_the_body_then_the_status_code() -> None:
    assert health_of(200, '{"status": "OK"}') == "ok"
    assert health_of(503, '{"status": "down"}') == "down"
    assert health_of(200, "plain text") == "ok"
    assert health_of(500, "") == "http 500"


def test_live_and_dead_services(health_server) -> None:
    port = closed_port()
    target = Target(
        services=(
            Service("up", f"{health_server.base_url}/up/healthz"),
            Service("dead", f"http://127.0.0.1:{port}/healthz"),
        )
    )
    evidence = collect(target, CollectorContext(redis_url="", timeout_seconds=2))
    assert evidence.status is Status.FAILED
    assert evidence.summary == "1/2 services healthy; dead cannot connect: connection refused"
    rows = {row["service"]: row for row in evidence.tables["services"]}
    assert rows["up"]["http_status"] == 200 and rows["up"]["health"] == "ok"
    assert rows["dead"]["http_status"] is None
    assert "http/health.json" in evidence.files


def test_no_services_is_skipped_with_the_reason() -> None:
    evidence = collect(Target(services=()), CollectorContext(redis_url=""))
    assert (evidence.status, evidence.summary) == (Status.SKIPPED, "no catalog service selected")
