"""Sentinel URLs, the settings that go with them, and the backoff of a task that lost Redis."""

from __future__ import annotations

import pytest

from tasks.retries import REDIS_RETRY_MAX_SECONDS, redis_backoff
from tasks.runtime import state_timeouts
from tasks.settings import SettingsError, settings_from_env, shown_url
from tasks.store.redis_client import (
    SentinelUrl,
    celery_transport_options,
    connect,
    is_sentinel_url,
    parse_sentinel_url,
)

THREE = "sentinel://h1:26379;sentinel://h2:26380;sentinel://h3/2"


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        (THREE, SentinelUrl((("h1", 26379), ("h2", 26380), ("h3", 26379)), 2, None, None)),
        ("sentinel://10.0.0.5", SentinelUrl((("10.0.0.5", 26379),), 0, None, None)),
        # The first password given is the master's (kombu reads it from the same place).
        (
            "sentinel://:s%40cret@h1:26379;sentinel://h2:26379/0",
            SentinelUrl((("h1", 26379), ("h2", 26379)), 0, None, "s@cret"),
        ),
        (
            "SENTINEL://app:pw@h1:1;sentinel://h2:2/5",
            SentinelUrl((("h1", 1), ("h2", 2)), 5, "app", "pw"),
        ),
    ],
)
def test_a_sentinel_url_names_every_sentinel_the_database_and_the_masters_password(
    url: str, parsed: SentinelUrl
) -> None:
    assert is_sentinel_url(url)
    assert parse_sentinel_url(url) == parsed


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///run/redis.sock"]
)
def test_a_plain_redis_url_is_not_a_sentinel_url_and_needs_no_transport_options(url: str) -> None:
    assert not is_sentinel_url(url)
    assert celery_transport_options(url, "mymaster", "pw") == {}


# A primary cut off the network sends no RST: the broker must time its sockets out, notice a
# silent BRPOP within seconds, and ask the Sentinels (one of which may be the dead host's)
# with a short timeout of their own, password or not.
TIMEOUTS = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 1.0,
    "socket_keepalive": True,
    "health_check_interval": 2,
}
ASKING = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "socket_keepalive": True}


@pytest.mark.parametrize(
    ("password", "options"),
    [
        ("", {"master_name": "responder", "sentinel_kwargs": ASKING, **TIMEOUTS}),
        (
            "s3",
            {
                "master_name": "responder",
                "sentinel_kwargs": {**ASKING, "password": "s3"},
                **TIMEOUTS,
            },
        ),
    ],
)
def test_the_broker_follows_the_master_by_name_with_the_sentinels_own_password(
    password: str, options: dict[str, object]
) -> None:
    assert celery_transport_options(THREE, "responder", password) == options


def test_a_state_client_asks_the_sentinels_with_their_short_timeout_whatever_the_masters() -> None:
    client = connect(THREE, master="responder", socket_timeout=5, socket_connect_timeout=2)
    master = client.connection_pool.connection_kwargs  # the master's, as given
    assert (master["socket_timeout"], master["socket_connect_timeout"]) == (5, 2)
    asked = client.connection_pool.sentinel_manager.sentinels[0].connection_pool
    assert asked.connection_kwargs["socket_timeout"] == 1.0
    assert asked.connection_kwargs["socket_connect_timeout"] == 1.0


def test_a_sentinel_url_without_the_masters_name_is_refused() -> None:
    with pytest.raises(SettingsError, match="RESPONDER_REDIS_SENTINEL_MASTER: needed"):
        settings_from_env({"RESPONDER_REDIS_URL": THREE})


def test_a_sentinel_url_with_its_master_is_taken_and_its_password_secret() -> None:
    settings = settings_from_env(
        {
            "RESPONDER_REDIS_URL": THREE,
            "RESPONDER_REDIS_SENTINEL_MASTER": "responder",
            "RESPONDER_REDIS_SENTINEL_PASSWORD": "sentinel-pass-77",
        }
    )
    assert (settings.redis_url, settings.redis_sentinel_master) == (THREE, "responder")
    assert "sentinel-pass-77" not in repr(settings)
    assert "sentinel-pass-77" in settings.secrets()  # redacted wherever text is written


def test_a_sentinel_url_is_shown_with_its_password_masked_in_each_address() -> None:
    shown = shown_url("sentinel://:pw-1@h1:26379;sentinel://:pw-2@h2:26379/0")
    assert "pw-1" not in shown and "pw-2" not in shown
    assert shown.count("sentinel://") == 2


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, REDIS_RETRY_MAX_SECONDS), (40, 10.0)],
)
def test_a_task_that_lost_redis_waits_a_doubling_backoff_capped_at_ten_seconds(
    attempt: int, seconds: float
) -> None:
    assert redis_backoff(attempt) == seconds


@pytest.mark.parametrize(
    ("environment", "timeouts"),
    [
        # One Redis: a slow reply must not become a 503.
        ({}, {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}),
        # Through Sentinel: a cut-off primary's pooled connections cost little; WAIT on top.
        (
            {"RESPONDER_REDIS_URL": THREE, "RESPONDER_REDIS_SENTINEL_MASTER": "responder"},
            {"socket_timeout": 2.0, "socket_connect_timeout": 1.0},
        ),
        (
            {
                "RESPONDER_REDIS_URL": THREE,
                "RESPONDER_REDIS_SENTINEL_MASTER": "responder",
                "RESPONDER_REDIS_WAIT_REPLICAS": "1",
                "RESPONDER_REDIS_WAIT_MS": "1500",
            },
            {"socket_timeout": 3.5, "socket_connect_timeout": 1.0},
        ),
    ],
)
def test_the_state_client_times_out_sooner_through_sentinel_and_waits_out_its_wait(
    environment: dict[str, str], timeouts: dict[str, float]
) -> None:
    assert state_timeouts(settings_from_env(environment)) == timeouts
