"""One pure decision for every failed outbound call: retry, after how long, or give up and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RETRYABLE_SERVER_ERRORS = frozenset({500, 502, 503, 504})
MAX_DELAY_SECONDS = 60.0  # every delay stays far below the Redis visibility timeout


@dataclass(frozen=True)
class Verdict:
    """Whether to try again, when, and a reason fit for a note or a log."""

    retry: bool
    delay: float
    reason: str


def decide(
    status: int | None, headers: Mapping[str, str], attempt: int, base_delay: float = 1.0
) -> Verdict:
    """Classify a failed call; `status` is None for a network failure, `attempt` counts from 1.

    429 waits `ratelimit-reset` seconds when PagerDuty sends it, or `Retry-After` when Slack
    does (backoff otherwise); 5xx and network failures back off exponentially; any other 4xx
    is final.
    """
    backoff = min(base_delay * 2 ** (attempt - 1), MAX_DELAY_SECONDS)
    if status is None:
        return Verdict(True, backoff, "network failure")
    if status == 429:
        reset = _seconds(headers, "ratelimit-reset")
        if reset is None:
            reset = _seconds(headers, "retry-after")
        delay = min(reset, MAX_DELAY_SECONDS) if reset is not None else backoff
        return Verdict(True, delay, "HTTP 429 rate limited")
    if status in RETRYABLE_SERVER_ERRORS:
        return Verdict(True, backoff, f"HTTP {status} server error")
    return Verdict(False, 0.0, f"HTTP {status}: not retried")


def _seconds(headers: Mapping[str, str], name: str) -> float | None:
    for key, value in headers.items():
        if key.lower() == name:
            try:
                return max(float(value), 0.0)
            except ValueError:
                return None
    return None


# A task that lost its Redis connection waits this long before its next attempt: a restart
# takes about a second, a Sentinel failover a few; the cap keeps it far below any lease.
REDIS_RETRY_BASE_SECONDS = 0.5
REDIS_RETRY_MAX_SECONDS = 10.0


def redis_backoff(attempt: int, base: float = REDIS_RETRY_BASE_SECONDS) -> float:
    """Return the wait before retry `attempt` (from 1) of a task that lost Redis (doubling)."""
    return min(base * 2 ** max(attempt - 1, 0), REDIS_RETRY_MAX_SECONDS)
