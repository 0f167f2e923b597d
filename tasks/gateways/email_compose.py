"""E-mails as data, and the pure decisions around them: the message, its Message-ID, retries.

Nothing here talks to a server: `tasks.gateways.email` sends what `build_message` builds, and
asks `decide_smtp` whether a failure is worth another try.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from tasks.retries import MAX_DELAY_SECONDS, Verdict


@dataclass(frozen=True)
class Mail:
    """One e-mail of the responder: what it is about (kind + key), to whom, what it says.

    `kind` and `key` (an incident id, or a summary's id) make its once-record and its
    Message-ID; `thread` is the key of the e-mail it follows up (the desk's summary follows
    the desk's alert), so mail clients show them as one conversation.
    """

    kind: str
    key: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    priority: str = ""
    incident_id: str = ""
    thread: str = ""  # key of the e-mail of kind `thread_kind` this one replies to
    thread_kind: str = ""

    def redacted(self, redact: Callable[[str], str]) -> Mail:
        """Return the mail with every text passed through `redact` (no secret leaves)."""
        return replace(
            self, subject=redact(self.subject), text=redact(self.text), html=redact(self.html)
        )


# RFC 5322's line limit, not 78: ASCII text then goes as 7bit, readable as it is in an .eml
# file of the outbox, instead of quoted-printable with a "=" at every 76th character.
READABLE = policy.default.clone(max_line_length=998)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def message_id(kind: str, key: str, sender: str) -> str:
    """Return the Message-ID of the e-mail (kind, key): the same on every attempt.

    SMTP has no idempotency key. A retry after an attempt whose outcome is unknown sends the
    same Message-ID again, so a duplicate is recognisable (and dropped by many mail stores)
    and threads with the first.
    """
    domain = sender.rpartition("@")[2] or "eafix-responder.invalid"
    return f"<eafix-responder.{_UNSAFE.sub('-', kind)}.{_UNSAFE.sub('-', key)}@{domain}>"


def build_message(mail: Mail, sender: str, now: datetime) -> EmailMessage:
    """Return the MIME message: a text part and an HTML alternative, threaded by Message-ID."""
    message = EmailMessage(policy=READABLE)
    message["From"] = Address(display_name="EAFIX responder", addr_spec=sender)
    message["To"] = ", ".join(mail.to)
    message["Subject"] = _one_line(mail.subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(mail.kind, mail.key, sender)
    if mail.thread:
        first = message_id(mail.thread_kind, mail.thread, sender)
        message["In-Reply-To"] = first
        message["References"] = first
    # RFC 3834: no vacation auto-replies to an alert, no loops with a ticketing system.
    message["Auto-Submitted"] = "auto-generated"
    message["X-EAFIX-Kind"] = mail.kind
    if mail.incident_id:
        message["X-EAFIX-Incident"] = mail.incident_id
    if mail.priority:
        message["X-EAFIX-Priority"] = mail.priority
    message.set_content(mail.text + "\n")
    message.add_alternative(mail.html, subtype="html")
    return message


def _one_line(text: str) -> str:
    """Return a header value on one line (a newline in a subject would end the header)."""
    return " ".join(text.split())[:250]


def decide_smtp(
    code: int | None, attempt: int, base_delay: float = 2.0, *, reason: str = ""
) -> Verdict:
    """Classify a failed SMTP send; `code` is the server's reply, None for the network.

    RFC 5321: a 4xx reply is a transient failure (greylisting, a full queue, 451 local error),
    worth trying again; a 5xx reply is permanent (550 no such mailbox, 535 bad credentials,
    554 refused), and trying again only repeats it. A refused or dropped connection, or a
    timeout, is retried. Backoff doubles from `base_delay`, capped like every retry.
    """
    backoff = min(base_delay * 2 ** (attempt - 1), MAX_DELAY_SECONDS)
    said = f": {reason}" if reason else ""
    if code is None:
        return Verdict(True, backoff, f"SMTP server unreachable or silent{said}")
    if 400 <= code < 500:
        return Verdict(True, backoff, f"SMTP {code} transient failure{said}")
    return Verdict(False, 0.0, f"SMTP {code} permanent failure, not retried{said}")


def worst_code(codes: Sequence[int]) -> int | None:
    """Return the reply that decides for several recipients: any permanent one, else the first.

    Some addresses refused for good and others for now: the e-mail cannot reach everyone by
    trying again, and sending again would repeat it to those who got it.
    """
    if not codes:
        return None
    permanent = [c for c in codes if c >= 500]
    return permanent[0] if permanent else codes[0]
