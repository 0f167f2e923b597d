"""`responder run`'s links in notes follow the address it listens on."""

import pytest

from tasks.cli import bind_address, local_url


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 9000, "http://127.0.0.1:9000"),
        ("192.0.2.10", 8080, "http://192.0.2.10:8080"),
        # A wildcard bind is reached from this machine through loopback.
        ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
        ("::", 9000, "http://[::1]:9000"),
        ("::1", 8081, "http://[::1]:8081"),
    ],
)
def test_the_public_url_of_a_local_run_is_where_it_listens(host: str, port: int, url: str) -> None:
    assert local_url(host, port) == url


def test_an_ipv6_address_is_bracketed_for_gunicorn() -> None:
    assert bind_address("::1", 8080) == "[::1]:8080"
    assert bind_address("127.0.0.1", 8080) == "127.0.0.1:8080"
