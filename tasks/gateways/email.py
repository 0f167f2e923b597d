"""The gateway that sends e-mail: SMTP through `smtplib`, or the outbox without a host.

Each message is sent exactly once in effect by `tasks.notify.email_send.send_once`, which sits
a layer above (it needs the runtime; this module is built by it).
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

from tasks.gateways.email_compose import worst_code
from tasks.settings import Settings

log = logging.getLogger(__name__)

# After the SMTP server was unreachable or silent (a timeout), the next attempts within this
# many seconds fail at once instead of each holding a worker slot for the whole timeout: one
# attempt probes the server, the others back off. A 4xx or 5xx answer does not trip it.
BREAKER_SECONDS = 30


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

    @property
    def surely_not_applied(self) -> bool:
        """Return whether it is known not to have been delivered (`tasks.store.effects`)."""
        return self.surely_not_sent


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
