"""The `http` collector: health endpoints that answer, that refuse, that hang (`responses`)."""

from __future__ import annotations

import requests
import responses

from collectors.contract import CollectorContext, Status, Target
from collectors.service_health import collect, health_of, summarise
from triage.policy import Service


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


@responses.activate
def test_live_and_dead_services() -> None:
    responses.get("http://up:8080/healthz", json={"status": "ok"})
    refused = requests.ConnectionError("[Errno 111] Connection refused")
    responses.get("http://dead:8081/healthz", body=refused)
    target = Target(
        services=(
            Service("up", "http://up:8080/healthz"),
            Service("dead", "http://dead:8081/healthz"),
        )
    )
    evidence = collect(target, CollectorContext(redis_url="", timeout_seconds=2))
    assert evidence.status is Status.FAILED
    assert evidence.summary == "1/2 services healthy; dead cannot connect: connection refused"
    rows = {row["service"]: row for row in evidence.tables["services"]}
    assert rows["up"]["http_status"] == 200 and rows["up"]["health"] == "ok"
    assert rows["dead"]["http_status"] is None
    assert "http/health.json" in evidence.files


@responses.activate
def test_a_service_that_does_not_answer_in_time_is_a_timeout() -> None:
    responses.get("http://slow:8082/healthz", body=requests.ReadTimeout("read timed out"))
    target = Target(services=(Service("slow", "http://slow:8082/healthz"),))
    evidence = collect(target, CollectorContext(redis_url="", timeout_seconds=2))
    assert evidence.status is Status.TIMEOUT
    assert evidence.summary == "0/1 services healthy; slow no answer within 2s"


def test_no_services_is_skipped_with_the_reason() -> None:
    evidence = collect(Target(services=()), CollectorContext(redis_url=""))
    assert (evidence.status, evidence.summary) == (Status.SKIPPED, "no catalog service selected")
