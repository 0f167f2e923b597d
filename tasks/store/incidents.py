"""Incident records kept from PagerDuty webhooks: status, who and when, for the SLA clock."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import redis

from tasks.store.deliveries import DEDUP_TTL, PREFIX, claim_key, incident_id_key, parse_claim
from triage.models import Incident, IncidentEvent

log = logging.getLogger(__name__)

RETENTION_SECONDS = int(DEDUP_TTL.total_seconds()) * 30  # incidents outlive dedup keys: 60 days
# Which timestamp/agent pair an event type sets, besides the status it reports.
_MOMENTS = {
    "incident.triggered": "triggered",
    "incident.acknowledged": "acknowledged",
    "incident.unacknowledged": "unacknowledged",
    "incident.resolved": "resolved",
    "incident.reopened": "reopened",
    "incident.escalated": "escalated",
    "incident.reassigned": "reassigned",
    "incident.delegated": "delegated",
    "incident.priority_updated": "priority_updated",
}


# How long an incident key's id is trusted without a webhook saying it resolved: a key
# resolved and opened again meanwhile would otherwise send notes to the old incident.
ID_TTL_SECONDS = 3600
STARTED_KEY = f"{PREFIX}incidents-by-start"  # incident ids scored by their SLA clock's start


def incident_key(incident_id: str) -> str:
    """Return the Redis key of one incident record."""
    return f"{PREFIX}incident:{incident_id}"


def _entry(at: datetime, what: str, by: str) -> str:
    return json.dumps({"at": at.astimezone(UTC).isoformat(), "what": what, "by": by})


def history_key(incident_id: str) -> str:
    """Return the Redis key of one incident's history (what happened, who, when)."""
    return f"{PREFIX}incident-history:{incident_id}"


def cleared_alerts_key(incident_id: str) -> str:
    """Return the Redis key of the alerts of an incident Alertmanager reported resolved."""
    return f"{PREFIX}cleared-alerts:{incident_id}"


def escalations_key(incident_id: str) -> str:
    """Return the Redis key counting how far the responder has escalated an incident."""
    return f"{PREFIX}escalations:{incident_id}"


