"""The one vocabulary of evidence: what each collector and each way a check ended is called,
and the one order the checks are told in (failures first, then what ran, then what did not).

Shared by the notes (`voice`), the bundle's HTML view (`bundle_view`) and the incident page
(`webhooks/incident_page_view.py`), so the three never name or order a check differently.
"""

from __future__ import annotations

from collectors.contract import Status

# Failures first: what needs a person; then what ran fine; then what did not run at all.
STATUS_ORDER: tuple[Status, ...] = (Status.FAILED, Status.TIMEOUT, Status.OK, Status.SKIPPED)
STATUS_WORDS: dict[str, str] = {
    Status.FAILED.value: "Failed",
    Status.TIMEOUT.value: "Timed out",
    Status.OK.value: "OK",
    Status.SKIPPED.value: "Skipped",
}
# The built-in collectors (collectors.registry) by name; another one is shown by its own name.
COLLECTOR_LABELS: dict[str, str] = {
    "http": "Service health",
    "trading": "Trading impact",
    "prometheus": "Metrics (Prometheus)",
    "redis": "Redis",
    "postgres": "PostgreSQL",
    "host": "Host",
    "git": "Recent deployments",
    "docker": "Containers",
    "flow": "Trading flow test",
    "network": "Network connectivity",
    "performance": "Queues and latency",
}

_RANK = {status.value: rank for rank, status in enumerate(STATUS_ORDER)}


def status_rank(status: str) -> int:
    """Return where a check that ended so comes in the one order (an unknown ending: last)."""
    return _RANK.get(str(status), len(_RANK))


def status_words(status: str) -> str:
    """Return how a check's ending is said to a reader (an unknown one as it is)."""
    return STATUS_WORDS.get(str(status), str(status))


def collector_label(name: str) -> str:
    """Return what a collector is called to a reader (an unknown one by its name)."""
    return COLLECTOR_LABELS.get(name, name)
