"""The `host` collector: CPU, memory, disk, load and top processes of this machine (psutil)."""

from __future__ import annotations

import json
import os
from typing import Any

import psutil

from collectors.contract import CollectorContext, Evidence, Status, Target

NAME = "host"
TOP_PROCESSES = 10
# Above these the summary calls the resource out; only memory and disk fail the check, since
# CPU spikes are normal while an incident is being diagnosed.
PRESSURE = {"cpu_percent": 90.0, "memory_percent": 90.0, "disk_percent": 90.0}
FAILING = {"memory_percent": 95.0, "disk_percent": 95.0}


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Sample the machine's resources once and list the processes using the most CPU."""
    facts = {
        "cpu_percent": psutil.cpu_percent(interval=min(0.5, ctx.timeout_seconds)),
        "cpu_count": psutil.cpu_count(),
        "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "memory_percent": psutil.virtual_memory().percent,
        "memory_available_mb": round(psutil.virtual_memory().available / 2**20),
        "disk_percent": psutil.disk_usage("/").percent,
        "disk_free_gb": round(psutil.disk_usage("/").free / 2**30, 1),
    }
    processes = top_processes()
    pressed = [
        f"{k.removesuffix('_percent')} {facts[k]:.0f}%"
        for k, v in PRESSURE.items()
        if facts[k] >= v
    ]
    summary = (
        f"cpu {facts['cpu_percent']:.0f}%, load {facts['load_1_5_15'][0]}, "
        f"memory {facts['memory_percent']:.0f}%, disk {facts['disk_percent']:.0f}%"
    )
    return Evidence(
        collector=NAME,
        status=Status.FAILED if any(facts[k] >= v for k, v in FAILING.items()) else Status.OK,
        summary=f"under pressure: {', '.join(pressed)}; {summary}" if pressed else summary,
        tables={
            "facts": [{"field": k, "value": v} for k, v in facts.items()],
            "processes": processes,
        },
        files={
            "host/resources.json": json.dumps({"facts": facts, "processes": processes}, indent=2)
        },
    )


def top_processes() -> list[dict[str, Any]]:
    """Return the processes using the most CPU, then memory; names only, never command lines."""
    rows = []
    # Command lines can carry secrets (a password in argv): only names are kept.
    for process in psutil.process_iter(
        ["pid", "name", "cpu_percent", "memory_percent", "username"]
    ):
        info = process.info
        rows.append({
            "pid": info["pid"],
            "name": info["name"],
            "user": info["username"],
            "cpu_percent": round(info["cpu_percent"] or 0.0, 1),
            "memory_percent": round(info["memory_percent"] or 0.0, 1),
        })  # fmt: skip
    rows.sort(key=lambda r: (r["cpu_percent"], r["memory_percent"]), reverse=True)
    return rows[:TOP_PROCESSES]
