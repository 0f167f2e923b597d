"""A real SMTP server for the tests (aiosmtpd), with scripted replies and what it received.

Not a fake of a vendor's API: aiosmtpd speaks SMTP (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) as
a mail server does; the tests read the messages it accepted, parsed as a mail client would.
`replies` scripts the answers to the next DATA commands ("451 ..." twice, then accept), so
retries and permanent failures are driven through the real protocol.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    """One message the server accepted: its envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    tls: bool
    login: str
    at: float = 0.0  # time.time() when it was accepted

    def part(self, subtype: str) -> str:
        """Return the text of the message's `text/<subtype>` part."""
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content()).replace("\r\n", "\n")


class _Controller(Controller):
    """aiosmtpd's controller on a port the OS picks (port 0)."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """An SMTP server on a loopback port the OS picks; optionally STARTTLS and AUTH."""

    def __init__(
        self,
        tls_context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.received: list[Received] = []
        self.replies: list[str] = []  # answers to the next DATA commands, then 250
        self.data_commands = 0
        # Scripted answers for the messages that contain a text (an incident id): an e-mail
        # another test's leftover task sends meanwhile does not take them.
        self._scripts: dict[str, list[str]] = {}
        self.attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._credentials = credentials
        kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_require_tls=tls_context is not None
            )
        self._controller = _Controller(self, hostname="127.0.0.1", port=0, **kwargs)

    def start(self) -> SmtpServer:
        """Start serving; return self."""
        self._controller.start()
        return self

    @property
    def port(self) -> int:
        """Return the port it listens on."""
        return int(self._controller.port)

    def stop(self) -> None:
        """Stop serving."""
        self._controller.stop()

    def reset(self) -> None:
        """Forget what was received and any scripted replies."""
        with self._lock:
            self.received.clear()
            self.replies.clear()
            self.data_commands = 0
            self._scripts.clear()
            self.attempts.clear()

    def script(self, containing: str, replies: list[str]) -> None:
        """Answer the next DATA commands of messages containing `containing` with `replies`.

        A reply `hold:<seconds>` stores the message, then waits that long before its 250: a
        client killed meanwhile never learns the server has it.
        """
        with self._lock:
            self._scripts[containing] = list(replies)
            self.attempts[containing] = 0

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self._credentials is not None:
            given = (data.login.decode(), data.password.decode())
            if given == self._credentials:
                return AuthResult(success=True, auth_data=given[0])
        # handled=False: the server answers 535 (True would leave the client waiting).
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Accept the message (250) or answer with the next scripted reply."""
        hold = 0.0
        with self._lock:
            self.data_commands += 1
            content = envelope.content.decode("utf-8", "replace")
            for containing, replies in self._scripts.items():
                if containing in content:
                    self.attempts[containing] += 1
                    if replies and replies[0].startswith("hold:"):
                        hold = float(replies.pop(0).removeprefix("hold:"))
                    elif replies:
                        return replies.pop(0)
            if self.replies and not hold:
                return self.replies.pop(0)
            message = BytesParser(policy=policy.default).parsebytes(envelope.content)
            login = session.auth_data if isinstance(session.auth_data, str) else ""
            self.received.append(
                Received(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    message,  # type: ignore[arg-type]
                    session.ssl is not None,
                    login,
                    time.time(),
                )
            )
        if hold:
            await asyncio.sleep(hold)
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        """Return the messages received for `address`."""
        with self._lock:
            return [r for r in self.received if address in r.rcpt_tos]
