"""The one module that talks to PagerDuty: the REST API v2 client, or the outbox without a token."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pagerduty
from pagerduty.rest_api_v2_client import canonical_path, entity_wrappers

from tasks.gateways.request_budget import RequestBudget
from tasks.retries import decide
from tasks.settings import Settings

log = logging.getLogger(__name__)
API_URL = "https://api.pagerduty.com"  # only to name paths canonically for wire_body


class PagerDutyUnavailable(RuntimeError):
    """A PagerDuty call failed; the message is safe to store (no secrets).

    `status` is the HTTP status (None for a network failure) and `headers` the response's
    headers, so `tasks.retries.decide` can tell whether and when to try again. `held_back`
    says the call never left this machine: our own budget had no request to spare.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        *,
        held_back: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.held_back = held_back

    @property
    def surely_not_applied(self) -> bool:
        """Return True when PagerDuty certainly did not carry the write out (held back, 4xx)."""
        return self.held_back or (self.status is not None and 400 <= self.status < 500)

    @property
    def wait_seconds(self) -> float:
        """Return how long a held-back call should wait for the budget."""
        try:
            return max(float(self.headers.get("ratelimit-reset", "1")), 0.0)
        except ValueError:
            return 1.0


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

    def find_incident(self, incident_key: str, open_only: bool = True) -> IncidentRef | None:
        """Return the newest incident with key `incident_key` (open only: not resolved), or None.

        A key resolved and fired again opens a new incident under the same key.
        """
        ...

    def create_note(self, incident: IncidentRef, content: str) -> dict[str, Any]:
        """Add a note to the incident and return PagerDuty's note object."""
        ...

    def note_contents(self, incident: IncidentRef) -> list[str]:
        """Return the contents of the incident's notes (to find one a lost attempt posted)."""
        ...

    def assignees(self, incident: IncidentRef) -> list[str] | None:
        """Return the ids of the users the incident is assigned to now; None: cannot be known."""
        ...

    def status(self, incident: IncidentRef) -> str | None:
        """Return the incident's status in PagerDuty ("triggered", "acknowledged", "resolved").

        None: it cannot be known (no id, or outbox mode). A failed read raises
        `PagerDutyUnavailable`.
        """
        ...

    def trigger(self, event: dict[str, Any]) -> str:
        """Send an Events API v2 trigger (dedup_key, payload, links); return the dedup key."""
        ...

    def priorities(self) -> list[dict[str, Any]]:
        """Return the account's incident priorities, most severe first ([] when it has none)."""
        ...

    def set_priority(self, incident: IncidentRef, priority_id: str) -> None:
        """Set the incident's priority."""
        ...

    def escalate(self, incident: IncidentRef, level: int) -> None:
        """Move the incident to escalation level `level`."""
        ...

    def resolve(self, incident: IncidentRef) -> None:
        """Resolve the incident."""
        ...

    def set_urgency(self, incident: IncidentRef, urgency: str) -> None:
        """Set the incident's urgency: "low" (PagerDuty pages no one) or "high"."""
        ...

    def status_update(self, incident: IncidentRef, message: str) -> None:
        """Post a status update to the incident's subscribers."""
        ...

    def merge(self, target: IncidentRef, sources: Sequence[IncidentRef]) -> None:
        """Merge `sources` into the open incident `target`: PagerDuty resolves them."""
        ...

    def request_responders(
        self,
        incident: IncidentRef,
        requester_id: str,
        targets: Sequence[tuple[str, str]],
        message: str,
    ) -> None:
        """Ask more responders (users or escalation policies) to join the incident."""
        ...


class IncidentWrites:
    """The incident writes both gateways make, each built once (`*_write`); a gateway applies
    them its own way: REST sends them, the outbox writes them down."""

    def _apply(self, write: IncidentWrite) -> None:
        raise NotImplementedError

    def set_priority(self, incident: IncidentRef, priority_id: str) -> None:
        """PUT /incidents/{id} with a priority reference."""
        self._apply(priority_write(incident, priority_id))

    def escalate(self, incident: IncidentRef, level: int) -> None:
        """PUT /incidents/{id} with an escalation level."""
        self._apply(escalation_write(incident, level))

    def resolve(self, incident: IncidentRef) -> None:
        """PUT /incidents/{id} with the status resolved."""
        self._apply(resolution_write(incident))

    def set_urgency(self, incident: IncidentRef, urgency: str) -> None:
        """PUT /incidents/{id} with an urgency."""
        self._apply(urgency_write(incident, urgency))

    def status_update(self, incident: IncidentRef, message: str) -> None:
        """POST /incidents/{id}/status_updates."""
        self._apply(status_update_write(incident, message))

    def merge(self, target: IncidentRef, sources: Sequence[IncidentRef]) -> None:
        """PUT /incidents/{id}/merge with the sources' references."""
        self._apply(merge_write(target, sources))

    def request_responders(
        self,
        incident: IncidentRef,
        requester_id: str,
        targets: Sequence[tuple[str, str]],
        message: str,
    ) -> None:
        """POST /incidents/{id}/responder_requests."""
        self._apply(responder_request_write(incident, requester_id, targets, message))


