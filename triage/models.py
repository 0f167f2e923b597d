"""The domain's data: alerts as Alertmanager sends them, priorities and classifications."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Priority(StrEnum):
    """The runbook's incident priorities, P0 the most severe."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        """Return 0 for P0 up to 3 for P3: lower is more severe."""
        return int(self.value[1])


class PayloadError(ValueError):
    """A webhook payload that cannot be used, naming the offending field."""

    def __init__(self, field_path: str, problem: str) -> None:
        super().__init__(f"{field_path}: {problem}")
        self.field = field_path
        self.problem = problem


# Alertmanager marks a firing alert's end with Go's zero time.
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Alert:
    """One alert of an Alertmanager group."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    starts_at_raw: str
    ends_at: datetime | None
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        """Return the alert's `alertname` label, or a placeholder."""
        return self.labels.get("alertname", "(unnamed alert)")

    @property
    def summary(self) -> str:
        """Return the alert's summary annotation, falling back to its name."""
        return self.annotations.get("summary") or self.annotations.get("description") or self.name

    @property
    def dedup_key(self) -> str:
        """Return the key under which repeats of this alert state are recognised."""
        return f"{self.fingerprint}:{self.status}:{self.starts_at_raw}"


@dataclass(frozen=True)
class AlertGroup:
    """An Alertmanager webhook notification (payload version 4)."""

    receiver: str
    status: str
    alerts: tuple[Alert, ...]
    group_key: str
    group_labels: Mapping[str, str] = field(default_factory=dict)
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0
    notification_reason: str | None = None

    @property
    def incident_key(self) -> str:
        """Return the PagerDuty incident key Alertmanager's own receiver derives from the group."""
        return hashlib.sha256(self.group_key.encode()).hexdigest()

    @property
    def firing(self) -> tuple[Alert, ...]:
        """Return the alerts of the group that are still firing."""
        return tuple(a for a in self.alerts if a.status == "firing")


