"""The Redis primary `responder status` names is the one that takes writes, before and after a
Sentinel failover; the workers it lists are the live heartbeat keys (real Redis processes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tasks.store import worker_marks
from tasks.store.redis_client import connect
from tasks.topology import RedisPrimary, redis_primary, worker_beats
from tests.support.redis_servers import RedisServer, SentinelSet


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    servers = SentinelSet(tmp_path / "sentinel-set").start()
    yield servers
    servers.stop()


def test_primary_named_by_the_sentinels_follows_a_failover(sentinel_set: SentinelSet) -> None:
    client = connect(sentinel_set.url, master=sentinel_set.master_name, socket_timeout=2)
    before = redis_primary(client)
    assert before == RedisPrimary(f"127.0.0.1:{sentinel_set.primary.port}", "sentinel", 1)
    after_port = sentinel_set.failover()
    assert redis_primary(client).address == f"127.0.0.1:{after_port}"
    assert after_port != sentinel_set.primary.port


def test_plain_url_primary_and_live_workers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "lone").start()
    try:
        client = redis.Redis.from_url(server.url)
        primary = redis_primary(client)
        assert (primary.address, primary.source, primary.replicas) == (
            f"127.0.0.1:{server.port}",
            "url",
            0,
        )
        client.set(worker_marks.worker_key("w@b"), json.dumps(["t1"]), ex=15)
        client.set(worker_marks.worker_key("w@a"), json.dumps(["t2", "t3"]), ex=15)
        beats = worker_beats(client)
        assert [(b.name, b.holding) for b in beats] == [("w@a", 2), ("w@b", 1)]
        assert all(0 < b.expires_in_seconds <= 15 for b in beats)
    finally:
        server.stop()