class IncidentStore:
    """Read and update incident records."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def escalations(self, incident_id: str) -> int:
        """Return how many levels the responder has escalated an incident so far."""
        return int(self.redis.get(escalations_key(incident_id)) or 0)

    def count_escalation(self, incident_id: str, escalated: int) -> None:
        """Record that the responder has escalated an incident `escalated` levels (a week)."""
        self.redis.set(escalations_key(incident_id), escalated, ex=7 * 86400)

    def apply(self, event: IncidentEvent) -> bool:
        """Apply an incident event; return True when it is the newest the record has seen.

        An older one (a retry, a replay) still adds its moment to the record and the history,
        but not its status. Read and write happen in one optimistic transaction, so an older
        event retried at the same moment as a newer one never overwrites the newer status.
        """
        incident = event.incident
        if incident is None:
            return False
        key = incident_key(incident.id)
        occurred = (event.occurred_at or datetime.now(UTC)).astimezone(UTC)
        moment = _MOMENTS.get(event.event_type)
        entry = _entry(occurred, moment or "", event.agent_name)

        def update(pipe: redis.client.Pipeline) -> bool:
            last = pipe.hget(key, "last_event_at")
            claim = pipe.get(claim_key(incident.incident_key)) if incident.incident_key else None
            newest = last is None or json.loads(last) <= occurred.isoformat()
            fields: dict[str, Any] = {}
            if moment:
                fields[f"{moment}_at"] = occurred.isoformat()
                fields[f"{moment}_by"] = event.agent_name
            if newest:
                fields.update(
                    id=incident.id,
                    status=incident.status,
                    title=incident.title,
                    urgency=incident.urgency,
                    priority=incident.priority,
                    service=incident.service,
                    incident_key=incident.incident_key,
                    html_url=incident.html_url,
                    last_event=event.event_type,
                    last_event_at=occurred.isoformat(),
                )
            pipe.multi()
            if incident.incident_key and newest:  # spares the pipeline a GET /incidents
                if incident.status == "resolved":  # the key may open a new incident later
                    pipe.delete(incident_id_key(incident.incident_key))
                    # Its run lets go of the key, unless a newer run holds it already.
                    held = parse_claim(claim)
                    if held is not None and held.started <= occurred.timestamp():
                        pipe.delete(claim_key(incident.incident_key))
                else:
                    pipe.set(incident_id_key(incident.incident_key), incident.id, ex=ID_TTL_SECONDS)
            if fields:
                pipe.hset(key, mapping={k: json.dumps(v) for k, v in fields.items()})
                pipe.hsetnx(key, "first_seen_at", json.dumps(occurred.isoformat()))
                pipe.expire(key, RETENTION_SECONDS)
            if moment:  # in the same transaction: a reader never sees one without the other
                pipe.rpush(history_key(incident.id), entry)
                pipe.expire(history_key(incident.id), RETENTION_SECONDS)
            return newest

        return bool(self.redis.transaction(update, key, value_from_callable=True))

    def remember_id(self, incident_key: str, incident_id: str) -> None:
        """Remember the id of the open incident with key `incident_key`, for a while."""
        self.redis.set(incident_id_key(incident_key), incident_id, ex=ID_TTL_SECONDS)

    def forget_id(self, incident_key: str) -> None:
        """Forget the incident of `incident_key`: it resolved, and the key may open another."""
        self.redis.delete(incident_id_key(incident_key))

    def id_for(self, incident_key: str) -> str | None:
        """Return the id of the incident with key `incident_key`, if it is known here."""
        found = self.redis.get(incident_id_key(incident_key)) if incident_key else None
        return found.decode() if found is not None else None

    def log(self, incident_id: str, what: str, by: str, at: datetime | None = None) -> None:
        """Add a line to the incident's history, which becomes its timeline when it resolves."""
        with self.redis.pipeline() as pipe:
            pipe.rpush(history_key(incident_id), _entry(at or datetime.now(UTC), what, by))
            pipe.expire(history_key(incident_id), RETENTION_SECONDS)
            pipe.execute()

    def history(self, incident_id: str) -> list[dict[str, str]]:
        """Return the incident's history in time order (a redelivered event appears once)."""
        entries = []
        for raw in dict.fromkeys(self.redis.lrange(history_key(incident_id), 0, -1)):
            try:
                entry = json.loads(raw)
                datetime.fromisoformat(entry["at"])
            except (ValueError, KeyError, TypeError):
                log.warning("incident %s: skipping an unreadable history entry", incident_id)
                continue
            entries.append(entry)
        return sorted(entries, key=lambda e: e["at"])

    def say(self, incident_id: str, name: str, value: dict[str, Any], at: datetime) -> bool:
        """Record what a person said of the incident (`said_<name>`), unless a newer word is kept.

        `value` gets `at` added; notes delivered out of order keep the newest word. Return True
        when this one is kept.
        """
        key, field_name = incident_key(incident_id), f"said_{name}"
        stamp = at.astimezone(UTC).isoformat()

        def update(pipe: redis.client.Pipeline) -> bool:
            held = pipe.hget(key, field_name)
            if held is not None and str(json.loads(held).get("at", "")) > stamp:
                return False
            pipe.multi()
            pipe.hset(key, field_name, json.dumps({**value, "at": stamp}))
            pipe.hsetnx(key, "id", json.dumps(incident_id))
            pipe.expire(key, RETENTION_SECONDS)
            return True

        return bool(self.redis.transaction(update, key, value_from_callable=True))

    def clear_alerts(self, incident_id: str, ended: dict[str, datetime]) -> None:
        """Record alerts of the incident Alertmanager reported resolved: fingerprint, when it ended.

        An alert that fires again starts after its end: the start tells the two apart.
        """
        if not ended:
            return
        key = cleared_alerts_key(incident_id)
        stamps = {fingerprint: at.astimezone(UTC).isoformat() for fingerprint, at in ended.items()}
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=stamps)
            pipe.expire(key, RETENTION_SECONDS)
            pipe.execute()

    def cleared_alerts(self, incident_id: str) -> dict[str, datetime]:
        """Return the incident's alerts reported resolved, by fingerprint, with when each ended."""
        raw = self.redis.hgetall(cleared_alerts_key(incident_id))
        return {k.decode(): datetime.fromisoformat(v.decode()) for k, v in raw.items()}

    def get(self, incident_id: str) -> dict[str, Any] | None:
        """Return one incident record, or None."""
        raw = self.redis.hgetall(incident_key(incident_id))
        if not raw:
            return None
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def begin_cycle(self, incident_id: str, title: str, incident_key: str, at: datetime) -> None:
        """Start a new cycle of an incident only we track (outbox mode): triggered again.

        PagerDuty's own triggered and reopened webhooks do this for its incidents; an outbox
        incident that resolved and fires again would otherwise stay resolved, its clock mute,
        and its escalations would continue from the last cycle's level.
        """
        record = self.get(incident_id)
        if record is not None and record.get("status") != "resolved":
            return
        incident = Incident(incident_id, title, "triggered", incident_key=incident_key)
        self.apply(IncidentEvent(f"cycle:{incident_id}", "incident.triggered", at, incident))
        self.redis.delete(escalations_key(incident_id))

    def mark_clock(self, incident_id: str, priority: str, started_at: str, run_id: str) -> None:
        """Record that our SLA clock runs for an incident: its priority and start, for reports.

        A reopen starts the clock again and moves the start, as the closing note measures.
        """
        fields = {
            "id": incident_id,
            "sla_priority": priority,
            "sla_started_at": started_at,
            "run_id": run_id,
        }
        started = datetime.fromisoformat(started_at).timestamp()
        with self.redis.pipeline() as pipe:
            pipe.hset(
                incident_key(incident_id), mapping={k: json.dumps(v) for k, v in fields.items()}
            )
            pipe.expire(incident_key(incident_id), RETENTION_SECONDS)
            pipe.zadd(STARTED_KEY, {incident_id: started})
            # Ids whose records have expired leave the index too.
            pipe.zremrangebyscore(STARTED_KEY, "-inf", started - RETENTION_SECONDS)
            pipe.execute()

    def started_since(self, since: datetime) -> list[dict[str, Any]]:
        """Return the records of incidents whose SLA clock started at or after `since`."""
        ids = [i.decode() for i in self.redis.zrangebyscore(STARTED_KEY, since.timestamp(), "+inf")]
        records = (self.get(incident_id) for incident_id in ids)
        return [record for record in records if record is not None]
