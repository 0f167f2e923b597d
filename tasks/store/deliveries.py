"""The delivery log in Redis: every webhook body as received, its dedup outcome and its pipeline."""

from __future__ import annotations

import contextvars
import json
import re
import secrets
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import redis
from redis.exceptions import NoScriptError

from tasks.enqueue import TaskMessage
from tasks.store.redis_direct import DirectCommands
from triage.models import Classification, Priority

PREFIX = "responder:"
INDEX_KEY = PREFIX + "deliveries"
OWN_NOTES_KEY = PREFIX + "own-notes"
# The PagerDuty users our notes were posted as (the `user` of each note PagerDuty created):
# a note by one of them is ours, whatever its content says.
OWN_AUTHORS_KEY = PREFIX + "own-note-authors"
DEDUP_TTL = timedelta(hours=48)  # PagerDuty retries for up to 48 h; Alertmanager resends sooner.
DELIVERY_RETENTION = timedelta(days=7)


class Claim(StrEnum):
    """How a delivery that would start a pipeline competes for its incident.

    Alertmanager and PagerDuty both announce the same incident (Alertmanager's own PagerDuty
    receiver opens it, then PagerDuty's webhook reports it); only the first starts a pipeline.
    """

    NONE = "none"  # no incident known: no competition
    ALERTMANAGER = "am"  # yields only to a PagerDuty delivery; new alerts of a group still run
    PAGERDUTY = "pd"  # yields to anything already running for the incident
    FORCE = "force"  # takes the incident over (a reopened incident)
    # The group resolved: its next alert may open a new PagerDuty incident under the same key,
    # which must get a run of its own, not join the old one.
    RELEASE = "release"


# One round trip: claim dedup keys, decide whether a pipeline starts or joins the incident's
# run, store the delivery and push the task messages that are due. Nothing is half done: a 2xx
# means recorded and enqueued. A call repeated after a lost reply finds a dedup key holding its
# own delivery id, and returns the delivery's recorded outcome without doing anything again.
# (When the first call found every key taken, the repeat decides the same again and changes
# nothing.) Plain SET NX then GET, not SET NX GET: that needs Redis 7, and the usual case is
# one command either way.
#
# An incident claim reads `source:delivery|rank|started`. An Alertmanager delivery with new
# firing alerts for an incident claimed less than `refresh` seconds ago, at the same or a more
# severe priority, joins that run instead of starting another: it is listed for the incident's
# next "more alerts" note (due `joined_every` seconds after the first join) and starts nothing.
_RECORD = """
local id, now, n, m = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[8]), tonumber(ARGV[9])
local rank, refresh, joined_every = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local fresh, tagged, starts = {}, {}, false
for i = 1, n do
  if redis.call('SET', KEYS[7 + i], id, 'NX', 'EX', ARGV[3]) then
    fresh[#fresh + 1] = ARGV[13 + i]
    tagged[ARGV[13 + n + i]] = true
  elseif redis.call('GET', KEYS[7 + i]) == id then
    local first = redis.call('HMGET', KEYS[1], 'runs', 'fresh_keys', 'pipeline')
    return {first[1] ~= '0' and 1 or 0, first[2], cjson.decode(first[3])}
  end
end
local pipeline = ARGV[10]
if #fresh == 0 then pipeline = 'not started: duplicate' end
-- A resolved group lets go of its incident (its claim, its remembered id): its next alert
-- may open a new PagerDuty incident under the same key. Not for a repeat of the resolution.
if ARGV[6] == 'release' and #fresh > 0 then redis.call('DEL', KEYS[3], KEYS[7]) end
if tagged['start'] then
  local mode, holder, joined = ARGV[6], false, false
  local mine = ARGV[7] .. ':' .. id .. '|' .. rank .. '|' .. ARGV[2]
  if mode == 'force' then
    redis.call('SET', KEYS[3], mine, 'EX', ARGV[3])
  elseif mode ~= 'none' and not redis.call('SET', KEYS[3], mine, 'NX', 'EX', ARGV[3]) then
    -- Claimed by someone else (a free incident, the usual case, took one command).
    holder = redis.call('GET', KEYS[3])
    if mode == 'am' then
      local who, held_rank, since = string.match(holder, '^(.-)|(%d+)|([%d.]+)$')
      local coalescing = who and refresh > 0
      local recent = coalescing and now - tonumber(since) < refresh
      if recent and rank >= tonumber(held_rank) then
        redis.call('RPUSH', KEYS[4], id)
        redis.call('EXPIRE', KEYS[4], ARGV[3])
        redis.call('ZADD', KEYS[5], 'NX', now + joined_every, ARGV[14 + 2 * n])
        redis.call('HINCRBY', KEYS[6], 'coalesced', 1)
        joined, pipeline, holder = true, 'joined the run of ' .. who, false
      elseif string.sub(holder, 1, 10) ~= 'pagerduty:' or coalescing then
        -- New alerts of a group run again: at once without coalescing (a PagerDuty run is
        -- left alone: it announced the same incident), else once the run's evidence is due
        -- a refresh, or sooner when they are more severe than the run.
        redis.call('SET', KEYS[3], mine, 'EX', ARGV[3])
        holder = false
      end
    end
  end
  if holder then
    pipeline = 'not started: incident already handled by ' .. (string.match(holder, '^[^|]+'))
  elseif not joined then
    starts, pipeline = true, 'queued'
  end
end
for j = 0, m - 1 do
  local base = 15 + 2 * n + 3 * j
  local tag = ARGV[base]
  if (tag == 'start' and starts) or (tag ~= 'start' and tagged[tag]) then
    redis.call('LPUSH', ARGV[base + 1], ARGV[base + 2])
  end
end
local encoded = '[]'
if #fresh > 0 then encoded = cjson.encode(fresh) end
-- The caller's pairs come last (unpack must); they never name the three fields set here.
redis.call('HSET', KEYS[1], 'fresh_keys', encoded, 'pipeline', cjson.encode(pipeline),
           'runs', starts and 1 or 0, unpack(ARGV, 15 + 2 * n + 3 * m))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], id)
-- The index is trimmed by about one delivery in 16 (the id's last hex digit is random), not
-- by each: readers skip what is past retention, and each call to Redis here costs.
if string.sub(id, -1) == '0' then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5]) end
return {starts and 1 or 0, encoded, pipeline}
"""


