"""The delivery log in Redis: every webhook body as received, its dedup outcome and its pipeline."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

PREFIX = "responder:"
INDEX_KEY = PREFIX + "deliveries"
DEDUP_TTL = timedelta(hours=48)  # PagerDuty retries for up to 48 h; Alertmanager resends sooner.
DELIVERY_RETENTION = timedelta(days=7)


def new_delivery_id(now: datetime) -> str:
    """Return a time-sortable, unguessable delivery id such as `20261127T094500Z-3f9a1c2b`."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def delivery_key(delivery_id: str) -> str:
    """Return the Redis key of one delivery's hash."""
    return f"{PREFIX}delivery:{delivery_id}"


@dataclass(frozen=True)
class Recorded:
    """The outcome of recording a delivery: its id and which dedup keys were new."""

    delivery_id: str
    fresh_keys: frozenset[str]

    @property
    def duplicate(self) -> bool:
        """Return True when every dedup key of the delivery had been seen before."""
        return not self.fresh_keys


class DeliveryStore:
    """Record, read and update deliveries; the receiver writes, workers and the CLI read."""

    def __init__(self, client: redis.Redis, retention: timedelta = DELIVERY_RETENTION) -> None:
        self.redis = client
        self.retention = retention

    def record(
        self,
        *,
        source: str,
        raw_body: bytes,
        headers: Mapping[str, str],
        dedup_keys: Iterable[str],
        fields: Mapping[str, Any],
        now: datetime,
    ) -> Recorded:
        """Store the raw body and metadata and claim its dedup keys, in one transaction."""
        delivery_id = new_delivery_id(now)
        key = delivery_key(delivery_id)
        keys = list(dict.fromkeys(dedup_keys))
        record = {
            name: _encode(value)
            for name, value in {
                "id": delivery_id,
                "source": source,
                "received_at": now.astimezone(UTC).isoformat(),
                "raw_body": raw_body,
                "headers": dict(headers),
                **fields,
            }.items()
        }
        with self.redis.pipeline(transaction=True) as pipe:
            for dedup in keys:
                pipe.set(f"{PREFIX}dedup:{source}:{dedup}", delivery_id, nx=True, ex=DEDUP_TTL)
            pipe.hset(key, mapping=record)
            pipe.expire(key, self.retention)
            pipe.zadd(INDEX_KEY, {delivery_id: now.timestamp()})
            pipe.zremrangebyscore(INDEX_KEY, "-inf", (now - self.retention).timestamp())
            results = pipe.execute()
        fresh = frozenset(k for k, claimed in zip(keys, results, strict=False) if claimed)
        self.redis.hset(key, mapping={"fresh_keys": json.dumps(sorted(fresh))})
        return Recorded(delivery_id, fresh)

    def release_dedup(self, source: str, dedup_keys: Iterable[str]) -> None:
        """Forget dedup keys claimed by a delivery that could not be enqueued."""
        keys = [f"{PREFIX}dedup:{source}:{k}" for k in dedup_keys]
        if keys:
            self.redis.delete(*keys)

    def get(self, delivery_id: str) -> dict[str, Any] | None:
        """Return one delivery with JSON fields decoded, or None when unknown or expired."""
        raw = self.redis.hgetall(delivery_key(delivery_id))
        if not raw:
            return None
        result: dict[str, Any] = {}
        for name, value in raw.items():
            name = name.decode()
            result[name] = value if name == "raw_body" else _decode(value.decode())
        return result

    def update(self, delivery_id: str, **fields: Any) -> None:
        """Set fields of a stored delivery (pipeline state, incident, bundle)."""
        self.redis.hset(
            delivery_key(delivery_id), mapping={k: _encode(v) for k, v in fields.items()}
        )

    def next_run(self, delivery_id: str) -> int:
        """Return a new pipeline run number for the delivery (1 for the first)."""
        return int(self.redis.hincrby(delivery_key(delivery_id), "runs", 1))

    def list_ids(self, since: datetime | None = None) -> list[str]:
        """Return the ids of stored deliveries, oldest first, optionally received since `since`."""
        low = "-inf" if since is None else since.timestamp()
        return [i.decode() for i in self.redis.zrangebyscore(INDEX_KEY, low, "+inf")]

    def effect_done(self, run_id: str, step: str) -> bool:
        """Return True if side effect `step` of pipeline run `run_id` already happened."""
        return bool(self.redis.exists(f"{PREFIX}effect:{run_id}:{step}"))

    def mark_effect(self, run_id: str, step: str, detail: str = "") -> None:
        """Record that side effect `step` of run `run_id` happened, so a retry skips it."""
        self.redis.set(f"{PREFIX}effect:{run_id}:{step}", detail or "done", ex=DEDUP_TTL)


def _encode(value: Any) -> str | bytes:
    return value if isinstance(value, bytes) else json.dumps(value)


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # written by hand or by an older version: keep as text
        return text
