"""One check of a target shared by every incident that asks for it within a short window.

In an outage the same services are diagnosed for every incident at once, and the ones that
hang make each check wait out its timeout. A check's result is kept in Redis for a few
seconds (for a minute when it timed out: a circuit breaker, so nobody waits again on a target
known to hang) and only one worker runs a given check at a time; the others wait for its
result instead of asking the target again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable

import redis

from collectors.contract import Evidence, Status, Target
from tasks.deliveries import PREFIX

log = logging.getLogger(__name__)

SHARE_SECONDS = 10.0  # a result is reused this long
OPEN_CIRCUIT_SECONDS = 60.0  # a timed-out result is reused this long: nobody waits on it again
POLL_SECONDS = 0.1


def check_key(name: str, target: Target) -> str:
    """Return the key of collector `name`'s check of `target` (the same for equal targets)."""
    facts = [
        name,
        sorted(s.name for s in target.services),
        sorted(target.affected),
        target.expression,
    ]
    digest = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:32]
    return f"{PREFIX}check:{digest}"


def run_shared(
    client: redis.Redis,
    name: str,
    target: Target,
    run: Callable[[], Evidence],
    wait_seconds: float,
    now: Callable[[], float] = time.time,
) -> Evidence:
    """Return a recent result of this check, wait for one in progress, or run it (and share it).

    Redis trouble never costs the evidence: the check then simply runs here.
    """
    key = check_key(name, target)
    try:
        return _shared(client, key, run, wait_seconds, now)
    except redis.RedisError as exc:
        log.warning("cannot share the %s check (%s); running it here", name, type(exc).__name__)
        return run()


def _shared(
    client: redis.Redis,
    key: str,
    run: Callable[[], Evidence],
    wait_seconds: float,
    now: Callable[[], float],
) -> Evidence:
    lock = f"{key}:running"
    give_up_at = time.monotonic() + wait_seconds
    while True:
        if (found := _cached(client, key, now)) is not None:
            return found
        if client.set(lock, "1", nx=True, ex=max(int(wait_seconds) + 5, 5)):
            break
        if time.monotonic() > give_up_at:  # its runner is gone or stuck: run it here
            return run()
        time.sleep(POLL_SECONDS)
    try:
        evidence = run()
        keep = OPEN_CIRCUIT_SECONDS if evidence.status is Status.TIMEOUT else SHARE_SECONDS
        if evidence.status is not Status.SKIPPED:
            record = {"at": now(), "evidence": _storable(evidence)}
            client.set(key, json.dumps(record), px=int(keep * 1000))
        return evidence
    finally:
        client.delete(lock)


def _cached(client: redis.Redis, key: str, now: Callable[[], float]) -> Evidence | None:
    raw = client.get(key)
    if raw is None:
        return None
    record = json.loads(raw)
    evidence = Evidence.from_dict(record["evidence"])
    evidence.files = {k: _unwrapped(v) for k, v in evidence.files.items()}  # type: ignore[arg-type]
    age = now() - float(record["at"])
    if age >= 1:
        evidence.summary += f" (shared check, {age:.0f} s old)"
    evidence.duration_seconds = 0.0
    return evidence


def _storable(evidence: Evidence) -> dict[str, object]:
    data = evidence.to_dict()
    data["files"] = {k: _wrapped(v) for k, v in evidence.files.items()}
    return data


def _wrapped(content: str | bytes) -> dict[str, str]:
    if isinstance(content, bytes):  # plots
        return {"base64": base64.b64encode(content).decode()}
    return {"text": content}


def _unwrapped(content: dict[str, str]) -> str | bytes:
    return base64.b64decode(content["base64"]) if "base64" in content else content["text"]
