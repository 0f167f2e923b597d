"""The SLA clock's deadlines, in a Redis sorted set: durable, inspectable, cancellable.

Not Celery countdowns: on Redis those are redelivered after the visibility timeout. Each
deadline is a member `incident|kind` scored by its due time; claiming is atomic, so several
beat or worker processes still act once per deadline.

A claim moves the deadline into a second sorted set until the tick has enqueued its action
(`release`). A tick that died in between leaves it there; a later tick takes claims older than
the lease back (`reclaim_stale`), so the action is enqueued at least once, and the actions'
own markers keep their effect to once.

A claimed deadline also goes into the due log until its action has run (`acted`); each try of
the action touches it (`acting`). The SLA auditor takes entries left untouched past a grace
time (`unacted`): an action message lost after the tick released its claim (a queue lost with
a Redis that restarted without its last writes, a purge) is queued again instead of missed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, NamedTuple

import redis

from tasks.store.deliveries import PREFIX

log = logging.getLogger(__name__)

INDEX_KEY = f"{PREFIX}deadlines"
CLAIMED_KEY = f"{PREFIX}deadlines-claimed"
DUE_LOG_KEY = f"{PREFIX}deadlines-due"  # incident|kind|due -> last touched (claim, each try)
DUE_DETAIL_KEY = f"{PREFIX}deadlines-due-detail"  # incident|kind|due -> the deadline's detail
DUE_REQUEUES_KEY = f"{PREFIX}deadlines-due-requeues"  # incident|kind|due -> times queued again
KINDS = (
    "acknowledge",
    "respond",
    "resolve",
    "next_update",
    "notify_management",
    "lower_urgency",
    "restore_urgency",
    "rejudge",  # classify again at the next market open or close (tasks.sla.rejudge)
    "stop_again",  # trading stopped: read again whether it resumed (tasks.actions.stop_again)
)
REJUDGE = "rejudge"
STOP_AGAIN = "stop_again"

# Take every member due by ARGV[1] (at most ARGV[2]); ZREM makes each claim exclusive. The
# deadline's detail (key prefix ARGV[3]) goes into the claimed set, KEYS[2], scored by the
# claim time: ARGV[1] again, the moment the tick claims at; and into the due log (KEYS[3],
# KEYS[4]) under incident|kind|due, until its action has run.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local claimed = {}
for _, member in ipairs(due) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local detail = redis.call('GET', ARGV[3] .. member)
    if detail then
      redis.call('ZADD', KEYS[2], ARGV[1], detail)
      -- One another version wrote and cannot be read is dropped by the caller, loudly.
      local ok, parsed = pcall(cjson.decode, detail)
      if ok and type(parsed) == 'table' and type(parsed['due']) == 'string' then
        local occurrence = member .. '|' .. parsed['due']
        redis.call('ZADD', KEYS[3], ARGV[1], occurrence)
        redis.call('HSET', KEYS[4], occurrence, detail)
      end
      claimed[#claimed + 1] = detail
    end
  end
end
return claimed
"""

# Take claims made before ARGV[1] back, re-scored at ARGV[2] so competing ticks take each once.
_RECLAIM = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, detail in ipairs(stale) do redis.call('ZADD', KEYS[1], ARGV[2], detail) end
return stale
"""


@dataclass(frozen=True)
class Deadline:
    """One promise of the runbook for one incident."""

    incident_id: str
    kind: str
    due: str  # ISO 8601
    priority: str
    run_id: str = ""
    title: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deadline:
        """Build a deadline from its stored form; fields a newer version added are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def member(self) -> str:
        """Return the deadline's member in the sorted set."""
        return f"{self.incident_id}|{self.kind}"

    @property
    def occurrence(self) -> str:
        """Return the deadline's entry in the due log: this kind, for this incident, this due."""
        return f"{self.member}|{self.due}"


class Claim(NamedTuple):
    """A claimed deadline and its stored form, by which the claim is released."""

    deadline: Deadline
    raw: bytes


def deadline_detail_key(member: str) -> str:
    """Return the key of one running deadline's detail, by its member (`<incident>|<kind>`)."""
    return f"{PREFIX}deadline:{member}"


