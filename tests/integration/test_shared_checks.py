"""One check of a target shared by the incidents that ask within a window; hung targets once."""

from __future__ import annotations

import threading
from dataclasses import replace

import redis

from collectors.contract import Evidence, Status, Target
from tasks.evidence import collect
from tasks.evidence.shared_checks import SHARE_SECONDS, run_shared
from tasks.runtime import Runtime
from tasks.settings import Settings
from tests.support import HealthServer


def test_incidents_asking_at_once_share_one_health_check_of_each_service(
    settings: Settings, redis_client: redis.Redis, tmp_path
) -> None:
    # The others wait for a runner's check as long as twice the collector timeout: ample here,
    # so that a machine too busy to finish one check in the tests' 5 s is not seen as a hang.
    rt = Runtime(replace(settings, bundle_dir=tmp_path, collector_timeout_seconds=10))
    # A health server of its own: the session's also answers the session worker, which may
    # still be checking the catalog for another test's run while these four ask.
    health_server = HealthServer()
    target = Target(
        services=tuple(
            replace(service, health_url=f"{health_server.base_url}/{service.name}/healthz")
            for service in rt.policy.catalog.values()
        )
    )
    # Another test's run of this same check (a worker stopped mid-check) must not hold its
    # lock or its result into this one.
    for key in redis_client.scan_iter("responder:check:*"):
        redis_client.delete(key)
    health_server.delay["gui-gateway"] = 0.5  # slow enough for the runs to overlap
    entries: list[dict] = []
    try:
        threads = [
            threading.Thread(
                target=lambda n=n: entries.append(
                    collect.collect_into_bundle(rt, f"run-{n}", "http", target, shared=True)
                )
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        health_server.stop()
    assert len(entries) == 4 and {e["status"] for e in entries} == {"ok"}
    assert set(health_server.hits.values()) == {1}  # each service asked once, not four times
    assert all((tmp_path / f"run-{n}" / "http" / "health.json").is_file() for n in range(4))


def test_a_target_that_timed_out_is_not_waited_on_again_for_a_while(
    redis_client: redis.Redis,
) -> None:
    calls: list[int] = []

    def hung() -> Evidence:
        calls.append(1)
        return Evidence("http", Status.TIMEOUT, "6/6 services no answer within 5s")

    target = Target(services=())
    first = run_shared(redis_client, "http", target, hung, 1.0, now=lambda: 1000.0)
    # 30 s later another incident asks: the open circuit answers at once, and says how old.
    second = run_shared(redis_client, "http", target, hung, 1.0, now=lambda: 1030.0)
    assert len(calls) == 1
    assert first.status is second.status is Status.TIMEOUT
    assert second.summary.endswith("(shared check, 30 s old)")


def test_a_healthy_result_is_shared_only_briefly(redis_client: redis.Redis) -> None:
    calls: list[int] = []

    def healthy() -> Evidence:
        calls.append(1)
        return Evidence("redis", Status.OK, "PONG")

    target = Target(services=(), expression="up")
    run_shared(redis_client, "redis", target, healthy, 1.0)
    run_shared(redis_client, "redis", target, healthy, 1.0)
    assert len(calls) == 1
    [key] = [k for k in redis_client.keys("responder:check:*") if not k.endswith(b":running")]
    assert 0 < redis_client.pttl(key) <= SHARE_SECONDS * 1000  # a timeout is kept 60 s
