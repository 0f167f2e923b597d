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
import math
import secrets
import time
from collections.abc import Callable

import redis

from collectors.contract import Evidence, Status, Target
from tasks.store.services import shared_check_key

log = logging.getLogger(__name__)

SHARE_SECONDS = 10.0  # a result is reused this long
OPEN_CIRCUIT_SECONDS = 60.0  # a timed-out result is reused this long: nobody waits on it again
POLL_SECONDS = 0.1
# Collectors whose result depends on the alert itself (its rule's threshold, its start marked on
# the plots): shared only with a run for the same alert, started at the same moment.
KEYED_ON_THE_ALERT = frozenset({"prometheus"})


def check_key(name: str, target: Target) -> str:
    """Return the key of collector `name`'s check of `target` (the same for equal targets)."""
    facts = [
        name,
        sorted(s.name for s in target.services),
        sorted(target.affected),
        target.expression,
    ]
    if name in KEYED_ON_THE_ALERT:
        facts += [target.alert_name, target.started_at.isoformat() if target.started_at else ""]
    digest = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:32]
    return shared_check_key(digest)


MAX_SHARED_BYTES = 1_000_000  # a larger result (many plots) is not worth keeping in Redis

# Delete the lock only if it is still ours: one that outlived its expiry is another's now.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def run_shared(
    client: redis.Redis,
    name: str,
    target: Target,
    run: Callable[[], Evidence],
    wait_seconds: float,
    now: Callable[[], float] = time.time,
    redact: Callable[[str], str] = lambda text: text,
) -> Evidence:
    """Return a recent result of this check, wait for one in progress, or run it (and share it).

    What is shared is redacted first (it sits in Redis). Redis trouble never costs the
    evidence, nor runs a check twice: the check then simply runs here, unshared.
    """
    key = check_key(name, target)
    lock = f"{key}:running"
    token = secrets.token_hex(8)
    try:
        cached = _wait_for_turn(client, key, lock, token, wait_seconds, now)
    except redis.RedisError as exc:
        log.warning("cannot share the %s check (%s); running it here", name, type(exc).__name__)
        return run()
    if cached is not None:
        return cached
    if not _holds(client, lock, token):
        return run()  # waited long enough for another runner: its target may be hung
    evidence = run()
    try:
        _share(client, key, evidence, now(), redact)
        client.register_script(_RELEASE)(keys=[lock], args=[token])
    except redis.RedisError as exc:
        log.warning("cannot share the %s check's result: %s", name, type(exc).__name__)
    return evidence


def _wait_for_turn(
    client: redis.Redis,
    key: str,
    lock: str,
    token: str,
    wait_seconds: float,
    now: Callable[[], float],
) -> Evidence | None:
    """Return a shared result, or None once this caller holds the lock (or waited enough)."""
    give_up_at = time.monotonic() + wait_seconds
    while True:
        if (found := _cached(client, key, now)) is not None:
            return found
        # The lock lasts as long as others would wait for its check: a holder that died (a
        # killed worker) keeps no one waiting longer, and the redelivered run checks anew.
        if client.set(lock, token, nx=True, ex=max(math.ceil(wait_seconds), 1)):
            return None
        if time.monotonic() > give_up_at:
            return None
        time.sleep(POLL_SECONDS)


def _holds(client: redis.Redis, lock: str, token: str) -> bool:
    try:
        return client.get(lock) == token.encode()
    except redis.RedisError:
        return False


def _share(
    client: redis.Redis,
    key: str,
    evidence: Evidence,
    at: float,
    redact: Callable[[str], str],
) -> None:
    """Keep a result for the others: briefly, or for a minute when the target hung."""
    if evidence.status is Status.SKIPPED:
        return
    keep = OPEN_CIRCUIT_SECONDS if evidence.status is Status.TIMEOUT else SHARE_SECONDS
    text = json.dumps({"at": at, "evidence": _storable(evidence, redact)})
    if len(text) <= MAX_SHARED_BYTES:
        client.set(key, text, px=int(keep * 1000))


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


def _storable(evidence: Evidence, redact: Callable[[str], str]) -> dict[str, object]:
    data = evidence.to_dict()
    data["summary"] = redact(evidence.summary)
    data["tables"] = json.loads(redact(json.dumps(evidence.tables)))
    data["files"] = {k: _wrapped(v, redact) for k, v in evidence.files.items()}
    return data


def _wrapped(content: str | bytes, redact: Callable[[str], str]) -> dict[str, str]:
    if isinstance(content, bytes):  # plots
        return {"base64": base64.b64encode(content).decode()}
    return {"text": redact(content)}


def _unwrapped(content: dict[str, str]) -> str | bytes:
    return base64.b64decode(content["base64"]) if "base64" in content else content["text"]
