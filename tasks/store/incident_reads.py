"""The reads of incident data that the incident page and the list page make, each in as few
round trips as the page needs: values that do not parse are left out, never raised."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

import redis

from tasks.store.deliveries import COMPRESSED_SUFFIX, delivery_key
from tasks.store.deliveries import INDEX_KEY as DELIVERIES_KEY
from tasks.store.incidents import STARTED_KEY, history_key, incident_key
from tasks.store.sla_clock import KINDS, deadline_detail_key


def record(client: redis.Redis, incident_id: str) -> dict[str, Any]:
    """Return an incident's record (empty when unknown)."""
    return _decode_hash(client.hgetall(incident_key(incident_id)))


def history(client: redis.Redis, incident_id: str, most: int) -> list[dict[str, Any]]:
    """Return the last `most` entries of an incident's history, each once."""
    return _decode_history(client.lrange(history_key(incident_id), -most, -1))


def record_and_history(
    client: redis.Redis, incident_id: str, most: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return an incident's record and the last `most` entries of its history (one trip)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(incident_key(incident_id))
        pipe.lrange(history_key(incident_id), -most, -1)
        raw_record, raw_history = pipe.execute()
    return _decode_hash(raw_record), _decode_history(raw_history)


def running_deadlines(client: redis.Redis, incident_id: str) -> dict[str, str]:
    """Return the due times the SLA clock holds now for the incident, by kind."""
    raw = client.mget([deadline_detail_key(f"{incident_id}|{kind}") for kind in KINDS])
    found = {}
    for kind, detail in zip(KINDS, raw, strict=True):
        if detail is not None:
            try:
                found[kind] = str(json.loads(detail)["due"])
            except (ValueError, KeyError, TypeError):
                continue
    return found


def clocks_count(client: redis.Redis) -> int:
    """Return how many incidents have had an SLA clock started (within retention)."""
    return int(client.zcard(STARTED_KEY))


def latest_clocks(
    client: redis.Redis, start: int, count: int, fields: Sequence[str]
) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Return incidents by the latest clock start, from `start`: (id, the record's `fields`
    with None for a missing one, the deadlines the clock holds for it)."""
    ids = [i.decode() for i in client.zrevrange(STARTED_KEY, start, start + count - 1)]
    with client.pipeline(transaction=False) as pipe:
        for incident_id in ids:
            pipe.hmget(incident_key(incident_id), list(fields))
            pipe.mget([deadline_detail_key(f"{incident_id}|{kind}") for kind in KINDS])
        answers = pipe.execute()
    found = []
    for index, incident_id in enumerate(ids):
        values = [json.loads(v) if v is not None else None for v in answers[2 * index]]
        due = [json.loads(d) for d in answers[2 * index + 1] if d is not None]
        found.append((incident_id, dict(zip(fields, values, strict=True)), due))
    return found


def recent_deliveries(client: redis.Redis, count: int) -> list[dict[str, Any]]:
    """Return the latest deliveries' metadata and pipeline fields, newest first (no bodies)."""
    ids = [i.decode() for i in client.zrevrange(DELIVERIES_KEY, 0, count - 1)]
    names = ["meta", "meta" + COMPRESSED_SUFFIX.decode(), "pipeline", "bundle_id", "incident_id"]
    with client.pipeline(transaction=False) as pipe:
        for delivery_id in ids:
            pipe.hmget(delivery_key(delivery_id), names)
        answers = pipe.execute()
    found = []
    for delivery_id, (meta, packed, pipeline, bundle_id, incident_id) in zip(
        ids, answers, strict=True
    ):
        if meta is None and packed is not None:
            meta = zlib.decompress(packed)
        found.append(
            {
                "id": delivery_id,
                "meta": json.loads(meta) if meta else {},
                "pipeline": _loads(pipeline),
                "bundle_id": _loads(bundle_id),
                "incident_id": _loads(incident_id),
            }
        )
    return found


def _decode_hash(raw: dict[bytes, bytes]) -> dict[str, Any]:
    found = {}
    for name, value in raw.items():
        try:
            found[name.decode()] = json.loads(value)
        except ValueError:
            continue
    return found


def _decode_history(raw: list[bytes]) -> list[dict[str, Any]]:
    entries = []
    for line in dict.fromkeys(raw):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "at" in entry and "what" in entry:
            entries.append(entry)
    return entries


def _loads(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return raw.decode(errors="replace") if raw is not None else None
