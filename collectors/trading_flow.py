"""The `flow` collector: the runbook's Validation 3, the trading flow test.

    curl -X POST http://localhost:8081/test/simulate-tick
    sleep 2
    curl http://localhost:8083/api/signals?limit=1

Both calls go to the catalog's `flow_test` paths on the catalog's hosts, never to a URL from
an alert. The test passes when a signal made after the tick comes back within SIGNAL_WITHIN.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from collectors.contract import CollectorContext, Evidence, Status, Target
from triage.policy import Service, service_endpoint

NAME = "flow"
SIGNAL_WITHIN = 2.0  # seconds: the runbook's `sleep 2`
POLL_EVERY = 0.25
# Another host's clock may run a little behind ours: a signal this much "before" the tick counts.
CLOCK_SKEW = timedelta(seconds=1)
TIME_FIELDS = ("at", "time", "timestamp", "created_at", "emitted_at")


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Post the catalog's test tick, then look for a signal made after it."""
    tick = _step(target.services, "tick")
    signal = _step(target.services, "signal")
    if tick is None or signal is None:
        missing = " and ".join(n for n, s in (("tick", tick), ("signal", signal)) if s is None)
        return Evidence(NAME, Status.SKIPPED, f"the catalog names no flow_test {missing}")
    with requests.Session() as session:
        return run_flow(session, tick, signal, ctx)


def run_flow(
    session: requests.Session,
    tick: tuple[Service, str],
    signal: tuple[Service, str],
    ctx: CollectorContext,
    within: float = SIGNAL_WITHIN,
    sleep: Callable[[float], None] = time.sleep,
) -> Evidence:
    """Tick, then poll for a signal newer than the tick for up to `within` seconds."""
    (ticked, tick_path), (signalled, signal_path) = tick, signal
    ticked_at = datetime.now(UTC)
    try:
        answer = session.post(
            _url(ticked, tick_path), timeout=ctx.timeout_seconds, allow_redirects=False
        )
    except requests.RequestException as exc:
        return Evidence(
            NAME, Status.FAILED, f"tick not sent to {ticked.name}: {type(exc).__name__}"
        )
    if not answer.ok:
        why = f"HTTP {answer.status_code}"
        return Evidence(NAME, Status.FAILED, f"tick refused by {ticked.name} {tick_path}: {why}")
    deadline = time.monotonic() + within
    while True:
        newest, problem = _newest_signal(session, _url(signalled, signal_path), ctx)
        status, summary = judge(newest, problem, ticked_at, within)
        if status is Status.OK or problem or time.monotonic() >= deadline:
            break
        sleep(POLL_EVERY)
    steps = [
        {"step": "tick", "service": ticked.name, "path": tick_path, "at": ticked_at.isoformat()},
        {"step": "signal", "service": signalled.name, "path": signal_path, "newest": newest},
    ]
    where = f"{ticked.name} {tick_path}, then {signalled.name} {signal_path}"
    return Evidence(NAME, status, ctx.redact(f"{summary} ({where})"), tables={"steps": steps})


def judge(newest: Any, problem: str, ticked_at: datetime, within: float) -> tuple[Status, str]:
    """Say whether the newest signal shows the tick went through: OK, or FAILED and why."""
    if problem:
        return Status.FAILED, f"tick accepted; the signals endpoint is {problem}"
    if newest is None:
        return Status.FAILED, f"tick accepted; no signal at all within {within:g} s"
    at = signal_time(newest)
    if at is None:
        # Nothing to compare with the tick: say so rather than pass or fail it on a guess.
        return Status.OK, "tick accepted; a signal came back (it carries no time: it may be older)"
    if at >= ticked_at - CLOCK_SKEW:
        after = max((at - ticked_at).total_seconds(), 0.0)
        return Status.OK, f"tick accepted; a signal {after:.1f} s after it"
    return Status.FAILED, (
        f"tick accepted; no signal after it within {within:g} s "
        f"(the newest is from {at:%H:%M:%S} UTC)"
    )


def signal_time(signal: Mapping[str, Any] | Any) -> datetime | None:
    """Return when a signal was made, from the first time field it has, or None."""
    if not isinstance(signal, Mapping):
        return None
    for name in TIME_FIELDS:
        value = signal.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):  # no time a clock can read
                continue
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _newest_signal(session: requests.Session, url: str, ctx: CollectorContext) -> tuple[Any, str]:
    """Return the newest signal the endpoint lists (None: none), and a problem, if any."""
    try:
        answer = session.get(url, timeout=ctx.timeout_seconds, allow_redirects=False)
        body = answer.json() if answer.ok else None
    except (requests.RequestException, ValueError) as exc:
        return None, f"unavailable ({type(exc).__name__})"
    if body is None:
        return None, f"unavailable (HTTP {answer.status_code})"
    signals = (
        body if isinstance(body, list) else body.get("signals") if isinstance(body, dict) else None
    )
    if not isinstance(signals, list):
        return None, "answering something that is not a list of signals"
    if not signals:
        return None, ""
    timed = [(at, n, s) for n, s in enumerate(signals) if (at := signal_time(s)) is not None]
    # The latest by its own time; with no times, the last listed (the runbook's `limit=1`).
    return (max(timed)[2] if timed else signals[-1]), ""


def _step(services: tuple[Service, ...], step: str) -> tuple[Service, str] | None:
    return next(((s, s.flow_test[step]) for s in services if step in s.flow_test), None)


def _url(service: Service, path: str) -> str:
    return service_endpoint(service, path)  # the catalog's host, the catalog's path
