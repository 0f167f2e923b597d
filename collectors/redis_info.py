"""The `redis` collector: PING latency and INFO of the Redis EAFIX uses (runbook step 6)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from collectors.contract import CollectorContext, Evidence, Status, Target

NAME = "redis"
SKIPPED_WHY = (
    "no EAFIX Redis configured (RESPONDER_TARGET_REDIS_URL); the responder's own Redis "
    "is not checked in its place"
)
INFO_SECTIONS = ("server", "memory", "clients", "persistence", "keyspace")
_KEPT_FIELDS = {
    "server": ("redis_version", "uptime_in_seconds", "role"),
    "memory": (
        "used_memory_human",
        "maxmemory_human",
        "maxmemory_policy",
        "mem_fragmentation_ratio",
    ),
    "clients": ("connected_clients", "blocked_clients"),
    "persistence": ("rdb_last_bgsave_status", "aof_enabled", "aof_last_write_status", "loading"),
}


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """PING the Redis at `ctx.redis_url` and read the INFO sections an on-call engineer checks."""
    if not ctx.redis_url:
        return Evidence(NAME, Status.SKIPPED, SKIPPED_WHY)
    client = redis.Redis.from_url(
        ctx.redis_url,
        socket_timeout=ctx.timeout_seconds,
        socket_connect_timeout=ctx.timeout_seconds,
    )
    try:
        started = time.monotonic()
        client.ping()
        ping_ms = round((time.monotonic() - started) * 1000, 2)
        info = {section: client.info(section) for section in INFO_SECTIONS}
        slowlog = client.slowlog_get(10)
    except redis.TimeoutError:
        return Evidence(
            NAME, Status.TIMEOUT, f"Redis gave no answer within {ctx.timeout_seconds:g}s"
        )
    except redis.RedisError as exc:
        return Evidence(NAME, Status.FAILED, ctx.redact(f"Redis unreachable: {exc}"))
    finally:
        client.close()
    facts = key_facts(info)
    slow = [
        {"id": e.get("id"), "duration_us": e.get("duration"), "command": _command(e)}
        for e in slowlog
    ]
    return Evidence(
        collector=NAME,
        status=Status.OK,
        summary=f"{summarise(ping_ms, facts)}; {len(slow)} slow log entries",
        tables={"facts": [{"field": k, "value": v} for k, v in facts.items()], "slowlog": slow},
        files={
            "redis/info.json": json.dumps(info, indent=2, default=str),
            "redis/slowlog.json": json.dumps(slow, indent=2, default=str),
        },
    )


def _command(entry: dict[str, Any]) -> str:
    # Only the command name and how many arguments: argument values may be secrets (AUTH).
    command = entry.get("command", b"")
    words = command.split() if isinstance(command, bytes) else str(command).split()
    name = (
        words[0].decode(errors="replace")
        if words and isinstance(words[0], bytes)
        else (words[0] if words else "")
    )
    return f"{name} (+{max(len(words) - 1, 0)} args)"


def key_facts(info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Pick the INFO fields worth reading first, plus the key count of each database."""
    facts: dict[str, Any] = {}
    for section, names in _KEPT_FIELDS.items():
        for name in names:
            if name in info.get(section, {}):
                facts[name] = info[section][name]
    for db, stats in sorted(info.get("keyspace", {}).items()):
        if isinstance(stats, dict):
            facts[f"{db}_keys"] = stats.get("keys")
    return facts


def summarise(ping_ms: float, facts: dict[str, Any]) -> str:
    """Say in one line whether Redis answers and how loaded it is."""
    return (
        f"PONG in {ping_ms:g} ms; memory {facts.get('used_memory_human', '?')}, "
        f"{facts.get('connected_clients', '?')} clients, "
        f"persistence {facts.get('rdb_last_bgsave_status', '?')}"
    )
