"""One deadline for each request's whole body, enforced at every socket read.

A client that announces `Content-Length: 100000`, sends a few bytes and waits would otherwise
hold whatever reads its body (a worker, a thread, a greenlet) until the server's own timeout.
Each `recv()` of the body is given the time left until the deadline, not a fresh timeout, so a
client dribbling one byte at a time cannot stretch the read either.

Under gunicorn the body is read through the connection's unreader; for the length of the
request its socket is swapped for one that knows the deadline, and swapped back after (the
connection may serve the next request). Under other servers (the tests' client) there is no
socket to bound and bodies are read as before.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from werkzeug.exceptions import RequestTimeout


class SlowBody(RequestTimeout):
    """The request body did not arrive within the read deadline (answered 408)."""

    def __init__(self, seconds: float, received: int, announced: str | None) -> None:
        of = f" of {announced}" if announced else ""
        super().__init__(
            f"the request body did not arrive within {seconds:g} s "
            f"({received}{of} bytes received); send it whole, without pauses"
        )


class _DeadlineSocket:
    """The connection's socket as the body reader sees it: each recv gets only the time left."""

    def __init__(self, sock: Any, seconds: float, announced: str | None, buffered: int) -> None:
        self.sock = sock
        self.seconds = seconds
        self.announced = announced
        self.deadline = time.monotonic() + seconds
        self.received = buffered  # what came with the headers is the body's too

    def recv(self, size: int) -> bytes:
        """Receive at most `size` bytes before the deadline; SlowBody past it."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise SlowBody(self.seconds, self.received, self.announced)
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(size)
        except TimeoutError:  # socket.timeout, also under gevent
            raise SlowBody(self.seconds, self.received, self.announced) from None
        self.received += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class BodyDeadline:
    """WSGI middleware: give each request's body `seconds` to arrive, from its headers on."""

    def __init__(self, app: WSGIApplication, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer the request with the body's socket reads bounded by the deadline."""
        restore = self.bound(environ)
        try:
            return self.app(environ, start_response)
        finally:
            restore()

    def bound(self, environ: WSGIEnvironment) -> Callable[[], None]:
        """Bound the body's socket reads; return what puts the connection back as it was."""
        announced = environ.get("CONTENT_LENGTH") or None
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        unreader = _unreader(environ.get("wsgi.input"))
        sock = getattr(unreader, "sock", None)
        has_body = chunked or announced not in (None, "0")
        if not has_body or not all(hasattr(sock, n) for n in ("recv", "gettimeout", "settimeout")):
            return _nothing
        prior = sock.gettimeout()
        buffered = getattr(unreader, "buf", None)
        already = len(buffered.getbuffer()) if isinstance(buffered, io.BytesIO) else 0
        unreader.sock = _DeadlineSocket(sock, self.seconds, announced, already)

        def restore() -> None:
            unreader.sock = sock
            sock.settimeout(prior)

        return restore


def _unreader(stream: object) -> Any:
    """Return gunicorn's unreader behind its body stream (`Body.reader.unreader`), or None."""
    reader = getattr(stream, "reader", None)
    request = getattr(reader, "req", None)  # the chunked reader keeps only its request
    return getattr(reader, "unreader", None) or getattr(request, "unreader", None)


def _nothing() -> None:
    pass
