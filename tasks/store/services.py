"""What the responder remembers of the services it calls: PagerDuty's list of priorities (asked
once an hour), a failing SMTP server (the breaker), and the keys of PagerDuty's shared request
budget and of collector checks shared between runs."""

from __future__ import annotations

import json
from typing import Any

import redis

from tasks.store.deliveries import PREFIX

_PRIORITIES_KEY = f"{PREFIX}pagerduty-priorities"
_SMTP_FAILING_KEY = f"{PREFIX}smtp-failing"


def cached_priorities(client: redis.Redis) -> list[dict[str, Any]] | None:
    """Return the account's PagerDuty priorities as last asked, or None when not cached."""
    cached = client.get(_PRIORITIES_KEY)
    return list(json.loads(cached)) if cached is not None else None


def cache_priorities(client: redis.Redis, found: list[dict[str, Any]], seconds: int) -> None:
    """Keep the account's PagerDuty priorities for `seconds`."""
    client.set(_PRIORITIES_KEY, json.dumps(found), ex=seconds)


def smtp_failing(client: redis.Redis) -> tuple[str, float] | None:
    """Return why the SMTP server failed and the seconds the breaker stays open, or None."""
    left_ms = client.pttl(_SMTP_FAILING_KEY)
    if left_ms <= 0:
        return None
    why = (client.get(_SMTP_FAILING_KEY) or b"").decode("utf-8", "replace")
    return why, left_ms / 1000


def trip_smtp_breaker(client: redis.Redis, why: str, seconds: int) -> None:
    """Open the SMTP breaker for `seconds` unless it is open already (the first reason stays)."""
    client.set(_SMTP_FAILING_KEY, why[:500], ex=seconds, nx=True)


def budget_key(name: str) -> str:
    """Return the key of the sorted set counting the requests of PagerDuty budget `name`."""
    return f"{PREFIX}budget:{name}"


def shared_check_key(digest: str) -> str:
    """Return the key of a collector check shared between runs, by the digest of its facts."""
    return f"{PREFIX}check:{digest}"
