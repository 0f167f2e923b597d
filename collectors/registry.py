"""The built-in collectors by name, and the one way the pipeline runs any of them."""

from __future__ import annotations

import logging
import time

from collectors import prometheus_metrics, redis_info, service_health, trading_impact
from collectors.contract import Collect, CollectorContext, Evidence, Status, Target

log = logging.getLogger(__name__)

BUILTIN: dict[str, Collect] = {
    service_health.NAME: service_health.collect,
    redis_info.NAME: redis_info.collect,
    prometheus_metrics.NAME: prometheus_metrics.collect,
    trading_impact.NAME: trading_impact.collect,
}


def run_collector(
    name: str,
    target: Target,
    ctx: CollectorContext,
    timeouts: tuple[type[BaseException], ...] = (),
) -> Evidence:
    """Run collector `name`, turning every failure into an Evidence entry; never raise.

    `timeouts` names the exceptions that mean the run's time ran out (the caller's limit).
    """
    collect = BUILTIN.get(name)
    if collect is None:
        return Evidence(name, Status.SKIPPED, f"no collector named {name!r} is installed")
    started = time.monotonic()
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
