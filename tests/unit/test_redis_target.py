"""Initial Diagnosis 6, "Check Redis connectivity": EAFIX's Redis, never the responder's own."""

from __future__ import annotations

import pytest

from collectors.contract import Status, Target
from collectors.registry import run_collector
from tasks.evidence.collect import collector_context
from tasks.runtime import Runtime
from tasks.settings import settings_from_env

NOT_CONFIGURED = (
    "no EAFIX Redis configured (RESPONDER_TARGET_REDIS_URL); the responder's own Redis is not "
    "checked in its place"
)
# Nothing listens on port 1 of the loopback: a refused connection, no server needed.
CLOSED = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("environ", "status", "summary"),
    [
        ({}, Status.SKIPPED, NOT_CONFIGURED),
        # The responder's own Redis answers; that says nothing about EAFIX's.
        ({"RESPONDER_REDIS_URL": "redis://127.0.0.1:6379/0"}, Status.SKIPPED, NOT_CONFIGURED),
        ({"RESPONDER_TARGET_REDIS_URL": CLOSED}, Status.FAILED, "Redis unreachable: "),
        (
            {"RESPONDER_TARGET_REDIS_URL": CLOSED, "RESPONDER_REDIS_URL": "redis://x:6379/0"},
            Status.FAILED,
            "Redis unreachable: ",
        ),
    ],
    ids=["nothing set", "only our own Redis", "EAFIX's Redis", "both: EAFIX's is checked"],
)
def test_6_check_redis_connectivity_looks_at_eafix_redis(
    environ: dict[str, str], status: Status, summary: str
) -> None:
    ctx = collector_context(Runtime(settings_from_env(environ)))
    evidence = run_collector("redis", Target(()), ctx)
    assert evidence.status is status
    assert evidence.summary.startswith(summary), evidence.summary
