"""Requests seen once: a signed or keyed request delivered a second time within its window is
a replay, and is refused before it reaches the approval path."""

from __future__ import annotations

import hashlib

import redis

from tasks.store.deliveries import PREFIX


def seen_key(kind: str, request_id: str) -> str:
    """Return the Redis key remembering request `request_id` of `kind` (slack, actions)."""
    # Hashed: the id may be a sender's long free text; the key stays short and printable.
    digest = hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{PREFIX}seen:{kind}:{digest}"


def first_delivery(client: redis.Redis, kind: str, request_id: str, window_seconds: int) -> bool:
    """Remember the request for `window_seconds`; return True the first time only."""
    return bool(client.set(seen_key(kind, request_id), "1", nx=True, ex=max(window_seconds, 1)))


def forget_delivery(client: redis.Redis, kind: str, request_id: str) -> None:
    """Forget a request whose handling failed before it acted, so that the sender's retry of
    the same request is taken instead of refused as a replay."""
    client.delete(seen_key(kind, request_id))