class SlaClock:
    """Register, cancel, list and claim deadlines."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._reclaim = client.register_script(_RECLAIM)

    def register(self, deadlines: Iterable[Deadline]) -> None:
        """Add or move deadlines; registering the same incident and kind again replaces it."""
        with self.redis.pipeline() as pipe:
            for deadline in deadlines:
                due = datetime.fromisoformat(deadline.due).timestamp()
                pipe.zadd(INDEX_KEY, {deadline.member: due})
                pipe.set(deadline_detail_key(deadline.member), json.dumps(asdict(deadline)))
            pipe.execute()

    def cancel(self, incident_id: str, kinds: Iterable[str] = KINDS) -> int:
        """Stop some or all of an incident's clocks; return how many were running."""
        members = [f"{incident_id}|{kind}" for kind in kinds]
        with self.redis.pipeline() as pipe:
            pipe.zrem(INDEX_KEY, *members)
            pipe.delete(*(deadline_detail_key(m) for m in members))
            removed, _ = pipe.execute()
        return int(removed)

    def claim_due(self, now: datetime, limit: int = 100) -> list[Claim]:
        """Take the deadlines due by `now`; each is returned to exactly one caller."""
        details = self._claim(
            keys=[INDEX_KEY, CLAIMED_KEY, DUE_LOG_KEY, DUE_DETAIL_KEY],
            args=[now.timestamp(), limit, deadline_detail_key("")],
        )
        return self._parse(details)

    def release(self, claims: Iterable[Claim]) -> None:
        """Forget claims whose actions are enqueued."""
        raws = [claim.raw for claim in claims]
        if raws:
            self.redis.zrem(CLAIMED_KEY, *raws)

    def reclaim_stale(self, now: datetime, lease: float, limit: int = 100) -> list[Claim]:
        """Take back claims older than `lease` seconds: their tick died before enqueueing."""
        stamp = now.timestamp()
        details = self._reclaim(keys=[CLAIMED_KEY], args=[stamp - lease, stamp, limit])
        return self._parse(details)

    def hold_acting(self, deadline: Deadline, owner: str, seconds: int) -> bool:
        """Take the lock on acting on one deadline for `seconds`; True when `owner` holds it."""
        key = f"{PREFIX}sla-acting:{deadline.member}:{deadline.due}"
        if self.redis.set(key, owner, nx=True, ex=seconds):
            return True
        return bool(self.redis.get(key) == owner.encode())

    def release_acting(self, deadline: Deadline) -> None:
        """Let go of the lock on acting on one deadline."""
        self.redis.delete(f"{PREFIX}sla-acting:{deadline.member}:{deadline.due}")

    def acting(self, deadline: Deadline, now: datetime) -> None:
        """Note that the deadline's action runs (or tries again) now: the auditor leaves it."""
        self.redis.zadd(DUE_LOG_KEY, {deadline.occurrence: now.timestamp()}, xx=True)

    def acted(self, deadline: Deadline) -> None:
        """Take a deadline whose action has run (or given up for good) off the due log."""
        self._forget(deadline.occurrence)

    def _forget(self, occurrence: str | bytes) -> None:
        with self.redis.pipeline() as pipe:
            pipe.zrem(DUE_LOG_KEY, occurrence)
            pipe.hdel(DUE_DETAIL_KEY, occurrence)
            pipe.hdel(DUE_REQUEUES_KEY, occurrence)
            pipe.execute()

    def unacted(self, now: datetime, grace: float, limit: int = 100) -> list[tuple[Deadline, int]]:
        """Take the due deadlines whose action has not run for `grace` seconds, each by one
        caller (touched at `now`); return each with how often it was queued again before."""
        stamp = now.timestamp()
        taken = self._reclaim(keys=[DUE_LOG_KEY], args=[stamp - grace, stamp, limit])
        if not taken:
            return []
        with self.redis.pipeline() as pipe:
            pipe.hmget(DUE_DETAIL_KEY, taken)
            for occurrence in taken:
                pipe.hincrby(DUE_REQUEUES_KEY, occurrence, 1)
            details, *tries = pipe.execute()
        found = []
        for occurrence, detail, times in zip(taken, details, tries, strict=True):
            try:
                found.append((Deadline.from_dict(json.loads(detail)), int(times) - 1))
            except (TypeError, ValueError):
                log.error("dropping a due SLA deadline that cannot be read: %r", occurrence)
                self._forget(occurrence)
        return found

    def _parse(self, details: list[bytes]) -> list[Claim]:
        claims = []
        for raw in details:
            try:
                claims.append(Claim(Deadline.from_dict(json.loads(raw)), raw))
            except (TypeError, ValueError):
                # Written by another version: dropped loudly rather than retried forever.
                log.error("dropping an SLA deadline that cannot be read: %r", raw[:200])
                self.redis.zrem(CLAIMED_KEY, raw)
        return claims

    def pending(self) -> list[Deadline]:
        """Return every running deadline, soonest first."""
        members = [m.decode() for m in self.redis.zrange(INDEX_KEY, 0, -1)]
        details = self.redis.mget([deadline_detail_key(m) for m in members]) if members else []
        return [Deadline.from_dict(json.loads(d)) for d in details if d is not None]


def deadlines_for(incident_id: str, run_id: str, title: str, due: dict[str, Any]) -> list[Deadline]:
    """Return the deadlines of a pipeline run, from `triage.sla.Deadlines.to_dict()` output.

    Management of an incident summarised the next business day is that day's summary: one
    deadline for every incident it covers.
    """
    found = []
    for kind in KINDS:
        if kind not in due:
            continue
        if kind == "notify_management" and due.get("management") == "summary":
            found.append(summary_deadline(due[kind], due["priority"]))
        else:
            found.append(Deadline(incident_id, kind, due[kind], due["priority"], run_id, title))
    return found


SUMMARY = "management_summary"


def summary_deadline(opening: str, priority: str) -> Deadline:
    """Return the deadline of the management summary posted at business opening `opening`."""
    at = datetime.fromisoformat(opening).astimezone(UTC)
    return Deadline(
        f"summary-{at:%Y%m%dT%H%MZ}", SUMMARY, opening, priority, "", "management summary"
    )


def left(deadline: Deadline, now: datetime) -> str:
    """Say how long is left until a deadline, or how long ago it passed."""
    seconds = int(
        datetime.fromisoformat(deadline.due).timestamp() - now.astimezone(UTC).timestamp()
    )
    minutes, _ = divmod(abs(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    span = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"
    return f"in {span}" if seconds >= 0 else f"{span} ago"