@dataclass(frozen=True)
class Classification:
    """The priority chosen for an alert, the rule that chose it and why."""

    priority: Priority
    rule: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """Return the classification as plain JSON-ready data."""
        return {"priority": self.priority.value, "rule": self.rule, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Classification:
        """Rebuild a classification from `to_dict` output."""
        return cls(Priority(data["priority"]), data["rule"], data["reason"])


@dataclass(frozen=True)
class ListedAlert:
    """What a note lists of one alert: its name, its priority, its labels and its summary."""

    name: str
    priority: Priority
    labels: Mapping[str, str]
    summary: str

    @classmethod
    def of(cls, alert: Alert, classification: Classification) -> ListedAlert:
        """Return the listing of `alert` classified as `classification`."""
        return cls(alert.name, classification.priority, dict(alert.labels), alert.summary)

    def to_dict(self) -> dict[str, Any]:
        """Return the listing as plain JSON-ready data."""
        return {
            "name": self.name,
            "priority": self.priority.value,
            "labels": dict(self.labels),
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ListedAlert:
        """Rebuild a listing from `to_dict` output."""
        return cls(data["name"], Priority(data["priority"]), dict(data["labels"]), data["summary"])


def parse_alertmanager(payload: Any) -> AlertGroup:
    """Parse an Alertmanager version-4 webhook payload, raising PayloadError on bad fields."""
    if not isinstance(payload, Mapping):
        raise PayloadError("(body)", "expected a JSON object")
    version = payload.get("version")
    if version != "4":
        raise PayloadError("version", f'expected "4", got {version!r}')
    alerts_raw = payload.get("alerts")
    if not isinstance(alerts_raw, list) or not alerts_raw:
        raise PayloadError("alerts", "expected a non-empty list")
    alerts = tuple(_parse_alert(a, f"alerts[{i}]") for i, a in enumerate(alerts_raw))
    truncated = payload.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("truncatedAlerts", "expected a non-negative integer")
    reason = payload.get("notification_reason")
    if reason is not None and not isinstance(reason, str):
        raise PayloadError("notification_reason", "expected a string")
    return AlertGroup(
        receiver=_string(payload, "receiver", "receiver", required=False),
        status=_status(payload.get("status"), "status"),
        alerts=alerts,
        group_key=_string(payload, "groupKey", "groupKey"),
        group_labels=_string_map(payload.get("groupLabels"), "groupLabels"),
        common_labels=_string_map(payload.get("commonLabels"), "commonLabels"),
        common_annotations=_string_map(payload.get("commonAnnotations"), "commonAnnotations"),
        external_url=_string(payload, "externalURL", "externalURL", required=False),
        truncated_alerts=truncated,
        notification_reason=reason,
    )


def _parse_alert(raw: Any, where: str) -> Alert:
    if not isinstance(raw, Mapping):
        raise PayloadError(where, "expected an object")
    starts_raw = _string(raw, "startsAt", f"{where}.startsAt")
    ends_raw = _string(raw, "endsAt", f"{where}.endsAt", required=False)
    return Alert(
        status=_status(raw.get("status"), f"{where}.status"),
        labels=_string_map(raw.get("labels"), f"{where}.labels"),
        annotations=_string_map(raw.get("annotations"), f"{where}.annotations"),
        starts_at=_timestamp(starts_raw, f"{where}.startsAt"),
        starts_at_raw=starts_raw,
        ends_at=None
        if ends_raw in ("", _GO_ZERO_TIME)
        else _timestamp(ends_raw, f"{where}.endsAt"),
        generator_url=_string(raw, "generatorURL", f"{where}.generatorURL", required=False),
        fingerprint=_string(raw, "fingerprint", f"{where}.fingerprint"),
    )


def _status(value: Any, where: str) -> str:
    if value not in ("firing", "resolved"):
        raise PayloadError(where, f'expected "firing" or "resolved", got {value!r}')
    return value


def _string(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise PayloadError(where, "expected a non-empty string")
    return value


def _string_map(value: Any, where: str) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise PayloadError(where, "expected an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{where}.{key}", "expected a string")
    return MappingProxyType(dict(value))


def _timestamp(value: str, where: str) -> datetime:
    try:
        # Go writes RFC 3339 with up to nanoseconds; Python takes at most microseconds.
        text = value.replace("Z", "+00:00")
        head, sep, tail = text.partition(".")
        if sep:
            zone = tail.lstrip("0123456789")
            digits = tail[: len(tail) - len(zone)]
            text = f"{head}.{digits[:6]}{zone}"
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(where, f"expected an RFC 3339 timestamp, got {value!r}") from None
    if parsed.tzinfo is None:
        raise PayloadError(where, "timestamp has no time zone")
    return parsed


@dataclass(frozen=True)
class Incident:
    """A PagerDuty incident as a v3 webhook describes it."""

    id: str
    title: str
    status: str
    urgency: str = ""
    priority: str = ""
    service: str = ""
    incident_key: str = ""
    html_url: str = ""

    def to_dict(self) -> dict[str, str]:
        """Return the incident as plain JSON-ready data."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Incident:
        """Rebuild an incident from `to_dict` output."""
        return cls(**data)


# The one table of PagerDuty events that start a response (the webhook and replay read it):
# True where the new run takes the incident over from one already running (a reopen).
STARTS_RESPONSE: Mapping[str, bool] = {"incident.triggered": False, "incident.reopened": True}
# Events that only update the stored incident record (status, who, when).
UPDATES_INCIDENT = frozenset(
    {
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.resolved",
        "incident.escalated",
        "incident.reassigned",
        "incident.delegated",
        "incident.priority_updated",
    }
)


@dataclass(frozen=True)
class IncidentEvent:
    """One PagerDuty Webhooks v3 event (`incident.*` or `pagey.ping`)."""

    id: str
    event_type: str
    occurred_at: datetime | None
    incident: Incident | None
    data_type: str = ""
    agent: Mapping[str, Any] | None = None
    note_id: str = ""
    note_incident_id: str = ""
    note_content: str = ""
    note_trimmed: bool = False  # PagerDuty shortened a long note's content in the webhook

    @property
    def starts_response(self) -> bool:
        """Return True when the event starts a response to its incident (STARTS_RESPONSE)."""
        return self.event_type in STARTS_RESPONSE and self.incident is not None

    @property
    def agent_name(self) -> str:
        """Return who or what caused the event, as PagerDuty summarises it."""
        return str((self.agent or {}).get("summary") or (self.agent or {}).get("id") or "")


def parse_pagerduty(payload: Any) -> IncidentEvent:
    """Parse a PagerDuty v3 webhook body, raising PayloadError on bad fields."""
    if not isinstance(payload, Mapping):
        raise PayloadError("(body)", "expected a JSON object")
    event = payload.get("event")
    if not isinstance(event, Mapping):
        raise PayloadError("event", "expected an object")
    event_id = _string(event, "id", "event.id")
    event_type = _string(event, "event_type", "event.event_type")
    occurred_raw = _string(event, "occurred_at", "event.occurred_at", required=False)
    occurred = _timestamp(occurred_raw, "event.occurred_at") if occurred_raw else None
    data = event.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise PayloadError("event.data", "expected an object")
    agent = event.get("agent")
    if agent is not None and not isinstance(agent, Mapping):
        raise PayloadError("event.agent", "expected an object or null")
    data_type = str((data or {}).get("type", ""))
    incident = _parse_incident(data, "event.data") if data_type == "incident" else None
    note_id = note_incident = note_content = ""
    note_trimmed = False
    if data_type == "incident_note" and data is not None:
        note_id = str(data.get("id") or "")
        note_content = str(data.get("content") or "")
        note_trimmed = data.get("trimmed") is True
        ref = data.get("incident")
        note_incident = str(ref.get("id") or "") if isinstance(ref, Mapping) else ""
    return IncidentEvent(
        event_id,
        event_type,
        occurred,
        incident,
        data_type,
        agent,
        note_id,
        note_incident,
        note_content,
        note_trimmed,
    )


def _parse_incident(data: Mapping[str, Any], where: str) -> Incident:
    def summary(key: str) -> str:
        ref = data.get(key)
        if ref is None:
            return ""
        if not isinstance(ref, Mapping):
            raise PayloadError(f"{where}.{key}", "expected an object or null")
        return str(ref.get("summary") or ref.get("name") or "")

    return Incident(
        id=_string(data, "id", f"{where}.id"),
        title=_string(data, "title", f"{where}.title", required=False),
        status=_string(data, "status", f"{where}.status", required=False),
        urgency=_string(data, "urgency", f"{where}.urgency", required=False),
        priority=summary("priority"),
        service=summary("service"),
        incident_key=_string(data, "incident_key", f"{where}.incident_key", required=False),
        html_url=_string(data, "html_url", f"{where}.html_url", required=False),
    )
