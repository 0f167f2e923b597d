"""The correlation ledger in Redis: which incident each firing alert group is in, live.

One JSON document, changed only under a lock: two groups of one outage arrive within
milliseconds, and both must not start an incident of their own because neither saw the
other. The fold itself is pure (`triage.correlation_replay.Ledger`); this module only loads,
locks and saves it, and keeps the decisions for `responder correlate --live` and the page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import redis

from tasks.store.deliveries import PREFIX
from triage.correlation_replay import Ledger

LEDGER_KEY = f"{PREFIX}correlation:ledger"
LOCK_KEY = f"{PREFIX}correlation:lock"
DECISIONS_KEY = f"{PREFIX}correlation:decisions"  # newest last, capped
DECISIONS_KEPT = 5000
LOCK_SECONDS = 10  # a holder that died frees the ledger after this
WAIT_SECONDS = 30  # a change waits this long for the lock before it fails (and is retried)
RETENTION_SECONDS = 7 * 86400


class LedgerBusy(RuntimeError):
    """The ledger's lock could not be taken in time: the caller retries."""


class CorrelationLedger:
    """Load, change and save the ledger, one change at a time."""

    def __init__(self, client: redis.Redis, wait_seconds: float = WAIT_SECONDS) -> None:
        self.redis = client
        self.wait_seconds = wait_seconds

    def read(self) -> Ledger:
        """Return the ledger as it stands (for reading only: changes go through `change`)."""
        raw = self.redis.get(LEDGER_KEY)
        return Ledger.from_dict(json.loads(raw)) if raw else Ledger()

    @contextmanager
    def change(self) -> Iterator[Ledger]:
        """Yield the ledger under its lock; save it when the block ends without an error."""
        lock = self.redis.lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking_timeout=self.wait_seconds)
        if not lock.acquire():
            raise LedgerBusy(f"the correlation ledger stayed locked for {self.wait_seconds:g} s")
        try:
            ledger = self.read()
            yield ledger
            self.redis.set(LEDGER_KEY, json.dumps(ledger.to_dict()), ex=RETENTION_SECONDS)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:  # expired while held: the save still stands
                pass

    def update(self, apply: Callable[[Ledger], Any], now: datetime, keep: timedelta) -> Any:
        """Apply `apply` to the ledger under its lock, forget what is older than `keep`,
        save, and return what `apply` returned."""
        with self.change() as ledger:
            result = apply(ledger)
            ledger.forget_before(now - keep)
        return result

    def record_decision(self, decision: dict[str, Any]) -> None:
        """Keep one decision (newest last) for the operator's tools."""
        with self.redis.pipeline() as pipe:
            pipe.rpush(DECISIONS_KEY, json.dumps(decision))
            pipe.ltrim(DECISIONS_KEY, -DECISIONS_KEPT, -1)
            pipe.expire(DECISIONS_KEY, RETENTION_SECONDS)
            pipe.execute()

    def decisions(self) -> list[dict[str, Any]]:
        """Return the kept decisions, oldest first."""
        return [json.loads(raw) for raw in self.redis.lrange(DECISIONS_KEY, 0, -1)]
