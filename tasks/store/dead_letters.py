"""The dead-letter set: work that failed for good, with why, for an operator to see and replay."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from tasks.store.deliveries import PREFIX

INDEX_KEY = f"{PREFIX}dead-letters"  # entry ids scored by when they failed
ITEMS_KEY = f"{PREFIX}dead-letters:items"  # entry id -> the entry as JSON
RETENTION_SECONDS = 14 * 86400
CAP = 10_000  # the oldest go first beyond this many


@dataclass(frozen=True)
class DeadLetter:
    """One task that failed for good: what to send again, and why it failed."""

    id: str
    task: str
    args: list[Any]
    queue: str
    reason: str
    failed_at: float
    delivery_id: str = ""
    incident_id: str = ""
    step: str = ""


class DeadLetters:
    """Add, list and take dead letters; every key is capped and expires."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def add(self, letter: DeadLetter) -> None:
        """Store a dead letter (the same id again replaces it)."""
        with self.redis.pipeline() as pipe:
            pipe.hset(ITEMS_KEY, letter.id, json.dumps(asdict(letter)))
            pipe.zadd(INDEX_KEY, {letter.id: letter.failed_at})
            pipe.expire(ITEMS_KEY, RETENTION_SECONDS)
            pipe.expire(INDEX_KEY, RETENTION_SECONDS)
            pipe.execute()
        self._trim()

    def _trim(self) -> None:
        old = self.redis.zrangebyscore(INDEX_KEY, "-inf", time.time() - RETENTION_SECONDS)
        excess = max(int(self.redis.zcard(INDEX_KEY)) - CAP, 0)
        old += self.redis.zrange(INDEX_KEY, 0, excess - 1) if excess else []
        if old:
            self.redis.zrem(INDEX_KEY, *old)
            self.redis.hdel(ITEMS_KEY, *old)

    def list(self) -> list[DeadLetter]:
        """Return every dead letter, oldest first."""
        ids = self.redis.zrange(INDEX_KEY, 0, -1)
        raws = self.redis.hmget(ITEMS_KEY, ids) if ids else []
        return [DeadLetter(**json.loads(raw)) for raw in raws if raw is not None]

    def count(self) -> int:
        """Return how many dead letters there are."""
        return int(self.redis.zcard(INDEX_KEY))

    def take(self, ids: Sequence[str]) -> None:
        """Remove dead letters (they are being replayed)."""
        if ids:
            self.redis.zrem(INDEX_KEY, *ids)
            self.redis.hdel(ITEMS_KEY, *ids)
