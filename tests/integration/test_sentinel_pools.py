"""After a primary stops answering (paused: connected, silent, as a host cut off the network),
every Sentinel-managed pool of the process uses the new primary once any one of them has
asked the Sentinels: a second state client and a kombu channel do not wait out a socket
timeout on their idle connections to the old one (real Redis and Sentinels)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from tasks.store.redis_client import celery_transport_options, connect
from tasks.store.sentinel_pools import check_master
from tests.support.redis_servers import SentinelSet


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    servers = SentinelSet(tmp_path / "sentinel-set").start()
    yield servers
    servers.primary.resume()  # a paused primary would hold stop() (SIGTERM waits)
    servers.stop()


def test_every_pool_leaves_a_silent_primary_once_one_pool_learns_of_the_new_one(
    sentinel_set: SentinelSet,
) -> None:
    first = connect(sentinel_set.url, master=sentinel_set.master_name, socket_timeout=3)
    second = connect(sentinel_set.url, master=sentinel_set.master_name, socket_timeout=3)
    options = celery_transport_options(sentinel_set.url, sentinel_set.master_name)
    with Connection(sentinel_set.url, transport_options=options) as broker:
        channel = broker.default_channel
        for client in (first, second, channel.client):
            client.ping()  # each pool now holds an idle connection to the primary
        old = sentinel_set.primary.port
        new = sentinel_set.pause_master()
        assert new != old

        # One pool asks the Sentinels (a new connection does): the others learn of it too.
        first.connection_pool.disconnect()
        first.set("responder:test:first", "1")
        assert first.connection_pool.master_address[1] == new
        assert second.connection_pool.master_address[1] == new
        assert channel.client.connection_pool.master_address[1] == new

        # Their idle connections to the silent primary are gone: the next command goes to the
        # new primary (before the fix each raised TimeoutError after its socket timeout).
        second.set("responder:test:second", "2")
        channel.client.set("responder:test:kombu", "3")
        on_new = redis.Redis(port=new)
        assert on_new.mget(
            "responder:test:first", "responder:test:second", "responder:test:kombu"
        ) == [b"1", b"2", b"3"]


def test_asking_before_a_task_moves_every_pool_without_a_failed_command(
    sentinel_set: SentinelSet,
) -> None:
    state = connect(sentinel_set.url, master=sentinel_set.master_name, socket_timeout=3)
    options = celery_transport_options(sentinel_set.url, sentinel_set.master_name)
    with Connection(sentinel_set.url, transport_options=options) as broker:
        channel = broker.default_channel
        state.ping()
        channel.client.ping()
        new = sentinel_set.pause_master()

        # What a worker does before each task (at most once a second) and its heartbeat
        # thread every beat: ask the Sentinels; no command has failed yet.
        assert check_master(state, every=0)
        assert state.connection_pool.master_address[1] == new
        assert channel.client.connection_pool.master_address[1] == new
        channel.client.set("responder:test:after-check", "1")
        assert redis.Redis(port=new).get("responder:test:after-check") == b"1"
