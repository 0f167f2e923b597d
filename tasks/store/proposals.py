"""Runbook action proposals and their audit record in Redis: who proposed, who approved, when,
what ran, the answer and the verification; the once-marker and the per-target lock."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import redis

from tasks.store.deliveries import DEDUP_TTL, PREFIX
from tasks.store.incidents import RETENTION_SECONDS
from triage.actions import uncounted_because

INDEX_KEY = f"{PREFIX}actions"  # proposal ids scored by when they were proposed

# Where a proposal is: waiting for a person, or what became of it.
WAITING = "proposed"
APPROVED = "approved"  # queued or running
# "by hand": a manual action (a rollback) was approved for a person to run; nothing ran here.
BY_HAND = "by hand"
ENDED = ("done", "failed", "dry-run", "unknown", BY_HAND)
CLOSED = ("denied", "refused")
# Nothing ran: at its approval or run its incident was resolved or its reason had gone
# (tasks/actions/recheck.py); withdrawn: still waiting when its incident resolved.
NOT_NEEDED = "not needed"
WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Proposal:
    """One runbook action proposed on an incident, and everything that happened to it."""

    id: str
    action: str
    target: str
    incident_id: str
    proposed_by: str
    proposed_at: str  # ISO 8601, UTC
    expires_at: str
    status: str = WAITING
    approved_by: str = ""
    approved_at: str = ""
    via: str = ""  # the approval path: cli, workflow
    reason: str = ""  # why it was refused or denied
    ran: str = ""  # what was called, e.g. POST http://gui-gateway:8080/emergency/stop-trading
    answer: str = ""  # what the call answered, or why it failed
    started_at: str = ""
    seconds: float = 0.0
    verified: str = ""  # passed | failed | not run
    checks: list[dict[str, Any]] = field(default_factory=list)
    refusals: int = 0  # approvals refused so far (not allowed, expired)
    rule: str = ""  # the policy rule that proposed it ("": a person did)
    why: str = ""  # why the rule proposed it, with what the evidence showed
    # What the rule's proposal stands on (triage.actions.condition_of), checked again before
    # it runs; empty for a person's proposal.
    condition: dict[str, Any] = field(default_factory=dict)
    approvals: list[str] = field(default_factory=list)  # who approved so far (two-person rule)
    command: str = ""  # a manual action's exact command: a person runs it, the responder never

    @property
    def expires(self) -> datetime:
        """Return when the proposal can no longer be approved."""
        return datetime.fromisoformat(self.expires_at)


def proposal_key(proposal_id: str) -> str:
    """Return the Redis key of one proposal's record."""
    return f"{PREFIX}action:{proposal_id}"


def _incident_index_key(incident_id: str) -> str:
    """Return the key of an incident's proposal ids, scored by when each was proposed."""
    return f"{PREFIX}incident-actions:{incident_id}"


def once_key(proposal_id: str) -> str:
    """Return the key set just before an approved action acts: it never acts twice."""
    return f"{PREFIX}action-once:{proposal_id}"


def lock_key(service: str) -> str:
    """Return the key of the lock that lets one action at a time act on a catalog service."""
    return f"{PREFIX}action-lock:{service}"


def new_id() -> str:
    """Return a fresh proposal id, short enough to type: `act-1a2b3c4d`."""
    return f"act-{secrets.token_hex(4)}"


def run_proposal_id(run_id: str, action: str, target: str) -> str:
    """Return the id of the proposal a run's rules make of `action` on `target`: the same on
    every retry of the run's evidence task, so the proposal is made once."""
    digest = hashlib.sha256(f"{run_id}\0{action}\0{target}".encode()).hexdigest()
    return f"act-{digest[:8]}"


