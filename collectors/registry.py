"""The collectors by name, and the one way the pipeline runs any of them.

Built-in collectors are listed here by module, imported on first use; third-party ones come
through the `eafix_responder.collectors` entry-point group. One that fails to import is
reported as skipped with the reason, and the others still run.
"""

from __future__ import annotations

import importlib
import logging
import time
from importlib.metadata import entry_points

from collectors.contract import Collect, CollectorContext, Evidence, Status, Target

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "eafix_responder.collectors"

BUILTIN: dict[str, str] = {
    "http": "collectors.service_health",
    "trading": "collectors.trading_impact",
    "prometheus": "collectors.prometheus_metrics",
    "redis": "collectors.redis_info",
    "postgres": "collectors.postgres",
    "host": "collectors.host",
    "git": "collectors.deployments",
    "docker": "collectors.containers",
    "flow": "collectors.trading_flow",
    "network": "collectors.network",
    "performance": "collectors.performance",
}


def available() -> list[str]:
    """Return the names of every collector, built in or installed as a plugin."""
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def load(name: str) -> Collect:
    """Return collector `name`'s collect function; raise LookupError or ImportError saying why."""
    if name in BUILTIN:
        return importlib.import_module(BUILTIN[name]).collect
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return entry.load()
    raise LookupError(f"no collector named {name!r} is installed")


def run_collector(
    name: str,
    target: Target,
    ctx: CollectorContext,
    timeouts: tuple[type[BaseException], ...] = (),
) -> Evidence:
    """Run collector `name`, turning every failure into an Evidence entry; never raise.

    `timeouts` names the exceptions that mean the run's time ran out (the caller's limit).
    """
    started = time.monotonic()
    try:
        collect = load(name)
    except LookupError as exc:
        return Evidence(name, Status.SKIPPED, str(exc))
    except Exception as exc:  # a broken plugin or a missing dependency: skip it, run the rest
        log.warning("collector %s cannot be loaded: %s", name, exc)
        return Evidence(
            name, Status.SKIPPED, ctx.redact(f"cannot load: {type(exc).__name__}: {exc}")
        )
    try:
        evidence = collect(target, ctx)
    except (TimeoutError, *timeouts):
        evidence = Evidence(name, Status.TIMEOUT, "ran out of time before finishing")
    except Exception as exc:  # a collector bug must not stop the pipeline
        log.exception("collector %s raised", name)
        reason = f"collector error: {type(exc).__name__}: {exc}"
        evidence = Evidence(name, Status.FAILED, ctx.redact(reason))
    evidence.duration_seconds = round(time.monotonic() - started, 3)
    return evidence
