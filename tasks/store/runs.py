"""A pipeline run's records in Redis: its state, the evidence entries it collected, the
proposals its rules made, and what the resolution of a delivery settled.

Kept for as long as a delivery can be retried (DEDUP_TTL), so that a retried task finds what
the first attempt did instead of doing it again.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from tasks.store.deliveries import DEDUP_TTL, PREFIX


def run_key(run_id: str) -> str:
    """Return the Redis key holding a run's state."""
    return f"{PREFIX}run:{run_id}"


def entries_key(run_id: str) -> str:
    """Return the Redis key holding the manifest entries a run's collectors produced."""
    return f"{run_key(run_id)}:entries"


def _proposals_key(run_id: str) -> str:
    return f"{PREFIX}run-proposals:{run_id}"


def _settled_key(delivery_id: str) -> str:
    return f"{PREFIX}settled:{delivery_id}"


def save_state(client: redis.Redis, run_id: str, text: str) -> None:
    """Store a run's state, as the JSON text `RunState.to_json` wrote."""
    client.set(run_key(run_id), text, ex=DEDUP_TTL)


def state_text(client: redis.Redis, run_id: str) -> bytes | None:
    """Return a run's stored state as JSON bytes, or None when it was never saved (or expired)."""
    raw: bytes | None = client.get(run_key(run_id))
    return raw


def state_record(client: redis.Redis, run_id: str) -> dict[str, Any] | None:
    """Return a run's state as a plain mapping, or None when it is missing or unreadable."""
    raw = state_text(client, run_id)
    try:
        found = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def entries(client: redis.Redis, run_id: str) -> list[dict[str, Any]] | None:
    """Return the evidence entries a run kept, or None when it has collected none yet."""
    kept = client.get(entries_key(run_id))
    return list(json.loads(kept)) if kept else None


def keep_entries(client: redis.Redis, run_id: str, found: list[dict[str, Any]]) -> None:
    """Keep a run's evidence entries, so that a retry of its evidence note does not collect."""
    client.set(entries_key(run_id), json.dumps(found), ex=DEDUP_TTL)


def proposal_ids(client: redis.Redis, run_id: str) -> list[str] | None:
    """Return the ids of the proposals a run's rules made, or None before they were recorded."""
    kept = client.get(_proposals_key(run_id))
    return list(json.loads(kept)) if kept is not None else None


def keep_proposal_ids(client: redis.Redis, run_id: str, ids: list[str]) -> list[str] | None:
    """Record a run's proposal ids unless another copy of its task did first (SET NX).

    Return None when this call recorded them, else the ids recorded first.
    """
    if client.set(_proposals_key(run_id), json.dumps(ids), nx=True, ex=DEDUP_TTL):
        return None
    return proposal_ids(client, run_id) or []


def settled(client: redis.Redis, delivery_id: str) -> dict[str, Any] | None:
    """Return what resolving a delivery's group settled (clocks stopped, checks), or None."""
    kept = client.get(_settled_key(delivery_id))
    return dict(json.loads(kept)) if kept is not None else None


def keep_settled(client: redis.Redis, delivery_id: str, found: dict[str, Any]) -> None:
    """Keep what resolving a delivery's group settled, for a retry of its note."""
    client.set(_settled_key(delivery_id), json.dumps(found), ex=DEDUP_TTL)