# A task that finishes after its delivery's record expired (or was deleted) must not write a
# record of only its own fields: no id to load it by, and no expiry, so kept for ever.
_UPDATE_KEPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], unpack(ARGV))
"""

# Set the effect's state to ARGV[2] only if it is still ARGV[1] ("" for none).
_CLAIM_ATTEMPT = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# Longer than one PagerDuty call can take (its client gives up after 10 s): an attempt marked
# pending more recently than this may still be in flight in another copy of the task.
IN_FLIGHT_SECONDS = 30.0
# The task (its id; retries keep it) doing the work in this thread, set by the worker.
current_attempt: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_attempt", default="-"
)


def pending_attempt(state: str) -> tuple[str, float]:
    """Return who marked an effect pending and when (an old plain "pending": nobody, 0)."""
    parts = state.split(":")  # pending:<task id>:<epoch seconds>
    if len(parts) != 3:
        return "", 0.0
    try:
        return parts[1], float(parts[2])
    except ValueError:
        return parts[1], 0.0


@dataclass(frozen=True)
class EffectAttempt:
    """Where an exactly-once effect stands for the attempt about to make it."""

    state: str | None  # as stored: what `claim_attempt` compares against
    done: bool
    # > 0: another copy's attempt, pending this recently, may still be in flight: wait this long.
    in_flight_seconds: float
    # An earlier attempt (an older one, or this task's own before a retry) may have applied the
    # effect: since when it was pending (0: not known). None: no such attempt.
    interrupted_since: float | None


def effect_attempt(state: str | None, owner: str, now: float) -> EffectAttempt:
    """Return where an effect in `state` stands for `owner`'s attempt at wall-clock `now`."""
    if state is None or not state.startswith("pending"):
        return EffectAttempt(state, state is not None and state.startswith("done"), 0.0, None)
    other, since = pending_attempt(state)
    # At most the window: a stamp ahead of this clock (another host's, or rounded up to the
    # millisecond) must not hold this attempt back longer than an attempt can be in flight.
    left = min(since + IN_FLIGHT_SECONDS - now, IN_FLIGHT_SECONDS)
    if other != owner and left > 0:
        return EffectAttempt(state, False, left, None)
    return EffectAttempt(state, False, 0.0, since)


