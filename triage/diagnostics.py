"""The runbook's missing diagnostics as data, and the pure judgements over what they measured.

- Network/Connectivity: `docker exec <container> ping <target-container>` and
  `curl -I https://api.external-broker.com/`: the policy lists the external dependencies; only
  they (and the catalog's own hosts) are ever contacted, never an address an alert carries.
- Root Cause Analysis, Performance Issues 3 and 4: "Review message queue depths", "Check
  network latency between services": two PromQL queries the policy names, their series matched
  to catalog services and topology edges by label.
- Validation 4, "Performance test" (`latency-test.py`): p99 latency under the policy's threshold.

No network, no clock: the collectors measure, these functions judge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Validation 4's defaults: the demo's signals take 0.02-0.2 s; the runbook's P1 line is 5 s
# ("Significant latency increase (>5s for signals)"), its P2 anything slower than normal, so a
# fix passes when the p99 is back well under a second.
DEFAULT_LATENCY_QUERY = (
    "histogram_quantile(0.99, sum by (le) (rate(eafix_signal_latency_seconds_bucket[5m])))"
)
DEFAULT_P99_UNDER_SECONDS = 1.0
DEFAULT_PROBE_TIMEOUT_SECONDS = 3.0
DEFAULT_QUEUE_QUERY = "max by (service) (eafix_queue_depth)"
DEFAULT_QUEUE_DEEP_ABOVE = 100.0
DEFAULT_EDGE_QUERY = (
    "histogram_quantile(0.99, sum by (le, upstream, service) "
    "(rate(eafix_edge_latency_seconds_bucket[5m])))"
)
DEFAULT_EDGE_SLOW_ABOVE_SECONDS = 1.0


@dataclass(frozen=True)
class Dependency:
    """An external dependency the `network` collector probes: the only addresses it contacts."""

    name: str
    host: str
    port: int
    url: str = ""  # an http(s) URL is also sent a HEAD; "" for a TCP connect alone
    runbook: str = ""

    @property
    def address(self) -> str:
        """Return `host:port`, as a note shows it."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NetworkCheck:
    """What the `network` collector does: the dependencies, from where, within what time."""

    dependencies: tuple[Dependency, ...] = ()
    timeout_seconds: float = DEFAULT_PROBE_TIMEOUT_SECONDS
    # Catalog services whose containers probe when the alert names none of them.
    from_containers: tuple[str, ...] = ()
    runbook: str = "Network/Connectivity: docker exec <container> ping <target-container>; curl -I https://api.external-broker.com/"


@dataclass(frozen=True)
class SeriesQuery:
    """A PromQL query whose series are matched to the catalog by label, and its threshold."""

    query: str
    over: float
    runbook: str = ""


@dataclass(frozen=True)
class Diagnostics:
    """The policy's `diagnostics` section, every part with its default."""

    network: NetworkCheck = field(default_factory=NetworkCheck)
    queue_depth: SeriesQuery = field(
        default_factory=lambda: SeriesQuery(
            DEFAULT_QUEUE_QUERY, DEFAULT_QUEUE_DEEP_ABOVE,
            "Root Cause Analysis, Performance Issues 3: Review message queue depths",
        )
    )  # fmt: skip
    edge_latency: SeriesQuery = field(
        default_factory=lambda: SeriesQuery(
            DEFAULT_EDGE_QUERY, DEFAULT_EDGE_SLOW_ABOVE_SECONDS,
            "Root Cause Analysis, Performance Issues 4: Check network latency between services",
        )
    )  # fmt: skip


@dataclass(frozen=True)
class LatencyTest:
    """Validation 4, the performance test: the p99 latency query and the most it may read."""

    query: str = DEFAULT_LATENCY_QUERY
    p99_under_seconds: float = DEFAULT_P99_UNDER_SECONDS
    runbook: str = "Validation 4: Performance test (python scripts/performance/latency-test.py)"


def dependency_of(raw: Mapping[str, Any]) -> Dependency:
    """Return a dependency from its policy entry: `url` (host and port from it) or `tcp`."""
    if url := raw.get("url"):
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return Dependency(raw["name"], parts.hostname or "", port, url, raw.get("runbook", ""))
    host, _, port = str(raw["tcp"]).rpartition(":")
    return Dependency(raw["name"], host.strip("[]"), int(port), "", raw.get("runbook", ""))


def diagnostics_of(raw: Mapping[str, Any], seconds: Any) -> Diagnostics:
    """Return the `diagnostics` section as data; `seconds` turns a duration text into seconds."""
    defaults = Diagnostics()
    network = raw.get("network", {})
    found = Diagnostics(
        network=NetworkCheck(
            dependencies=tuple(dependency_of(d) for d in raw.get("external_dependencies", ())),
            timeout_seconds=(
                seconds(network["timeout"]) if "timeout" in network
                else DEFAULT_PROBE_TIMEOUT_SECONDS
            ),
            from_containers=tuple(network.get("from_containers", ())),
        ),
        queue_depth=_series_query(raw.get("queue_depth", {}), defaults.queue_depth, "deep_above",
                                  float),
        edge_latency=_series_query(raw.get("edge_latency", {}), defaults.edge_latency,
                                   "slow_above", seconds),
    )  # fmt: skip
    return found