class ProposalStore:
    """Create, read and move proposals along, each move a compare-and-set."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def add(self, proposal: Proposal) -> None:
        """Store a new proposal."""
        stamp = datetime.fromisoformat(proposal.proposed_at).timestamp()
        with self.redis.pipeline() as pipe:
            pipe.set(proposal_key(proposal.id), json.dumps(asdict(proposal)), ex=RETENTION_SECONDS)
            pipe.zadd(INDEX_KEY, {proposal.id: stamp})
            pipe.zremrangebyscore(INDEX_KEY, "-inf", stamp - RETENTION_SECONDS)
            self._index_by_incident(pipe, proposal, stamp)
            pipe.execute()

    def add_once(self, proposal: Proposal) -> bool:
        """Store a proposal unless one with its id exists; True when this call stored it."""
        stamp = datetime.fromisoformat(proposal.proposed_at).timestamp()
        raw = json.dumps(asdict(proposal))
        if not self.redis.set(proposal_key(proposal.id), raw, nx=True, ex=RETENTION_SECONDS):
            return False
        with self.redis.pipeline() as pipe:
            pipe.zadd(INDEX_KEY, {proposal.id: stamp})
            self._index_by_incident(pipe, proposal, stamp)
            pipe.execute()
        return True

    @staticmethod
    def _index_by_incident(pipe: redis.client.Pipeline, proposal: Proposal, stamp: float) -> None:
        # The incident's page lists its proposals from this index, not from its timeline.
        if not proposal.incident_id:
            return
        key = _incident_index_key(proposal.incident_id)
        pipe.zadd(key, {proposal.id: stamp})
        pipe.expire(key, RETENTION_SECONDS)

    def for_incident(self, incident_id: str) -> list[dict[str, Any]]:
        """Return the records of an incident's proposals as stored, oldest first (one read)."""
        ids = self.redis.zrange(_incident_index_key(incident_id), 0, -1)
        found = self.redis.mget([proposal_key(i.decode()) for i in ids]) if ids else []
        return [json.loads(raw) for raw in found if raw is not None]

    def record(self, proposal_id: str) -> dict[str, Any] | None:
        """Return one proposal's record as stored (a mapping), or None when unknown."""
        raw = self.redis.get(proposal_key(proposal_id))
        try:
            found = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    def get(self, proposal_id: str) -> Proposal | None:
        """Return one proposal, or None when it is unknown (or past retention)."""
        raw = self.redis.get(proposal_key(proposal_id))
        return Proposal(**json.loads(raw)) if raw is not None else None

    def recent(self, limit: int = 50) -> list[Proposal]:
        """Return the latest proposals, newest first."""
        ids = [i.decode() for i in self.redis.zrevrange(INDEX_KEY, 0, limit - 1)]
        if not ids:
            return []
        # One round trip: resolving an incident reads up to a thousand of them.
        found = self.redis.mget([proposal_key(i) for i in ids])
        return [Proposal(**json.loads(raw)) for raw in found if raw is not None]

    def update(
        self, proposal_id: str, change: Callable[[Proposal], Proposal | None]
    ) -> Proposal | None:
        """Apply `change` atomically; it returns the new record, or None to leave it as is.

        Returns the record written, or None when nothing was (unknown, or `change` declined).
        """
        key = proposal_key(proposal_id)

        def attempt(pipe: redis.client.Pipeline) -> Proposal | None:
            raw = pipe.get(key)
            if raw is None:
                return None
            changed = change(Proposal(**json.loads(raw)))
            if changed is None:
                return None
            pipe.multi()
            pipe.set(key, json.dumps(asdict(changed)), ex=RETENTION_SECONDS)
            return changed

        return self.redis.transaction(attempt, key, value_from_callable=True)  # type: ignore[no-any-return]

    def add_approval(
        self, proposal_id: str, approver: str, via: str, at: datetime, required: int
    ) -> tuple[str, Proposal | None]:
        """Count one approval of a waiting proposal; approve it when `required` people have.

        Return (what happened, the record): "approved" (it runs now), "counted" (it waits
        for more), an uncounted reason (triage.actions.uncounted_because) or "not waiting".
        """
        said = ["not waiting"]

        def change(p: Proposal) -> Proposal | None:
            if p.status != WAITING:
                said[0] = "not waiting"
                return None
            if why := uncounted_because(p.approvals, approver, p.proposed_by):
                said[0] = why
                return None
            approvals = [*p.approvals, approver]
            if len(approvals) < required:
                said[0] = "counted"
                return replace(p, approvals=approvals)
            said[0] = "approved"
            return replace(
                p,
                status=APPROVED,
                approvals=approvals,
                approved_by=" and ".join(approvals),
                approved_at=_iso(at),
                via=via,
            )

        written = self.update(proposal_id, change)
        return said[0], written

    def close(self, proposal_id: str, status: str, by: str, reason: str) -> bool:
        """Deny or refuse a waiting proposal for good; False when it is not waiting now."""

        def change(p: Proposal) -> Proposal | None:
            if p.status != WAITING:
                return None
            return replace(p, status=status, approved_by=by, reason=reason)

        return self.update(proposal_id, change) is not None

    def count_refusal(self, proposal_id: str, reason: str) -> int:
        """Count one refused approval of a proposal (it stays as it was); return the count."""
        written = self.update(
            proposal_id, lambda p: replace(p, refusals=p.refusals + 1, reason=reason)
        )
        return written.refusals if written is not None else 0

    def began(self, proposal_id: str) -> bool:
        """Return True when an approved action began to act (its once-marker is set)."""
        return bool(self.redis.exists(once_key(proposal_id)))

    def begin(self, proposal_id: str, owner: str) -> bool:
        """Set the once-marker before acting; False when an earlier attempt set it already."""
        return bool(self.redis.set(once_key(proposal_id), owner, nx=True, ex=RETENTION_SECONDS))

    def remember_stop(self, incident_id: str, proposal_id: str) -> None:
        """Name the stop whose checks the incident's watch reads again (actions.stop_again)."""
        self.redis.set(f"{PREFIX}stop-again:{incident_id}", proposal_id, ex=DEDUP_TTL)

    def stop_to_read_again(self, incident_id: str) -> str:
        """Return the id of the stop the incident's watch reads again ("" when none)."""
        return (self.redis.get(f"{PREFIX}stop-again:{incident_id}") or b"").decode()

    def claim_run(self, key: str, proposal_id: str, seconds: int) -> str | None:
        """Claim one immediate run of (incident, action, target) for `seconds`.

        Return None when claimed, else the proposal that claimed it first.
        """
        name = f"{PREFIX}action-run:{key}"
        if self.redis.set(name, proposal_id, nx=True, ex=seconds):
            return None
        held = self.redis.get(name)
        return held.decode() if held is not None else None

    def release_run(self, key: str, proposal_id: str) -> None:
        """Let go of the run claim of (incident, action, target) if `proposal_id` holds it."""
        self.redis.eval(_UNLOCK, 1, f"{PREFIX}action-run:{key}", proposal_id)

    def claim_automatic(self, rule: str, target: str, proposal_id: str, seconds: int) -> str | None:
        """Claim an automatic rule's one run on `target` for `seconds` (SET NX EX).

        Return None when claimed (or this proposal holds it), else the proposal holding it.
        """
        name = f"{PREFIX}action-auto:{rule}:{target}"
        if self.redis.set(name, proposal_id, nx=True, ex=seconds):
            return None
        held = self.redis.get(name)
        holder = held.decode() if held is not None else None
        return None if holder == proposal_id else holder or "an earlier run"

    def lock(self, service: str, proposal_id: str, seconds: int) -> bool:
        """Take the lock on acting on `service`; True when taken (or this proposal holds it)."""
        key = lock_key(service)
        if self.redis.set(key, proposal_id, nx=True, ex=seconds):
            return True
        return self.redis.get(key) == proposal_id.encode()

    def unlock(self, service: str, proposal_id: str) -> None:
        """Let go of the lock on `service`, if this proposal holds it (compare and delete)."""
        self.redis.eval(_UNLOCK, 1, lock_key(service), proposal_id)


# One step, so that a lock that expired and was taken by another proposal is not deleted.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
