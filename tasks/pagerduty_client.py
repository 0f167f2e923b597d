"""The one module that talks to PagerDuty: the REST API v2 client, or the outbox without a token."""

from __future__ import annotations

import json
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pagerduty

from tasks.settings import Settings

log = logging.getLogger(__name__)


class PagerDutyUnavailable(RuntimeError):
    """A PagerDuty call failed; the message is safe to store (no secrets)."""


@dataclass(frozen=True)
class IncidentRef:
    """The incident a pipeline writes to: its id, or only its key in outbox mode."""

    id: str | None
    incident_key: str

    @property
    def label(self) -> str:
        """Return how the incident is named in logs and the delivery record."""
        return self.id or f"incident_key={self.incident_key}"


class PagerDutyGateway(Protocol):
    """What the pipeline needs from PagerDuty."""

    def find_incident(self, incident_key: str) -> IncidentRef | None:
        """Return the incident whose key is `incident_key`, or None if it does not exist yet."""
        ...

    def create_note(self, incident: IncidentRef, content: str) -> dict[str, Any]:
        """Add a note to the incident and return PagerDuty's note object."""
        ...


class RestGateway:
    """PagerDuty REST API v2 through `pagerduty.RestApiV2Client`."""

    def __init__(self, client: pagerduty.RestApiV2Client, redact: Callable[[str], str]) -> None:
        self.client = client
        self.redact = redact

    def find_incident(self, incident_key: str) -> IncidentRef | None:
        """Look the incident up by key over all time (the default window is one month)."""
        params = {"incident_key": incident_key, "date_range": "all"}
        try:
            incidents = self.client.list_all("incidents", params=params)
        except pagerduty.Error as exc:
            raise PagerDutyUnavailable(self._why("GET /incidents", exc)) from None
        if not incidents:
            return None
        return IncidentRef(incidents[0]["id"], incident_key)

    def create_note(self, incident: IncidentRef, content: str) -> dict[str, Any]:
        """POST /incidents/{id}/notes with the note content."""
        if incident.id is None:
            raise PagerDutyUnavailable(f"no incident id for {incident.label}")
        try:
            return self.client.rpost(f"/incidents/{incident.id}/notes", json={"content": content})
        except pagerduty.Error as exc:
            raise PagerDutyUnavailable(self._why("POST notes", exc)) from None

    def _why(self, call: str, exc: pagerduty.Error) -> str:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        detail = f"HTTP {status}" if status else type(exc).__name__
        return self.redact(f"PagerDuty {call} failed: {detail}")


class OutboxGateway:
    """Write each call the REST gateway would make to a JSON file instead (no token set)."""

    def __init__(self, directory: Path, from_email: str) -> None:
        self.directory = directory
        self.from_email = from_email

    def find_incident(self, incident_key: str) -> IncidentRef | None:
        """Return a reference by key alone: without a token nothing can be looked up."""
        return IncidentRef(None, incident_key)

    def create_note(self, incident: IncidentRef, content: str) -> dict[str, Any]:
        """Write the note call to the outbox and return a note-shaped record of it."""
        path = incident.id or "{id}"
        call = {
            "method": "POST",
            "path": f"/incidents/{path}/notes",
            "incident_key": incident.incident_key,
            "headers": {"From": self.from_email},
            "json": {"note": {"content": content}},
        }
        written = self._write("note", call)
        return {"id": written.stem, "content": content, "outbox_file": str(written)}

    def _write(self, kind: str, call: dict[str, Any]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        call["written_at"] = now.isoformat()
        name = f"{now:%Y%m%dT%H%M%S.%fZ}-{kind}-{os.getpid()}.json"
        target = self.directory / name
        # Write then rename, so a reader never sees half a file.
        partial = target.with_suffix(".part")
        partial.write_text(json.dumps(call, indent=2), encoding="utf-8")
        partial.rename(target)
        return target


def make_gateway(settings: Settings, redact: Callable[[str], str]) -> PagerDutyGateway:
    """Return the REST gateway when a token is set, else the outbox."""
    if settings.outbox_mode:
        return OutboxGateway(settings.outbox_dir, settings.pagerduty_from)
    # A private CA bundle serves proxies that re-sign TLS, and the tests' fake PagerDuty.
    verify = ssl.create_default_context(cafile=settings.pagerduty_ca_file or None)
    client = pagerduty.RestApiV2Client(
        settings.pagerduty_token.reveal(),
        default_from=settings.pagerduty_from,
        base_url=settings.pagerduty_api_url,
        verify=verify,
    )
    client.timeout = 10
    # The pipeline retries through Celery; keep the client's own retries short and bounded.
    client.max_network_attempts = 1
    client.sleep_timer = 0.5
    client.retry = {429: 2, 500: 1, 502: 1, 503: 1, 504: 1}
    return RestGateway(client, redact)
