"""Where the responder's parts are now: the Redis primary (from Sentinel when configured) and
each worker with a live heartbeat. Read by `responder status`, not by /metrics (a Sentinel
query on every scrape would cost more than it tells)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis
from redis.sentinel import SentinelConnectionPool

from tasks.store import worker_marks


@dataclass(frozen=True)
class RedisPrimary:
    """The Redis that takes the writes now, who said so, and how many replicas follow it."""

    address: str  # host:port, or the Unix socket's path
    source: str  # "sentinel" (asked the Sentinels) or "url" (RESPONDER_REDIS_URL names it)
    replicas: int | None  # connected replicas the primary reports (None: it did not answer)


@dataclass(frozen=True)
class WorkerBeat:
    """One worker process with a live heartbeat: its Celery hostname and what it holds."""

    name: str
    holding: int  # task messages it says it holds
    expires_in_seconds: float  # the heartbeat lapses after this unless renewed


def redis_primary(client: redis.Redis) -> RedisPrimary:
    """Return the primary `client` writes to: asked of the Sentinels for a Sentinel client."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        host, port = pool.get_master_address()  # MasterNotFoundError: no Sentinel knows one
        address, source = f"{host}:{port}", "sentinel"
    else:
        kwargs = pool.connection_kwargs
        address = str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")
        source = "url"
    try:
        replicas: int | None = int(client.info("replication").get("connected_slaves", 0))
    except redis.RedisError:
        replicas = None
    return RedisPrimary(address, source, replicas)


def worker_beats(client: redis.Redis) -> list[WorkerBeat]:
    """Return every worker whose heartbeat key is live, by name."""
    keys = worker_marks.worker_keys(client)
    if not keys:
        return []
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        answers = pipe.execute()
    workers = []
    for key, value, ttl in zip(keys, answers[::2], answers[1::2], strict=True):
        if value is None:  # lapsed between the scan and the read
            continue
        name = worker_marks.worker_name(key)
        workers.append(WorkerBeat(name, len(json.loads(value)), max(int(ttl), 0) / 1000))
    return workers
