"""The one module that sends e-mail: SMTP through `smtplib`, or the outbox without a host.

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
import smtplib
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from tasks.notify.email_compose import Mail, build_message, message_id, worst_code
from tasks.runtime import Runtime
from tasks.settings import Settings
from tasks.store.deliveries import PREFIX, current_attempt

log = logging.getLogger(__name__)

# After the SMTP server was unreachable or silent (a timeout), the next attempts within this
# many seconds fail at once instead of each holding a worker slot for the whole timeout: one
# attempt probes the server, the others back off. A 4xx or 5xx answer does not trip it.
BREAKER_SECONDS = 30
BREAKER_KEY = f"{PREFIX}smtp-failing"


class EmailUnavailable(RuntimeError):
    """An e-mail not sent: the server's reply `code` (None: the network), and whether it is
    known not to have been delivered (so the claim is cleared and nothing can be doubled)."""

    def __init__(
        self,
        message: str,
        code: int | None = None,
        *,
        surely_not_sent: bool = True,
        wait_seconds: float = 0.0,
        held_back: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.surely_not_sent = surely_not_sent
        self.wait_seconds = wait_seconds
        self.held_back = held_back  # another attempt is in flight: wait, it is no failure


class EmailGateway(Protocol):
    """Sends one message; calls `accepted` the moment it is accepted, before anything else."""

    def send(self, message: EmailMessage, accepted: Callable[[], None]) -> str:
        """Send `message`; return where it went (the server, or the outbox file)."""
        ...


class SmtpGateway:
    """SMTP with STARTTLS and AUTH when configured, a timeout on every socket operation."""

    def __init__(self, settings: Settings, redact: Callable[[str], str]) -> None:
        self.settings = settings
        self.redact = redact

    def send(self, message: EmailMessage, accepted: Callable[[], None]) -> str:
        """Open a connection, send `message`, call `accepted` on the 250, then QUIT."""
        s = self.settings
        where = f"{s.smtp_host}:{s.smtp_port}"
        sent = False
        sending = False  # from MAIL FROM to the DATA reply: the outcome of a lost connection
        try:
            # The timeout bounds the connect and each command: a hung server costs at most
            # this long per step, never a worker slot forever.
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds) as smtp:
                smtp.ehlo()
                if s.smtp_starttls:
                    context = ssl.create_default_context(cafile=s.smtp_ca_file or None)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password.reveal())
                sending = True
                refused = smtp.send_message(message)
                sent = True
                accepted()  # first: the once-record's window is this one call
                if refused:
                    log.warning(
                        "e-mail %s: some recipients refused: %s",
                        message["Message-ID"],
                        self.redact(str(refused)),
                    )
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
            code = worst_code([code for code, _ in exc.recipients.values()])
            raise self._unavailable(where, code, _said(exc.recipients)) from None
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS or AUTH: a setting to fix
            raise self._unavailable(where, 530, str(exc)) from None
        except smtplib.SMTPResponseException as exc:  # 4xx/5xx at MAIL, DATA, AUTH, STARTTLS
            if sent:  # QUIT failed after the 250: delivered all the same
                return where
            said = exc.smtp_error.decode("utf-8", "replace")
            raise self._unavailable(where, exc.smtp_code, said) from None
        except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timeout, TLS
            if sent:
                return where
            # Before MAIL FROM nothing can have been delivered; a connection lost while sending
            # may have been (after the data, before the reply): the claim stays pending and
            # the retry sends again, with the same Message-ID.
            raise EmailUnavailable(
                self.redact(f"SMTP {where}: {type(exc).__name__}: {exc}"),
                None,
                surely_not_sent=not sending,
            ) from None
        return where

    def _unavailable(self, where: str, code: int | None, said: str) -> EmailUnavailable:
        return EmailUnavailable(self.redact(f"SMTP {where} answered {code}: {said}"), code)


def _said(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address}: {code} {reply.decode('utf-8', 'replace')}"
        for address, (code, reply) in recipients.items()
    )


class OutboxEmail:
    """Without an SMTP host: each e-mail written to `<outbox>/email/<day>/` as an .eml file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "email"

    def send(self, message: EmailMessage, accepted: Callable[[], None]) -> str:
        """Write the message as it would be sent; return the file's path."""
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        folder = self.directory / day
        folder.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").split("@")[0]
        path = folder / f"{time.time():.6f}-{name}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(message.as_bytes())
        tmp.replace(path)  # whole or absent: `make run` and a reader never see half a file
        accepted()
        return str(path)


def make_email_gateway(settings: Settings, redact: Callable[[str], str]) -> EmailGateway:
    """Return the SMTP gateway when a host is set, else the outbox."""
    if settings.email_outbox_mode:
        return OutboxEmail(settings.outbox_dir)
    return SmtpGateway(settings, redact)


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
    if not rt.settings.email_outbox_mode and (left_ms := rt.redis.pttl(BREAKER_KEY)) > 0:
        why = (rt.redis.get(BREAKER_KEY) or b"").decode("utf-8", "replace")
        raise EmailUnavailable(f"{why} (not tried again for {left_ms / 1000:.0f} s)", None)
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
            rt.redis.set(BREAKER_KEY, str(exc)[:500], ex=BREAKER_SECONDS, nx=True)
        raise
    if mail.incident_id:
        rt.incidents.log(
            mail.incident_id, f"e-mail {mail.kind} sent to {', '.join(mail.to)}", "responder"
        )
    # At INFO: `make run` shows each e-mail, and where the outbox wrote it.
    log.info("e-mail %s %r to %s: %s", mail.kind, message["Subject"], ", ".join(mail.to), where)
    return f"{mail.kind}: e-mailed {', '.join(mail.to)}"