class RestGateway(IncidentWrites):
    """PagerDuty REST API v2 through `pagerduty.RestApiV2Client`, one attempt per call.

    Retries are the pipeline's (Celery, honouring `ratelimit-reset`), so a worker is never held
    in the client's own sleep loop; a request budget keeps all workers under the rate limit,
    and a 429 holds every worker back until PagerDuty's reset.
    """

    def __init__(
        self,
        client: pagerduty.RestApiV2Client,
        redact: Callable[[str], str],
        budget: RequestBudget | None = None,
        events: pagerduty.EventsApiV2Client | None = None,
        events_budget: RequestBudget | None = None,
    ) -> None:
        self.client = client
        self.redact = redact
        self.budget = budget
        self.events = events
        self.events_budget = events_budget

    def find_incident(self, incident_key: str, open_only: bool = True) -> IncidentRef | None:
        """Look the incident up by key over all time (the default window is one month)."""
        params = {"incident_key": incident_key, "date_range": "all"}
        incidents = self._call(
            "GET /incidents", lambda: self.client.list_all("incidents", params=params)
        )
        if open_only:
            incidents = [i for i in incidents if i.get("status") != "resolved"]
        if not incidents:
            return None
        newest = max(
            incidents, key=lambda i: (str(i.get("created_at", "")), i.get("incident_number", 0))
        )
        return IncidentRef(newest["id"], incident_key)

    def create_note(self, incident: IncidentRef, content: str) -> dict[str, Any]:
        """POST /incidents/{id}/notes with the note content."""
        if incident.id is None:
            raise PagerDutyUnavailable(f"no incident id for {incident.label}", 404)
        path = f"/incidents/{incident.id}/notes"
        return self._call("POST notes", lambda: self.client.rpost(path, json={"content": content}))

    def note_contents(self, incident: IncidentRef) -> list[str]:
        """GET /incidents/{id}/notes and return each note's content."""
        if incident.id is None:
            return []
        path = f"/incidents/{incident.id}/notes"
        notes = self._call("GET notes", lambda: self.client.rget(path))
        return [str(note.get("content", "")) for note in notes]

    def assignees(self, incident: IncidentRef) -> list[str] | None:
        """GET /incidents/{id} and return the user ids of its `assignments[].assignee`."""
        if incident.id is None:
            return None
        found = self._call("GET incident", lambda: self.client.rget(f"/incidents/{incident.id}"))
        people = [a.get("assignee") for a in found.get("assignments") or () if isinstance(a, dict)]
        return [str(p["id"]) for p in people if isinstance(p, dict) and p.get("id")]

    def status(self, incident: IncidentRef) -> str | None:
        """GET /incidents/{id} and return its `status`; None without an id."""
        if incident.id is None:
            return None
        found = self._call("GET incident", lambda: self.client.rget(f"/incidents/{incident.id}"))
        status = found.get("status") if isinstance(found, dict) else None
        return str(status) if status else None

    def trigger(self, event: dict[str, Any]) -> str:
        """POST /v2/enqueue through `pagerduty.EventsApiV2Client`."""
        if self.events is None:
            raise PagerDutyUnavailable(
                "no Events API routing key (RESPONDER_PAGERDUTY_ROUTING_KEY)", 400
            )
        payload = event["payload"]
        return self._call(
            "POST /v2/enqueue",
            lambda: self.events.trigger(
                payload["summary"], payload["source"], dedup_key=event["dedup_key"],
                severity=payload["severity"], custom_details=payload.get("custom_details"),
                links=event.get("links"),
            ),
            self.events_budget,
        )  # fmt: skip

    def priorities(self) -> list[dict[str, Any]]:
        """GET /priorities (all pages)."""
        return self._call("GET /priorities", lambda: self.client.list_all("priorities"))

    def _apply(self, write: IncidentWrite) -> None:
        """Send one incident write to PagerDuty's REST API."""
        send = self.client.rput if write.method == "PUT" else self.client.rpost
        self._call(write.name, lambda: send(write.path, json=write.body))

    def _call(self, name: str, call: Callable[[], Any], budget: RequestBudget | None = None) -> Any:
        budget = budget or self.budget
        if budget is not None and (wait := budget.take()) > 0:
            raise PagerDutyUnavailable(
                f"PagerDuty {name} held back: local rate limit",
                429,
                {"ratelimit-reset": f"{wait:.3f}"},
                held_back=True,
            )
        try:
            return call()
        except pagerduty.HttpError as exc:
            response = exc.response
            status = getattr(response, "status_code", None)
            headers = dict(getattr(response, "headers", {}) or {})
            if status == 429 and budget is not None:  # every worker waits, not just this one
                budget.block(decide(status, headers, 1).delay)
            raise PagerDutyUnavailable(self._why(name, f"HTTP {status}"), status, headers) from None
        except pagerduty.Error as exc:
            raise PagerDutyUnavailable(self._why(name, type(exc).__name__)) from None
        except (UnicodeError, TypeError, ValueError) as exc:
            # The request could not be encoded, so it never left: as final as a 400. Only the
            # type is told: a UnicodeEncodeError's repr holds the whole body, routing key too.
            why = self._why(name, f"{type(exc).__name__}: the request could not be encoded")
            raise PagerDutyUnavailable(why, 400) from None

    def _why(self, call: str, detail: str) -> str:
        return self.redact(f"PagerDuty {call} failed: {detail}")


