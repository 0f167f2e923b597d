"""The `docker` collector: compose ps, filtered recent logs and one-shot stats (Docker SDK)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import DockerException

from collectors.contract import CollectorContext, Evidence, Status, Target

NAME = "docker"
# Initial Diagnosis 3: `docker compose logs --since=15m | grep -i error`, for every container;
# the Quick Reference's `grep -E "(ERROR|CRITICAL|Exception)"` adds the other two words.
LOG_WINDOW = timedelta(minutes=15)
ERROR_LINE = re.compile(r"error|critical|exception", re.IGNORECASE)
KEPT_LOG_LINES = 50  # error lines saved per container (all of them are counted)
# Data Collection 1: `docker compose logs --since=1h > incident_logs_...txt`, for each affected
# container, whole but for a bound: the latest SAVED_LOG_BYTES of the hour are kept.
SAVED_LOG_WINDOW = timedelta(hours=1)
SAVED_LOG_BYTES = 500_000
# Lines asked of the engine at most, so that one chatty container cannot fill the worker's memory.
TAIL_LINES = 20_000
API_VERSION = "1.43"


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """List the compose project's containers; logs and stats for the services in question."""
    if not ctx.docker_url:
        return Evidence(NAME, Status.SKIPPED, "no Docker engine configured (RESPONDER_DOCKER_URL)")
    socket_path = ctx.docker_url.removeprefix("unix://")
    if ctx.docker_url.startswith("unix://") and not Path(socket_path).exists():
        # Checked here: the SDK leaks its socket when connecting to a missing path fails.
        return Evidence(NAME, Status.FAILED, f"Docker engine error: no socket at {socket_path}")
    try:
        client = docker.DockerClient(
            base_url=ctx.docker_url, version=API_VERSION, timeout=max(1, int(ctx.timeout_seconds))
        )
    except DockerException as exc:
        return Evidence(NAME, Status.SKIPPED, ctx.redact(f"Docker SDK cannot connect: {exc}"))
    try:
        return _collect(client, target, ctx)
    except DockerException as exc:
        return Evidence(NAME, Status.FAILED, ctx.redact(f"Docker engine error: {exc}"))
    except requests.RequestException as exc:
        reason = type(exc.__context__ or exc).__name__
        return Evidence(NAME, Status.FAILED, f"Docker engine error: unreachable ({reason})")
    finally:
        client.close()


def _collect(client: docker.DockerClient, target: Target, ctx: CollectorContext) -> Evidence:
    label = f"com.docker.compose.project={ctx.compose_project}"
    containers = client.containers.list(all=True, filters={"label": label})
    in_catalog = {s.compose_service or s.name: s.name for s in target.services}
    focus = set(target.affected) or set(in_catalog.values())
    rows, files = [], {}
    now = datetime.now(UTC)
    for container in containers:
        service = container.labels.get("com.docker.compose.service", "")
        if service not in in_catalog:
            continue  # only containers of catalog services: the alert never chooses others
        row = ps_row(container, in_catalog[service])
        # Every container's errors count: the cause is often beside the alerted service.
        count, lines = error_lines(container, now)
        row["error_lines"] = count
        if lines:
            files[f"docker/{service}.errors.log"] = "\n".join(lines) + "\n"
        broken = row["state"] != "running" or row["health"] not in ("healthy", "none")
        if in_catalog[service] in focus or broken:
            files[f"docker/{service}.log"] = recent_log(container, now)
            if row["state"] == "running":
                row.update(stats_of(container))
        rows.append(row)
    files["docker/ps.json"] = json.dumps(rows, indent=2)
    return Evidence(
        collector=NAME,
        status=Status.FAILED if any(_broken(r) for r in rows) else Status.OK,
        summary=summarise(rows),
        tables={"containers": rows},
        files=files,
    )


def ps_row(container: Any, service: str) -> dict[str, Any]:
    """Return compose-ps facts of a container; never its environment or command."""
    state = container.attrs.get("State", {})
    return {
        "service": service,
        "container": container.name,
        "state": state.get("Status", "unknown"),
        "health": (state.get("Health") or {}).get("Status", "none"),
        "restarts": container.attrs.get("RestartCount", 0),
        "started_at": state.get("StartedAt", ""),
    }


def error_lines(container: Any, now: datetime) -> tuple[int, list[str]]:
    """Return how many lines of the last 15 minutes say error (any case), and the latest ones."""
    found = [line for line in _log_lines(container, now - LOG_WINDOW) if ERROR_LINE.search(line)]
    return len(found), found[-KEPT_LOG_LINES:]


def recent_log(container: Any, now: datetime) -> str:
    """Return the container's log of the last hour, its latest SAVED_LOG_BYTES if longer."""
    return keep_latest(_log_lines(container, now - SAVED_LOG_WINDOW), SAVED_LOG_BYTES)


def keep_latest(lines: list[str], limit: int) -> str:
    """Return the lines as text; past `limit` bytes the oldest whole lines go, saying so."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line.encode()) + 1
        if size > limit:
            break
        kept.append(line)
    kept.reverse()
    dropped = len(lines) - len(kept)
    head = f"[... {dropped} earlier lines of the hour cut: the latest {limit} bytes are kept]\n"
    body = "".join(f"{line}\n" for line in kept)
    return head + body if dropped else body


def _log_lines(container: Any, since: datetime) -> list[str]:
    # Timestamps on: the engine prefixes each line with when it was written (RFC 3339).
    raw = container.logs(since=int(since.timestamp()), tail=TAIL_LINES, timestamps=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.splitlines()


def stats_of(container: Any) -> dict[str, Any]:
    """Return one-shot CPU, memory and network figures, as `docker stats --no-stream` shows."""
    stats = container.stats(stream=False)
    cpu, pre = stats.get("cpu_stats", {}), stats.get("precpu_stats", {})
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or 1
    memory = stats.get("memory_stats", {})
    networks = stats.get("networks", {}).values()
    return {
        "cpu_percent": round(cpu_delta / system_delta * cpus * 100, 1) if system_delta > 0 else 0.0,
        "memory_mb": round(memory.get("usage", 0) / 2**20, 1),
        "memory_limit_mb": round(memory.get("limit", 0) / 2**20, 1),
        "net_rx_kb": round(sum(n.get("rx_bytes", 0) for n in networks) / 1024, 1),
        "net_tx_kb": round(sum(n.get("tx_bytes", 0) for n in networks) / 1024, 1),
    }


def summarise(rows: list[dict[str, Any]]) -> str:
    """Say how many containers run, how many error lines they logged, and which are in trouble."""
    running = sum(1 for r in rows if r["state"] == "running")
    parts = [f"{running}/{len(rows)} containers running"]
    if errors := sum(r.get("error_lines", 0) for r in rows):
        parts[0] += f", {errors} error lines in the last 15 min"
    for row in rows:
        trouble = []
        if row["state"] != "running":
            trouble.append(row["state"])
        if row["health"] not in ("healthy", "none"):
            trouble.append(row["health"])
        if row.get("restarts"):
            trouble.append(f"{row['restarts']} restarts")
        if row.get("error_lines"):
            trouble.append(f"{row['error_lines']} error lines")
        if trouble:
            parts.append(f"{row['service']} {', '.join(trouble)}")
    return "; ".join(parts)


def _broken(row: dict[str, Any]) -> bool:
    return row["state"] != "running" or row["health"] not in ("healthy", "none")
