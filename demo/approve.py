"""The demo's on-call engineer: approves the proposals waiting on an incident the way a person
does on PagerDuty, by a note that says `/approve <proposal id>`.

Exactly as PagerDuty would deliver it: the note is written on the incident (the fake PagerDuty's
REST API), then the Webhooks v3 `incident.annotated` event for it goes to the receiver, signed
with the subscription's secret (`X-PagerDuty-Signature: v1=<HMAC-SHA256>`), its agent the person.
The receiver takes it down the one approval path (webhooks/pagerduty.py `approve_by_note`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import requests

from tasks.store.proposals import WAITING, Proposal, ProposalStore

ACCOUNT = "https://eafix.pagerduty.com"  # the fake PagerDuty's account, as its links show
SUBSCRIPTION = "PDEMOWH"  # the webhook subscription's id (X-Webhook-Subscription)


@dataclass(frozen=True)
class Person:
    """A PagerDuty user: the approver is their user id (the event's agent)."""

    id: str = "PDANA01"
    name: str = "Dana Whitfield"
    email: str = "dana.whitfield@eafix.example"


@dataclass(frozen=True)
class Approval:
    """One approval note sent: the proposal, the note's id, what the receiver answered."""

    proposal_id: str
    note_id: str
    status: int
    delivery_id: str


class NoteApprover:
    """Find the proposals waiting on an incident; approve each by a note, as PagerDuty would."""

    def __init__(
        self,
        redis_url: str,
        receiver_url: str,
        webhook_secret: str,
        pagerduty_url: str,
        pagerduty_token: str,
        pagerduty_ca_file: str,
        person: Person | None = None,
    ) -> None:
        self.store = ProposalStore(redis.Redis.from_url(redis_url))
        self.receiver_url = receiver_url
        self.webhook_secret = webhook_secret
        self.pagerduty_url = pagerduty_url
        self.pagerduty_token = pagerduty_token
        self.pagerduty_ca_file = pagerduty_ca_file
        self.person = person or Person()

    def waiting(self, incident_id: str) -> list[Proposal]:
        """Return the proposals on `incident_id` that wait for an approval, oldest first."""
        found = [
            p
            for p in self.store.recent(limit=200)
            if p.incident_id == incident_id and p.status == WAITING
        ]
        return sorted(found, key=lambda p: p.proposed_at)

    def approve(self, incident_id: str, proposal_id: str) -> Approval:
        """Write `/approve <id>` on the incident as the person, then deliver its webhook."""
        content = f"Evidence checked, go ahead.\n/approve {proposal_id}"
        note_id = self._write_note(incident_id, content)
        event = annotated_event(incident_id, note_id, content, self.person)
        response = deliver(self.receiver_url, event, self.webhook_secret)
        answer = _json_or_empty(response)
        return Approval(
            proposal_id, note_id, response.status_code, str(answer.get("delivery_id", ""))
        )

    def _write_note(self, incident_id: str, content: str) -> str:
        """Create the note through PagerDuty's REST API, as the web UI does; return its id."""
        response = requests.post(
            f"{self.pagerduty_url}/incidents/{incident_id}/notes",
            json={"note": {"content": content}},
            headers={
                "Authorization": f"Token token={self.pagerduty_token}",
                "Accept": "application/vnd.pagerduty+json;version=2",
                "From": self.person.email,
            },
            verify=self.pagerduty_ca_file,
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["note"]["id"])


def annotated_event(
    incident_id: str, note_id: str, content: str, person: Person, at: datetime | None = None
) -> dict[str, Any]:
    """Return the v3 `incident.annotated` event PagerDuty sends for a person's note."""
    at = at or datetime.now(UTC)
    return {
        "event": {
            "id": str(uuid.uuid4()),
            "event_type": "incident.annotated",
            "resource_type": "incident",
            "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "agent": _reference(person.id, "user_reference", person.name, "users"),
            "client": None,
            "data": {
                "incident": _reference(incident_id, "incident_reference", incident_id, "incidents"),
                "id": note_id,
                "content": content,
                "trimmed": False,
                "type": "incident_note",
            },
        }
    }


def status_event(incident: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    """Return the v3 `incident.<status>` event PagerDuty sends when an incident's status changes
    (`incident.resolved`, `incident.acknowledged`); its data is the incident."""
    at = at or datetime.now(UTC)
    status = str(incident["status"])
    return {
        "event": {
            "id": str(uuid.uuid4()),
            "event_type": f"incident.{status}",
            "resource_type": "incident",
            "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            # An Events API resolve (Alertmanager's) has no person behind it: PagerDuty sends
            # the service as the agent.
            "agent": incident.get("service"),
            "client": None,
            "data": {
                **{k: incident[k] for k in ("id", "html_url", "self", "title", "status")},
                "type": "incident",
                "number": incident.get("incident_number"),
                "incident_key": incident.get("incident_key", ""),
                "urgency": incident.get("urgency", "high"),
                "service": incident.get("service"),
                "priority": incident.get("priority"),
            },
        }
    }


def deliver(receiver_url: str, event: dict[str, Any], secret: str) -> requests.Response:
    """POST a v3 event to the receiver as PagerDuty does: signed, with its headers."""
    raw = json.dumps(event).encode()
    return requests.post(
        f"{receiver_url}/webhooks/pagerduty",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "PagerDuty-Webhook/V3.0",
            "X-Webhook-Id": str(uuid.uuid4()),
            "X-Webhook-Subscription": SUBSCRIPTION,
            "X-PagerDuty-Signature": signature(raw, secret),
        },
        timeout=10,
    )


def signature(raw: bytes, secret: str) -> str:
    """Return the X-PagerDuty-Signature header PagerDuty sends for a body (v1, HMAC-SHA256)."""
    return "v1=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _reference(id: str, type_: str, summary: str, collection: str) -> dict[str, str]:
    return {
        "html_url": f"{ACCOUNT}/{collection}/{id}",
        "id": id,
        "self": f"https://api.pagerduty.com/{collection}/{id}",
        "summary": summary,
        "type": type_,
    }


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
