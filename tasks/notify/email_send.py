"""Send an e-mail exactly once in effect, through the gateway the runtime holds.

Exactly once, as PagerDuty notes are: a once-record per (kind, key) in Redis, claimed before
the SMTP transaction (compare-and-set: of two copies of a task, one sends) and marked done the
moment the server accepts the message (its "250" after DATA), before QUIT.

The window. SMTP has no idempotency key: a worker that dies after the server's 250 and before
the once-record is written leaves the record pending, and the retry cannot ask the server
whether it has the message. It sends again, with the same Message-ID (derived from kind and
key), so the duplicate is recognisable, threads with the first and is dropped by mail stores
that de-duplicate by Message-ID. We chose at-least-once over at-most-once: the trading desk
and management missing an alert is worse than reading it twice. The window is one Redis SET
after the 250 (well under a millisecond here); a failure the server answered (4xx, 5xx before
the 250) is known not to have delivered, and clears the claim.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tasks.notes import lines
from tasks.notify.email import BREAKER_SECONDS, EmailUnavailable
from tasks.notify.email_compose import Mail, build_message, message_id
from tasks.runtime import Runtime
from tasks.store import services
from tasks.store.deliveries import current_attempt

log = logging.getLogger(__name__)


def sender(rt: Runtime) -> str:
    """Return the From address: RESPONDER_SMTP_FROM, else the policy's."""
    return rt.settings.smtp_from or rt.policy.communication.email.sender


def send_once(rt: Runtime, mail: Mail, now: datetime | None = None) -> str:
    """Send `mail` exactly once in effect; return what happened, for the task's result.

    A pending record of another attempt younger than IN_FLIGHT_SECONDS may be in flight:
    this one waits. An older one, or this task's own (a retry), may have been delivered or
    not: it is sent again with the same Message-ID (see the module's docstring).
    """
    if not mail.to:
        return f"{mail.kind}: no recipients in the policy"
    record, step = f"email:{mail.key}", mail.kind
    owner = current_attempt.get()
    seen = rt.deliveries.attempt(record, step, owner)
    if seen.done:
        return f"{mail.kind}: already sent"
    if seen.in_flight_seconds > 0:
        raise EmailUnavailable(
            f"e-mail {mail.kind} held back: another attempt is in flight",
            wait_seconds=seen.in_flight_seconds,
            held_back=True,
        )
    if seen.interrupted_since is not None:
        log.warning(
            "e-mail %s %s: an earlier attempt may have sent it: sending again", *(step, record)
        )
    if not rt.settings.email_outbox_mode and (failing := services.smtp_failing(rt.redis)):
        why, left = failing
        raise EmailUnavailable(f"{why} (not tried again for {left:.0f} s)", None)
    if not rt.deliveries.claim_attempt(record, step, seen.state, owner):
        raise EmailUnavailable(
            f"e-mail {mail.kind} held back: claimed a moment ago", wait_seconds=1.0, held_back=True
        )
    from_address = sender(rt)
    message = build_message(mail.redacted(rt.redact), from_address, now or datetime.now(UTC))
    mid = message_id(mail.kind, mail.key, from_address)
    try:
        where = rt.email.send(message, lambda: rt.deliveries.mark_effect(record, step, mid))
    except EmailUnavailable as exc:
        if exc.surely_not_sent:  # the retry sends without a doubt about a duplicate
            rt.deliveries.clear_pending_effect(record, step)
        if exc.code is None:  # unreachable or silent: spare the other attempts the timeout
            services.trip_smtp_breaker(rt.redis, str(exc), BREAKER_SECONDS)
        raise
    if mail.incident_id:
        what = lines.timeline("email_sent", kind=mail.kind, to=mail.to)
        rt.incidents.log(mail.incident_id, what, "responder")
    # At INFO: `make run` shows each e-mail, and where the outbox wrote it.
    log.info("e-mail %s %r to %s: %s", mail.kind, message["Subject"], ", ".join(mail.to), where)
    return f"{mail.kind}: e-mailed {', '.join(mail.to)}"
