"""Exactly once in effect: one protocol for every side effect the remote side cannot dedupe.

PagerDuty notes, Slack messages and e-mails each go through `once`, over the once-records of
the delivery log (`responder:effect:<scope>:<step>`, kept for DEDUP_TTL):

1. a record marked done: the effect happened, nothing is done;
2. another copy's attempt, pending for less than IN_FLIGHT_SECONDS: it may still be in flight,
   this one is held back (`held(IN_FLIGHT, wait)`), not failed;
3. an older or this task's own attempt pending (the worker died, the answer was lost): `find`
   looks for the effect on the remote side (a note's reference, a message's marker) and
   records what it found instead of applying it again;
4. the attempt is claimed with a compare-and-set (of two copies, one applies it), then applied;
   an error that says the effect surely did not happen (`surely_not_applied`) clears the claim,
   so the retry applies it without looking first; any other error leaves it pending;
5. marked done, with a detail (the note's id, the message's channel and ts, the Message-ID).

The records' keys and values are those written before this module existed, so an attempt
pending in a worker of the previous version is found, or waited for, the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from tasks.store.deliveries import EffectAttempt, current_attempt

T = TypeVar("T")

# Why an attempt is held back: another copy's attempt may be in flight, or just claimed it.
IN_FLIGHT = "in flight"
CLAIMED = "claimed"
HeldWhy = Literal["in flight", "claimed"]
CLAIM_LOST_WAIT_SECONDS = 1.0  # the other copy claimed it a moment ago


class EffectLedger(Protocol):
    """The once-records `once` reads and writes (the delivery log's)."""

    def attempt(self, run_id: str, step: str, owner: str) -> EffectAttempt:
        """Return where the effect stands for `owner`'s attempt now."""
        ...

    def claim_attempt(self, run_id: str, step: str, seen: str | None, owner: str) -> bool:
        """Claim the effect for `owner` if its record is still `seen`; say if so."""
        ...

    def clear_pending_effect(self, run_id: str, step: str) -> None:
        """Forget a pending attempt known not to have happened."""
        ...

    def mark_effect(self, run_id: str, step: str, detail: str = "") -> None:
        """Record that the effect happened."""
        ...


@dataclass(frozen=True)
class Once(Generic[T]):
    """What `once` did: applied the effect now, found an interrupted attempt's, or nothing."""

    how: Literal["applied", "found", "done before"]
    value: T | None = None  # what `apply` returned, or what `find` found

    @property
    def applied(self) -> bool:
        """Return True when this call applied the effect."""
        return self.how == "applied"


def once(
    ledger: EffectLedger,
    scope: str,
    step: str,
    apply: Callable[[Callable[[str], None]], T],
    *,
    record: Callable[[T], str],
    held: Callable[[HeldWhy, float], Exception],
    find: Callable[[float], tuple[T, str] | None] | None = None,
    before_claim: Callable[[], None] | None = None,
) -> Once[T]:
    """Apply effect (`scope`, `step`) exactly once in effect (see the module's docstring).

    `apply(done)` makes the effect; it may call `done(detail)` the moment the remote side took
    it (SMTP's 250, before QUIT), else the record is `record(result)` once it returns.
    `find(since)` looks for an interrupted attempt's effect, made since that epoch second:
    (what it found, the record's detail), or None. `before_claim` may raise to hold the
    attempt back before anything is claimed (a channel's pace, an open breaker).
    """
    owner = current_attempt.get()
    seen = ledger.attempt(scope, step, owner)
    if seen.done:
        return Once("done before")
    if seen.in_flight_seconds > 0:
        raise held(IN_FLIGHT, seen.in_flight_seconds)
    if seen.interrupted_since is not None and find is not None:
        if (found := find(seen.interrupted_since)) is not None:
            value, detail = found
            ledger.mark_effect(scope, step, detail)
            return Once("found", value)
    if before_claim is not None:
        before_claim()
    if not ledger.claim_attempt(scope, step, seen.state, owner):
        raise held(CLAIMED, CLAIM_LOST_WAIT_SECONDS)
    marked = False

    def done(detail: str) -> None:
        nonlocal marked
        ledger.mark_effect(scope, step, detail)
        marked = True

    try:
        value = apply(done)
    except Exception as exc:
        if getattr(exc, "surely_not_applied", False):  # the retry applies it without looking
            ledger.clear_pending_effect(scope, step)
        raise
    if not marked:
        ledger.mark_effect(scope, step, record(value))
    return Once("applied", value)
