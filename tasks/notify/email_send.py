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
from collections.abc import Callable
from datetime import UTC, datetime

from tasks.gateways.email import BREAKER_SECONDS, EmailUnavailable
from tasks.gateways.email_compose import Mail, build_message, message_id
from tasks.notes import lines
from tasks.runtime import Runtime
from tasks.store import services
from tasks.store.effects import IN_FLIGHT, HeldWhy, once

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
    from_address = sender(rt)
    mid = message_id(mail.kind, mail.key, from_address)

    def held(why: HeldWhy, wait: float) -> EmailUnavailable:
        said = "another attempt is in flight" if why == IN_FLIGHT else "claimed a moment ago"
        return EmailUnavailable(
            f"e-mail {mail.kind} held back: {said}", wait_seconds=wait, held_back=True
        )

    def cannot_look(since: float) -> None:
        # SMTP has no way to ask whether the server has it: sent again, same Message-ID.
        log.warning(
            "e-mail %s %s: an earlier attempt may have sent it: sending again", *(step, record)
        )

    def breaker_closed() -> None:
        if not rt.settings.email_outbox_mode and (failing := services.smtp_failing(rt.redis)):
            why, left = failing
            raise EmailUnavailable(f"{why} (not tried again for {left:.0f} s)", None)

    def send(done: Callable[[str], None]) -> tuple[str, str]:
        message = build_message(mail.redacted(rt.redact), from_address, now or datetime.now(UTC))
        try:
            where = rt.email.send(message, lambda: done(mid))  # done at the 250, before QUIT
        except EmailUnavailable as exc:
            if exc.code is None:  # unreachable or silent: spare the other attempts the timeout
                services.trip_smtp_breaker(rt.redis, str(exc), BREAKER_SECONDS)
            raise
        return where, str(message["Subject"])

    sent = once(
        rt.deliveries,
        record,
        step,
        send,
        record=lambda sent: mid,
        held=held,
        find=cannot_look,
        before_claim=breaker_closed,
    )
    if not sent.applied or sent.value is None:
        return f"{mail.kind}: already sent"
    where, subject = sent.value
    if mail.incident_id:
        what = lines.timeline("email_sent", kind=mail.kind, to=mail.to)
        rt.incidents.log(mail.incident_id, what, "responder")
    # At INFO: `make run` shows each e-mail, and where the outbox wrote it.
    log.info("e-mail %s %r to %s: %s", mail.kind, subject, ", ".join(mail.to), where)
    return f"{mail.kind}: e-mailed {', '.join(mail.to)}"
