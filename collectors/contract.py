"""The one contract every collector follows, and the data it returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from triage.diagnostics import Diagnostics
from triage.policy import Service


class Status(StrEnum):
    """How a collector run ended."""

    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Target:
    """What a collector may look at: services from the policy's catalog, never raw labels."""

    services: tuple[Service, ...]
    alert_name: str = ""
    affected: tuple[str, ...] = ()  # catalog names the alert itself names
    expression: str = ""  # the alert's own PromQL, from its generatorURL
    started_at: datetime | None = None  # when the alert started firing (plots mark it)


@dataclass(frozen=True)
class CollectorContext:
    """What a collector may use: endpoints, limits and the redaction function."""

    redis_url: str  # EAFIX's Redis; "" when not configured (the collector is skipped)
    timeout_seconds: float = 5.0
    prometheus_url: str = ""
    postgres_dsn: str = ""
    git_repo: str = ""
    docker_url: str = ""
    compose_project: str = "eafix"
    redact: Callable[[str], str] = lambda text: text
    # The policy's network dependencies and Prometheus queries (network, performance).
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


@dataclass
class Evidence:
    """What one collector found; renderers decide how it is shown."""

    collector: str
    status: Status
    summary: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    duration_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the evidence as JSON-ready data."""
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        """Rebuild evidence from `to_dict` output."""
        return cls(
            collector=data["collector"],
            status=Status(data["status"]),
            summary=data["summary"],
            tables=dict(data.get("tables", {})),
            files=dict(data.get("files", {})),
            duration_seconds=float(data.get("duration_seconds", 0.0)),
        )


Collect = Callable[[Target, CollectorContext], Evidence]