# A delivery id, wherever it stands (a task message names its delivery or run by it).
DELIVERY_ID = re.compile(rb"(?P<received>\d{8}T\d{6}Z)-[0-9a-f]{8}")


def new_delivery_id(now: datetime) -> str:
    """Return a time-sortable, unguessable delivery id such as `20261127T094500Z-3f9a1c2b`."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def run_id(delivery_id: str, run: int) -> str:
    """Return the id of a delivery's pipeline run `run`, which names its bundle too."""
    return f"{delivery_id}-r{run}"


def delivery_key(delivery_id: str) -> str:
    """Return the Redis key of one delivery's hash."""
    return f"{PREFIX}delivery:{delivery_id}"


def dedup_key(source: str, key: str) -> str:
    """Return the Redis key that remembers dedup key `key` of `source`."""
    return f"{PREFIX}dedup:{source}:{key}"


def claim_key(incident: str) -> str:
    """Return the Redis key naming the delivery whose pipeline handles an incident."""
    return f"{PREFIX}incident-claim:{incident}"


def incident_id_key(incident: str) -> str:
    """Return the Redis key remembering which PagerDuty incident id an incident key has now."""
    return f"{PREFIX}incident-id:{incident}"


@dataclass(frozen=True)
class ClaimHolder:
    """The run holding an incident's claim, as the recording script writes it."""

    holder: str  # source:delivery
    priority: Priority
    started: float


def parse_claim(value: bytes | None) -> ClaimHolder | None:
    """Read a claim `source:delivery|rank|started` (None: no claim, or an old-style one)."""
    parts = (value or b"").decode().split("|")
    try:
        return ClaimHolder(parts[0], Priority(f"P{parts[1]}"), float(parts[2]))
    except (IndexError, ValueError):
        return None


def joined_key(incident: str) -> str:
    """Return the Redis key listing the deliveries that joined an incident's run."""
    return f"{PREFIX}joined:{incident}"


JOINED_DUE_KEY = f"{PREFIX}joined-due"  # incidents scored by when their "more alerts" note is due
STATS_KEY = f"{PREFIX}stats"  # counters: coalesced deliveries


@dataclass(frozen=True)
class Coalescing:
    """When a delivery joins its incident's run instead of starting another (policy: storm)."""

    refresh_seconds: float = 0.0  # 0: never join (every delivery with new alerts runs)
    joined_every_seconds: float = 300.0


NO_COALESCING = Coalescing()


@dataclass(frozen=True)
class Replication:
    """How many replicas must hold a recorded delivery before it is acknowledged (WAIT)."""

    replicas: int = 0  # 0: no WAIT, a single node's 2xx
    timeout_ms: int = 500


class NotReplicated(redis.RedisError):
    """The delivery was recorded on the primary, but WAIT saw too few replicas hold it."""

    def __init__(self, delivery_id: str, reached: int, wanted: int, timeout_ms: int) -> None:
        super().__init__(
            f"the delivery reached {reached} of {wanted} replica(s) within {timeout_ms} ms"
        )
        self.delivery_id, self.reached, self.wanted = delivery_id, reached, wanted


@dataclass(frozen=True)
class Recorded:
    """The outcome of recording a delivery."""

    delivery_id: str
    fresh_keys: frozenset[str]
    started: bool
    pipeline: str

    @property
    def duplicate(self) -> bool:
        """Return True when every dedup key of the delivery had been seen before."""
        return not self.fresh_keys


@dataclass(frozen=True)
class Delivery:
    """One stored delivery as the worker reads it: the body as received, what the receiver
    decided about it (classification, incident key, which alerts were new), its pipeline."""

    id: str
    source: str
    raw_body: bytes
    incident_key: str
    classification: Classification | None
    # Each alert's classification, by fingerprint (Alertmanager deliveries).
    alert_classifications: Mapping[str, Classification]
    fresh_keys: frozenset[str]
    runs: int
    run_id: str
    record: Mapping[str, Any]  # every stored field, for what the worker does not model

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Delivery:
        """Read a delivery from `DeliveryStore.get` output."""
        stored = record.get("classification")
        return cls(
            id=record["id"],
            source=record.get("source", ""),
            raw_body=record.get("raw_body", b""),
            incident_key=record.get("incident_key") or "",
            classification=Classification.from_dict(stored) if stored else None,
            alert_classifications={
                item["fingerprint"]: Classification.from_dict(item["classification"])
                for item in record.get("alerts", [])
            },
            fresh_keys=frozenset(record.get("fresh_keys") or ()),
            runs=int(record.get("runs") or 1),
            run_id=record.get("run_id") or "",
            record=record,
        )

    def payload(self) -> Any:
        """Return the body as the sender posted it, decoded from JSON (the receiver checked it)."""
        return json.loads(self.raw_body)