def outbox_incident_id(incident_key: str) -> str:
    """Return the id the outbox gives the incident of `incident_key` (stable, never PagerDuty's)."""
    return "outbox-" + hashlib.sha256(incident_key.encode()).hexdigest()[:12]


class OutboxGateway(IncidentWrites):
    """Write each call the REST gateway would make to a JSON file instead (no token set)."""

    def __init__(self, directory: Path, from_email: str) -> None:
        self.directory = directory
        self.from_email = from_email

    def find_incident(self, incident_key: str, open_only: bool = True) -> IncidentRef | None:
        """Return the outbox's incident for the key: the one trigger mode would have opened.

        Without a token nothing can be looked up; an id of our own lets the SLA clock, the
        incident record and the report work on a laptop as they do against PagerDuty.
        """
        return IncidentRef(outbox_incident_id(incident_key), incident_key)

    def create_note(self, incident: IncidentRef, content: str) -> dict[str, Any]:
        """Write the note call to the outbox and return a note-shaped record of it."""
        path = f"/incidents/{incident.id or '{id}'}/notes"
        call = {
            "method": "POST",
            "path": path,
            "incident_id": incident.id,
            "incident_key": incident.incident_key,
            "headers": {"From": self.from_email},
            "json": wire_body("POST", path, {"content": content}),
        }
        written = self._write("note", call)
        # What `make run` shows of PagerDuty without a token: the note itself, as the on-call
        # engineer would read it, not only the escaped JSON in the file.
        shown = "\n".join("    " + line for line in content.splitlines())
        log.info("PagerDuty outbox: note on %s (%s):\n%s", incident.id, written, shown)
        return {"id": written.stem, "content": content, "outbox_file": str(written)}

    def trigger(self, event: dict[str, Any]) -> str:
        """Write the Events API call to the outbox; return its dedup key."""
        self._write("event", {"method": "POST", "path": "/v2/enqueue", "json": event})
        return str(event["dedup_key"])

    def priorities(self) -> list[dict[str, Any]]:
        """Return no priorities: without a token the account cannot be asked."""
        return []

    def status(self, incident: IncidentRef) -> str | None:
        """Return None: without a token PagerDuty cannot be asked."""
        return None

    def assignees(self, incident: IncidentRef) -> list[str] | None:
        """Return None: without a token nobody can tell who is assigned to the incident."""
        return None

    def _apply(self, write: IncidentWrite) -> None:
        """Write one incident write to the outbox instead."""
        body = wire_body(write.method, write.path, write.body)
        self._write(write.kind, {"method": write.method, "path": write.path, "json": body})

    def note_contents(self, incident: IncidentRef) -> list[str]:
        """Return the contents of the notes written to the outbox for this incident."""
        contents = []
        for path in sorted(self.directory.glob("*-note-*.json")):
            call = json.loads(path.read_text(encoding="utf-8"))
            # SLA notes know the incident by id alone; first notes may know it by key alone.
            same_id = incident.id is not None and call.get("incident_id") == incident.id
            same_key = (
                bool(incident.incident_key) and call.get("incident_key") == incident.incident_key
            )
            if same_id or same_key:
                contents.append(call["json"]["note"]["content"])
        return contents

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