def latency_test_of(raw: Mapping[str, Any] | bool, seconds: Any) -> LatencyTest | None:
    """Return a validation's latency test (`latency: true` takes every default), or None."""
    if raw is False:
        return None
    if raw is True:
        return LatencyTest()
    return LatencyTest(
        query=raw.get("query", DEFAULT_LATENCY_QUERY),
        p99_under_seconds=(
            seconds(raw["p99_under"]) if "p99_under" in raw else DEFAULT_P99_UNDER_SECONDS
        ),
    )


def _series_query(
    raw: Mapping[str, Any], default: SeriesQuery, key: str, convert: Any
) -> SeriesQuery:
    return SeriesQuery(
        query=raw.get("query", default.query),
        over=convert(raw[key]) if key in raw else default.over,
        runbook=default.runbook,
    )


# --- judging what was measured -------------------------------------------------------------


@dataclass(frozen=True)
class LatencyVerdict:
    """Validation 4's answer: passed, failed or no data, with the measured value said."""

    result: str  # passed | failed | no data
    measured: float | None
    line: str

    @property
    def passed(self) -> bool:
        """Return whether the latency test passed: never without a measurement."""
        return self.result == "passed"


def judge_latency(measured: float | None, under: float, why_none: str = "") -> LatencyVerdict:
    """Judge a measured p99 against the threshold; None or NaN is no data, never a pass."""
    if measured is None or math.isnan(measured):
        reason = why_none or "Prometheus returned no series for the query"
        return LatencyVerdict("no data", None, f"no data: {reason}; threshold {_secs(under)}")
    if measured < under:
        return LatencyVerdict("passed", measured, f"p99 {_secs(measured)} < {_secs(under)}")
    return LatencyVerdict("failed", measured, f"p99 {_secs(measured)}, not under {_secs(under)}")


def judge_series(
    keys: Iterable[str],
    values: Mapping[str, float],
    over: float,
    unit: str,
) -> list[dict[str, Any]]:
    """Return one row per expected key (service or edge): its value, and whether it is over.

    A key without a value says "no data" (never "ok"); values of keys not expected are left
    out: only catalog services and topology edges are reported.
    """
    rows = []
    for key in keys:
        value = values.get(key)
        if value is None or math.isnan(value):
            rows.append({"name": key, "value": None, "state": "no data", "shown": "no data"})
            continue
        state = "over" if value > over else "ok"
        rows.append({"name": key, "value": value, "state": state, "shown": _shown(value, unit)})
    return rows


def topology_edges(depends_on: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """Return every (upstream, service) edge of the catalog, in catalog order."""
    return [(up, name) for name, ups in depends_on.items() for up in ups]


def edge_name(upstream: str, service: str) -> str:
    """Return how an edge is named in tables and notes."""
    return f"{upstream} -> {service}"


def probe_outcome(
    *, refused: bool = False, timed_out: bool = False, error: str = "", status: int | None = None
) -> tuple[bool, str]:
    """Return (reached, why) of one probe, from what the attempt saw.

    A refused or timed-out connection, any other error, and an HTTP status of 500 or more are
    failures; 4xx means the dependency answered (HEAD may be refused by design).
    """
    if refused:
        return False, "connection refused"
    if timed_out:
        return False, "timed out"
    if error:
        return False, error
    if status is not None:
        return status < 500, f"HTTP {status}"
    return True, "connected"


# What the fixed commands' exit codes mean (curl(1) EXIT CODES; ping(8): 1 no reply, 2 error).
_EXIT_WORDS = {
    "curl": {6: "host not found", 7: "connection refused", 28: "timed out"},
    "ping": {1: "no reply", 2: "ping error (host not found?)"},
}
_STATUS_LINE = re.compile(r"HTTP/[\d.]+ (\d{3})")


def exec_outcome(exit_code: int | None, output: str, program: str) -> tuple[bool, str]:
    """Return (reached, why) of a probe run inside a container, from its exit code and output.

    `curl -I` prints the status line first: its HTTP status is judged as the responder's own.
    """
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if exit_code is None:
        return False, "did not finish"
    if exit_code in (126, 127):
        return False, f"{program} is not runnable in the container (exit {exit_code})"
    if exit_code != 0:
        why = _EXIT_WORDS.get(program, {}).get(exit_code, "")
        return False, f"exit {exit_code}" + (f": {why}" if why else "")
    status = _STATUS_LINE.match(lines[0]) if lines else None
    if status:
        return probe_outcome(status=int(status.group(1)))
    return True, lines[-1][:160] if lines else "exit 0"


def _secs(value: float) -> str:
    return f"{value:.3g} s"


def _shown(value: float, unit: str) -> str:
    return f"{value:.3g} s" if unit == "seconds" else f"{value:.3g}"