class DeliveryStore:
    """Record, read and update deliveries; the receiver writes, workers and the CLI read."""

    def __init__(
        self,
        client: redis.Redis,
        retention: timedelta = DELIVERY_RETENTION,
        replication: Replication | None = None,
    ) -> None:
        self.redis = client
        self.retention = retention
        self.replication = replication or Replication()
        self._record = client.register_script(_RECORD)
        self._claim = client.register_script(_CLAIM_ATTEMPT)
        self._update_kept = client.register_script(_UPDATE_KEPT)
        self._direct = DirectCommands(client)
        self._dedup_seconds = int(DEDUP_TTL.total_seconds())
        self._retention_seconds = int(retention.total_seconds())

    def record(
        self,
        *,
        delivery_id: str,
        source: str,
        raw_body: bytes,
        headers: Mapping[str, str],
        dedup_keys: Sequence[tuple[str, str]],
        fields: Mapping[str, Any],
        now: datetime,
        claim: Claim = Claim.NONE,
        incident: str = "",
        idle_reason: str = "not started: no new work",
        messages: Sequence[TaskMessage] = (),
        priority: str = "P3",
        coalescing: Coalescing | None = None,
    ) -> Recorded:
        """Store the delivery, claim its dedup keys and incident, push the task messages due.

        `dedup_keys` pairs each key with a tag: "start" for a key whose newness starts the
        pipeline, others (e.g. "resolved") for keys that only make tagged messages due. A
        message tagged "start" is pushed when the pipeline starts; any other when a key with
        its tag was new. One Lua script does it all, so concurrent duplicates start one
        pipeline and a 2xx means recorded and enqueued. With `coalescing`, an Alertmanager
        delivery at `priority` joins a recent run of its incident (see _RECORD).
        """
        coalescing = coalescing or NO_COALESCING
        keys = list(dict(dedup_keys).items())  # unique, first flag wins
        record = {
            "id": delivery_id,
            "source": source,
            "received_at": now.astimezone(UTC).isoformat(),
            "headers": dict(headers),
            **fields,
        }
        # Two fields, not one per fact: fewer arguments make the hot path measurably cheaper.
        pairs: list[str | bytes] = [
            *_field("raw_body", raw_body),
            *_field("meta", json.dumps(record)),
        ]
        started, fresh, pipeline = self._evalsha(
            keys=[
                delivery_key(delivery_id),
                INDEX_KEY,
                claim_key(incident) if incident else claim_key("-"),
                joined_key(incident) if incident else joined_key("-"),
                JOINED_DUE_KEY,
                STATS_KEY,
                incident_id_key(incident) if incident else incident_id_key("-"),
                *(dedup_key(source, k) for k, _ in keys),
            ],
            args=[
                delivery_id,
                now.timestamp(),
                self._dedup_seconds,
                self._retention_seconds,
                (now - self.retention).timestamp(),
                claim.value if incident else Claim.NONE.value,
                source,
                len(keys),
                len(messages),
                idle_reason,
                Priority(priority).rank,
                coalescing.refresh_seconds,
                coalescing.joined_every_seconds,
                *(k for k, _ in keys),
                *(tag for _, tag in keys),
                incident or "-",
                *(part for m in messages for part in (m.when, m.queue, m.payload)),
                *pairs,
            ],
        )
        self._wait_for_replicas(delivery_id)
        return Recorded(delivery_id, frozenset(json.loads(fresh)), bool(started), pipeline.decode())

    def _wait_for_replicas(self, delivery_id: str) -> None:
        """Raise NotReplicated unless WAIT sees the record on enough replicas in time.

        On the connection that recorded it: WAIT counts the replicas that hold every write of
        its own connection. Asked on another (reconnect=False) it would confirm nothing.
        """
        wanted = self.replication.replicas
        if wanted <= 0:
            return
        timeout_ms = self.replication.timeout_ms
        reached = int(self._direct.execute("WAIT", wanted, timeout_ms, reconnect=False))
        if reached < wanted:
            # Still recorded on the primary: the sender's retry finds it and dedups.
            raise NotReplicated(delivery_id, reached, wanted, timeout_ms)

    def _evalsha(self, keys: list[str], args: list[Any]) -> Any:
        """Run the recording script on a direct connection (see tasks/store/redis_direct.py)."""
        # The receiver's hot path, once per webhook: redis-py's Script would copy and re-check
        # the arguments on every call too. The script is safe to repeat, as DirectCommands
        # requires: a delivery id it has recorded returns the first outcome.
        try:
            return self._direct.execute("EVALSHA", self._record.sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted or flushed its script cache
            self._record.sha = self.redis.script_load(_RECORD)
            return self._direct.execute("EVALSHA", self._record.sha, len(keys), *keys, *args)

    def get(self, delivery_id: str) -> dict[str, Any] | None:
        """Return one delivery with JSON fields decoded, or None when unknown or expired."""
        raw = self.redis.hgetall(delivery_key(delivery_id))
        if not raw:
            return None
        for name in (b"raw_body", b"meta"):
            if (packed := raw.pop(name + COMPRESSED_SUFFIX, None)) is not None:
                raw[name] = zlib.decompress(packed)
        result: dict[str, Any] = json.loads(raw.pop(b"meta", b"{}"))
        for name, value in raw.items():
            name = name.decode()
            # Fields set after recording (pipeline state, incident, bundle) override meta.
            result[name] = value if name == "raw_body" else _decode(value.decode())
        return result

    def load(self, delivery_id: str) -> Delivery | None:
        """Return one delivery typed for the worker, or None when unknown or expired."""
        record = self.get(delivery_id)
        return Delivery.from_record(record) if record is not None else None

    def update(self, delivery_id: str, **fields: Any) -> None:
        """Set fields of a stored delivery (pipeline state, incident, bundle); a delivery no
        longer kept (expired, deleted) stays gone."""
        pairs = [part for name, value in fields.items() for part in (name, json.dumps(value))]
        self._update_kept(keys=[delivery_key(delivery_id)], args=pairs)

    def next_run(self, delivery_id: str) -> int:
        """Return a new pipeline run number for the delivery."""
        return int(self.redis.hincrby(delivery_key(delivery_id), "runs", 1))

    def incident_claim(self, incident: str) -> ClaimHolder | None:
        """Return which delivery holds an incident's run, at what priority, or None."""
        return parse_claim(self.redis.get(claim_key(incident)))

    def count_requeue(self, delivery_id: str) -> int:
        """Count one requeue of a stalled delivery; return how many it has had."""
        return int(self.redis.hincrby(delivery_key(delivery_id), "requeues", 1))

    def stat(self, name: str) -> int:
        """Return one of the delivery counters (`coalesced`, `sla_requeued`, ...)."""
        return int(self.redis.hget(STATS_KEY, name) or 0)

    def count_stat(self, name: str) -> None:
        """Add one to a delivery counter."""
        self.redis.hincrby(STATS_KEY, name, 1)

    def joined_notes_due(self) -> int:
        """Return how many incidents have a "more alerts" note due."""
        return int(self.redis.zcard(JOINED_DUE_KEY))

    def list_ids(self, since: datetime | None = None) -> list[str]:
        """Return the ids of stored deliveries, oldest first, optionally received since `since`."""
        # The index is trimmed now and then (see _RECORD): what is past retention is gone.
        oldest = datetime.now(UTC) - self.retention
        low = max(oldest, since).timestamp() if since else oldest.timestamp()
        return [i.decode() for i in self.redis.zrangebyscore(INDEX_KEY, low, "+inf")]

    def effect_state(self, run_id: str, step: str) -> str | None:
        """Return None (never tried), "pending" (tried, outcome unknown) or "done:<detail>"."""
        value = self.redis.get(f"{PREFIX}effect:{run_id}:{step}")
        return value.decode() if value is not None else None

    def attempt(self, run_id: str, step: str, owner: str) -> EffectAttempt:
        """Return where side effect `step` of `run_id` stands for `owner`'s attempt now."""
        return effect_attempt(self.effect_state(run_id, step), owner, time.time())

    def effect_done(self, run_id: str, step: str) -> bool:
        """Return True if side effect `step` of pipeline run `run_id` already happened."""
        return (self.effect_state(run_id, step) or "").startswith("done")

    def begin_effect(self, run_id: str, step: str) -> None:
        """Record that side effect `step` is being attempted, before the attempt."""
        self.redis.set(f"{PREFIX}effect:{run_id}:{step}", "pending", ex=DEDUP_TTL, nx=True)

    def claim_attempt(self, run_id: str, step: str, seen: str | None, owner: str) -> bool:
        """Mark `step` as being attempted by `owner`, if its state is still `seen`; say if so.

        A compare-and-set: of two copies of a task that read the same state, one claims it.
        """
        value = f"pending:{owner}:{time.time():.3f}"
        args = [seen or "", value, int(DEDUP_TTL.total_seconds())]
        return bool(self._claim(keys=[f"{PREFIX}effect:{run_id}:{step}"], args=args))

    def clear_pending_effect(self, run_id: str, step: str) -> None:
        """Forget an attempt at `step` known not to have happened (held back, refused)."""
        key = f"{PREFIX}effect:{run_id}:{step}"
        with self.redis.pipeline() as pipe:  # only "pending": a done marker stays
            try:
                pipe.watch(key)
                if (pipe.get(key) or b"").startswith(b"pending"):
                    pipe.multi()
                    pipe.delete(key)
                    pipe.execute()
            except redis.WatchError:  # it changed meanwhile: a done marker, which stays
                pass

    def mark_effect(self, run_id: str, step: str, detail: str = "") -> None:
        """Record that side effect `step` of run `run_id` happened, so a retry skips it."""
        self.redis.set(f"{PREFIX}effect:{run_id}:{step}", f"done:{detail}", ex=DEDUP_TTL)

    def remember_own_note(self, note: str) -> None:
        """Remember a note we post, by id or `notes.opening`, so its webhook is not acted on."""
        if note:
            now = datetime.now(UTC).timestamp()
            self.redis.zadd(OWN_NOTES_KEY, {note: now})
            self.redis.zremrangebyscore(OWN_NOTES_KEY, "-inf", now - DEDUP_TTL.total_seconds())

    def is_own_note(self, note: str) -> bool:
        """Return True if we posted the note with this id or opening."""
        return self.redis.zscore(OWN_NOTES_KEY, note) is not None

    def remember_own_author(self, user_id: str) -> None:
        """Remember the PagerDuty user a note of ours was posted as."""
        if user_id:
            self.redis.sadd(OWN_AUTHORS_KEY, user_id)

    def own_authors(self) -> set[str]:
        """Return the PagerDuty users our notes were posted as."""
        return {str(member, "utf-8", "replace") if isinstance(member, bytes) else str(member)
                for member in self.redis.smembers(OWN_AUTHORS_KEY)}  # fmt: skip


def pipelines_received_between(
    client: redis.Redis, low: float, high: float
) -> list[tuple[str, str]]:
    """Return (delivery id, pipeline state) of the deliveries received between two instants."""
    ids = client.zrangebyscore(INDEX_KEY, low, high)
    if not ids:
        return []
    with client.pipeline(transaction=False) as pipe:
        for delivery_id in ids:
            pipe.hget(delivery_key(delivery_id.decode()), "pipeline")
        states = pipe.execute()
    return [
        (delivery_id.decode(), json.loads(state) if state else "")
        for delivery_id, state in zip(ids, states, strict=True)
    ]


# Group updates in a storm repeat the group's alerts: a 20-alert body of 8 KB packs to 0.6 KB
# in about 10 us. Small bodies (most deliveries, and the intake benchmark) stay as they are.
COMPRESS_OVER_BYTES = 4096
COMPRESSED_SUFFIX = b"_z"


def _field(name: str, value: str | bytes) -> tuple[str, str | bytes]:
    """Return the hash field for a large value: zlib-packed under `<name>_z`."""
    if len(value) <= COMPRESS_OVER_BYTES:
        return name, value
    data = value.encode() if isinstance(value, str) else value
    return name + COMPRESSED_SUFFIX.decode(), zlib.compress(data, 1)


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # written by hand or by an older version: keep as text
        return text