def make_gateway(
    settings: Settings,
    redact: Callable[[str], str],
    budget: RequestBudget | None = None,
    events_budget: RequestBudget | None = None,
) -> PagerDutyGateway:
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
    # One attempt per call: with a retry budget of 1 and max_http_attempts below zero, the
    # client's loop hands the first error response back at once instead of sleeping (its
    # default retries 429 forever); tests/integration/test_pagerduty_gateway.py pins this down.
    client.retry = {status: 1 for status in (429, 500, 502, 503, 504)}
    client.max_http_attempts = -1
    client.max_network_attempts = 0
    events = None
    if settings.pagerduty_routing_key:
        events = pagerduty.EventsApiV2Client(
            settings.pagerduty_routing_key.reveal(),
            base_url=settings.pagerduty_events_url,
            verify=verify,
        )
        events.retry = dict(client.retry)
        events.max_http_attempts = -1
        events.max_network_attempts = 0
    return RestGateway(client, redact, budget, events, events_budget)


@dataclass(frozen=True)
class IncidentWrite:
    """A write to an incident, described once: the REST gateway sends it, the outbox records it."""

    name: str  # names the call in errors, e.g. "PUT incident"
    kind: str  # names the outbox file
    method: str  # PUT or POST
    path: str
    body: Any  # as the client takes it (an object, or a list it wraps); see wire_body


def priority_write(incident: IncidentRef, priority_id: str) -> IncidentWrite:
    """Return the PUT that sets an incident's priority."""
    body = {
        "type": "incident_reference",
        "priority": {"id": priority_id, "type": "priority_reference"},
    }
    return IncidentWrite("PUT incident", "priority", "PUT", f"/incidents/{incident.id}", body)


def escalation_write(incident: IncidentRef, level: int) -> IncidentWrite:
    """Return the PUT that escalates an incident to `level`."""
    body = {"type": "incident_reference", "escalation_level": level}
    return IncidentWrite("PUT incident", "escalate", "PUT", f"/incidents/{incident.id}", body)


def resolution_write(incident: IncidentRef) -> IncidentWrite:
    """Return the PUT that resolves an incident."""
    body = {"type": "incident_reference", "status": "resolved"}
    return IncidentWrite("PUT incident", "resolve", "PUT", f"/incidents/{incident.id}", body)


def urgency_write(incident: IncidentRef, urgency: str) -> IncidentWrite:
    """Return the PUT that sets an incident's urgency (high or low)."""
    body = {"type": "incident_reference", "urgency": urgency}
    return IncidentWrite("PUT incident", "urgency", "PUT", f"/incidents/{incident.id}", body)


def status_update_write(incident: IncidentRef, message: str) -> IncidentWrite:
    """Return the POST of a status update."""
    path = f"/incidents/{incident.id}/status_updates"
    return IncidentWrite("POST status update", "status-update", "POST", path, {"message": message})


def merge_write(target: IncidentRef, sources: Sequence[IncidentRef]) -> IncidentWrite:
    """Return the PUT that merges `sources` into `target` (the client wraps the list in
    `source_incidents`, as PagerDuty's spec has it)."""
    references = [{"id": source.id, "type": "incident_reference"} for source in sources]
    return IncidentWrite("PUT merge", "merge", "PUT", f"/incidents/{target.id}/merge", references)


def responder_request_write(
    incident: IncidentRef, requester_id: str, targets: Sequence[tuple[str, str]], message: str
) -> IncidentWrite:
    """Return the POST of a responder request."""
    path = f"/incidents/{incident.id}/responder_requests"
    body = responder_request_body(requester_id, targets, message)
    return IncidentWrite("POST responder request", "responder-request", "POST", path, body)


def wire_body(method: str, path: str, body: Any) -> Any:
    """Return `body` as the PagerDuty client sends it: wrapped where its rules wrap it."""
    canonical = canonical_path(API_URL, path)
    wrapper, _ = entity_wrappers(method, canonical)
    return {wrapper: body} if wrapper else body


def responder_request_body(
    requester_id: str, targets: Sequence[tuple[str, str]], message: str
) -> dict[str, Any]:
    """Return a responder request body in the shape of PagerDuty's published example.

    The spec's schema for the targets omits the `responder_request_target` wrapper its own
    example uses; the wrapped form satisfies the schema too, so we follow the example.
    """
    return {
        "requester_id": requester_id,
        "message": message,
        "responder_request_targets": [
            {"responder_request_target": {"id": target_id, "type": target_type}}
            for target_id, target_type in targets
        ],
    }
