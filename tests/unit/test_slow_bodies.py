"""A request body has one deadline, whatever pace its client sends at; its setting has a range."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from tasks.settings import SettingsError, settings_from_env
from webhooks.body_deadline import BodyDeadline, SlowBody


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Return (the server's end, the client's end) of a real connection."""
    server, client = socket.socketpair()
    with server, client:
        yield server, client


def read_through_deadline(server: socket.socket, length: int, seconds: float) -> bytes:
    """Read a body as gunicorn gives it to the app, behind BodyDeadline; return what came."""
    body = Body(LengthReader(SocketUnreader(server), length))
    environ = {"wsgi.input": body, "CONTENT_LENGTH": str(length)}
    read: list[bytes] = []

    def app(environ: dict, start_response: object) -> list[bytes]:
        read.append(environ["wsgi.input"].read())
        return []

    BodyDeadline(app, seconds)(environ, lambda *a: None)
    return read[0]


def test_a_body_that_arrives_whole_is_read_and_the_socket_is_left_as_it_was(connection) -> None:
    server, client = connection
    client.sendall(b'{"event": {}}')
    assert read_through_deadline(server, 13, 5) == b'{"event": {}}'
    assert server.gettimeout() is None  # the connection may serve the next request


def test_a_body_that_stops_arriving_is_refused_naming_what_came(connection) -> None:
    server, client = connection
    client.sendall(b'{"event": ')  # then silence
    with pytest.raises(SlowBody) as refused:
        read_through_deadline(server, 100_000, 0.3)
    assert refused.value.code == 408
    assert refused.value.description.startswith(
        "the request body did not arrive within 0.3 s (10 of 100000 bytes received)"
    )
    assert server.gettimeout() is None


def test_a_body_dribbled_a_byte_at_a_time_cannot_stretch_the_deadline(connection) -> None:
    # Each byte comes well within a per-read timeout; only a deadline for the whole body stops it.
    server, client = connection
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(0.05):
            try:
                client.send(b" ")
            except OSError:
                return

    sender = threading.Thread(target=dribble)
    sender.start()
    try:
        with pytest.raises(SlowBody):
            read_through_deadline(server, 100_000, 0.5)
    finally:
        stop.set()
        sender.join()


def test_a_request_without_a_body_or_outside_gunicorn_is_passed_through_untouched() -> None:
    seen: list[dict] = []

    def app(environ: dict, start_response: object) -> list[bytes]:
        seen.append(dict(environ))
        return [b"ok"]

    for environ in ({"REQUEST_METHOD": "GET"}, {"CONTENT_LENGTH": "5", "wsgi.input": object()}):
        assert BodyDeadline(app, 1)(environ, lambda *a: None) == [b"ok"]
    assert len(seen) == 2


@pytest.mark.parametrize("value", ["0", "-5", "600", "nan"])
def test_a_body_read_deadline_out_of_range_is_refused_at_start_up(value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        settings_from_env({"RESPONDER_BODY_READ_SECONDS": value})
    assert str(refused.value) == (
        f"RESPONDER_BODY_READ_SECONDS: must be a number of seconds from 0.5 to 60, got {value!r}"
    )


def test_the_body_read_deadline_defaults_to_ten_seconds() -> None:
    assert settings_from_env({}).body_read_seconds == 10.0
    assert settings_from_env({"RESPONDER_BODY_READ_SECONDS": "2.5"}).body_read_seconds == 2.5
