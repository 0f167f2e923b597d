"""One table for every failed outbound call: retry, when, or give up."""

import pytest

from tasks.retries import MAX_DELAY_SECONDS, decide


@pytest.mark.parametrize(
    ("status", "headers", "attempt", "retry", "delay", "reason"),
    [
        (429, {"ratelimit-reset": "20"}, 1, True, 20.0, "HTTP 429 rate limited"),
        (429, {"RateLimit-Reset": "3"}, 4, True, 3.0, "HTTP 429 rate limited"),
        (429, {}, 3, True, 4.0, "HTTP 429 rate limited"),  # no headers: back off
        (429, {"ratelimit-reset": "9999"}, 1, True, MAX_DELAY_SECONDS, "HTTP 429 rate limited"),
        (500, {}, 1, True, 1.0, "HTTP 500 server error"),
        (503, {}, 3, True, 4.0, "HTTP 503 server error"),
        (502, {}, 30, True, MAX_DELAY_SECONDS, "HTTP 502 server error"),
        (None, {}, 2, True, 2.0, "network failure"),
        (400, {}, 1, False, 0.0, "HTTP 400: not retried"),
        (401, {}, 1, False, 0.0, "HTTP 401: not retried"),
        (403, {}, 1, False, 0.0, "HTTP 403: not retried"),
        (404, {}, 1, False, 0.0, "HTTP 404: not retried"),
        (402, {}, 1, False, 0.0, "HTTP 402: not retried"),
    ],
)
def test_decide(status, headers, attempt, retry, delay, reason) -> None:
    verdict = decide(status, headers, attempt)
    assert (verdict.retry, verdict.delay, verdict.reason) == (retry, delay, reason)
