"""Redaction: secrets never reach a note or a bundle."""

import pytest

from collectors.redact import MASK, make_redactor

redact = make_redactor(["s3cr3t-configured-value"])


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgres://eafix:hunter2@db:5432/eafix_prod", "hunter2"),
        ("redis://:r3dispass@cache:6379/0", "r3dispass"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def", "eyJhbGciOiJIUzI1NiJ9"),
        ("Authorization: Token token=y_NbAkKc66ryYTWUXYEu", "y_NbAkKc66ryYTWUXYEu"),
        ("DB_PASSWORD=topsecret42 next", "topsecret42"),
        ("api_key: abcdef123456", "abcdef123456"),
        ("key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
        ("the value s3cr3t-configured-value leaked", "s3cr3t-configured-value"),
    ],
)
def test_secret_shapes_are_masked(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert MASK in cleaned


def test_ordinary_text_is_left_alone() -> None:
    text = "5/6 services healthy; risk-manager cannot connect: connection refused"
    assert redact(text) == text
