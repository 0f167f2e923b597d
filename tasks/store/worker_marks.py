"""The worker side's own marks in Redis: beat's heartbeat, each worker process's heartbeat (the
delivery tags it holds), the receiver's readiness probe, attempt counts of tasks, and the lock
and suspects of the pass that requeues stalled deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import redis

from tasks.store.deliveries import PREFIX

_HEARTBEAT_KEY = f"{PREFIX}heartbeat"
_PROBE_KEY = f"{PREFIX}readyz-probe"
_WORKER_PREFIX = f"{PREFIX}worker:"
_SUSPECTS_KEY = f"{PREFIX}stalled-suspects"  # found stalled by the last pass
_RECONCILE_LOCK_KEY = f"{PREFIX}reconcile-lock"
HEARTBEAT_SECONDS = 300  # beat's heartbeat outlives a few missed beats


def record_heartbeat(client: redis.Redis, stamp: str) -> None:
    """Record that beat and a worker were alive at `stamp` (ISO 8601)."""
    client.set(_HEARTBEAT_KEY, stamp, ex=HEARTBEAT_SECONDS)


def last_heartbeat(client: redis.Redis) -> str | None:
    """Return when beat and a worker were last alive (ISO 8601), or None."""
    stamp = client.get(_HEARTBEAT_KEY)
    return stamp.decode() if stamp else None


def probe_write(client: redis.Redis) -> None:
    """Write a short-lived key: raise when this Redis cannot record a delivery now."""
    client.set(_PROBE_KEY, "1", ex=60)


def worker_key(hostname: str) -> str:
    """Return the key of one worker process's heartbeat (the delivery tags it holds)."""
    return f"{_WORKER_PREFIX}{hostname}"


def worker_keys(client: redis.Redis) -> list[bytes]:
    """Return the keys of every live worker heartbeat, sorted."""
    return sorted(client.scan_iter(f"{_WORKER_PREFIX}*", count=100))


def worker_name(key: bytes) -> str:
    """Return the worker's name a heartbeat key stands for."""
    return key.decode()[len(_WORKER_PREFIX) :]


def count_attempt(client: redis.Redis, task_id: str | None, what: str) -> tuple[int, float]:
    """Count one attempt at `what` by a task (retries keep its id); return (count, first at)."""
    key = f"{PREFIX}attempts:{task_id or '-'}"
    with client.pipeline() as pipe:
        pipe.hincrby(key, what, 1)
        pipe.hsetnx(key, f"{what}:first", time.time())
        pipe.hget(key, f"{what}:first")
        pipe.expire(key, 2 * 86400)
        count, _, first, _ = pipe.execute()
    return int(count), float(first)


def take_reconcile_turn(client: redis.Redis, seconds: int) -> bool:
    """Return True for the one caller in `seconds` whose turn it is to requeue stalled work."""
    return bool(client.set(_RECONCILE_LOCK_KEY, "1", nx=True, ex=seconds))


def take_suspects(client: redis.Redis) -> set[str]:
    """Return the deliveries the last pass found stalled, and forget them."""
    with client.pipeline() as pipe:
        pipe.smembers(_SUSPECTS_KEY)
        pipe.delete(_SUSPECTS_KEY)
        found, _ = pipe.execute()
    return {m.decode() for m in found}


def keep_suspects(client: redis.Redis, delivery_ids: Iterable[str], seconds: int) -> None:
    """Remember the deliveries this pass found stalled, for `seconds` (the next pass)."""
    ids = list(delivery_ids)
    if ids:
        with client.pipeline() as pipe:
            pipe.sadd(_SUSPECTS_KEY, *ids)
            pipe.expire(_SUSPECTS_KEY, seconds)
            pipe.execute()


def held_tags(client: redis.Redis) -> set[str]:
    """Return the delivery tags that living workers say they hold."""
    keys = worker_keys(client)
    values = client.mget(keys) if keys else []
    return {tag for value in values if value for tag in json.loads(value)}
