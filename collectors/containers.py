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
LOG_WINDOW = timedelta(minutes=15)
ERROR_LINE = re.compile(r"ERROR|CRITICAL|Exception")
KEPT_LOG_LINES = 50
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
    for container in containers:
        service = container.labels.get("com.docker.compose.service", "")
        if service not in in_catalog:
            continue  # only containers of catalog services: the alert never chooses others
        row = ps_row(container, in_catalog[service])
        broken = row["state"] != "running" or row["health"] not in ("healthy", "none")
        if in_catalog[service] in focus or broken:
            lines = error_lines(container)
            row["error_lines"] = len(lines)
            if lines:
                files[f"docker/{service}.errors.log"] = "\n".join(lines) + "\n"
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


def error_lines(container: Any) -> list[str]:
    """Return the last ERROR/CRITICAL/Exception lines of the last 15 minutes of logs."""
    since = datetime.now(UTC) - LOG_WINDOW
    raw = container.logs(since=since, tail=2000, timestamps=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return [line for line in text.splitlines() if ERROR_LINE.search(line)][-KEPT_LOG_LINES:]


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
    """Say how many containers run and which are not running, unhealthy or logging errors."""
    running = sum(1 for r in rows if r["state"] == "running")
    parts = [f"{running}/{len(rows)} containers running"]
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
