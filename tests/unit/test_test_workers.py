"""The suite's own plumbing: each pytest-xdist worker of the integration run gets a Redis
database of its own, derived from the one RESPONDER_TEST_REDIS_URL names."""

from __future__ import annotations

import pytest

from tests.support import worker_redis_url


@pytest.mark.parametrize(
    ("given", "worker", "expected"),
    [
        # Not distributed (plain pytest, or the xdist controller): the database given.
        ("redis://127.0.0.1:6379/12", None, "redis://127.0.0.1:6379/12"),
        ("redis://127.0.0.1:6379/12", "master", "redis://127.0.0.1:6379/12"),
        # Worker N takes the given database plus N: `make test`'s two workers use 12 and 13.
        ("redis://127.0.0.1:6379/12", "gw0", "redis://127.0.0.1:6379/12"),
        ("redis://127.0.0.1:6379/12", "gw1", "redis://127.0.0.1:6379/13"),
        # No database in the URL is database 0, as redis-py reads it.
        ("redis://127.0.0.1:6379", "gw1", "redis://127.0.0.1:6379/1"),
        # A password and options are kept as they were.
        (
            "redis://:pw@127.0.0.1:6380/4?socket_timeout=5",
            "gw2",
            "redis://:pw@127.0.0.1:6380/6?socket_timeout=5",
        ),
    ],
)
def test_each_xdist_worker_takes_the_given_database_plus_its_index(
    given: str, worker: str | None, expected: str
) -> None:
    assert worker_redis_url(given, worker) == expected
