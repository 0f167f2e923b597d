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
        ('{"routing_key": "e93facc04764012d7bfb002500d5d1a6"}', "e93facc04764012d7bfb002500d5d1a6"),
        ("PAGERDUTY_INTEGRATION_KEY=0123456789abcdef0123456789abcdef", "0123456789abcdef"),
        ("amqp://guest:guestpass@rabbit:5672//", "guestpass"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA\n-----END OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaA",
        ),
    ],
)
def test_secret_shapes_are_masked(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert MASK in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "5/6 services healthy; risk-manager cannot connect: connection refused",
        "incident_key=7d0a30fb280de54eb03a3f9881b0e2247250f20601b3be73c4a4e7de43be1504",
        "http://prometheus:9090/graph?g0.expr=up&g0.tab=1",
        "fingerprint 5f1c6a2b9d3e4f70, 3 restarts, token bucket at 12/960",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text
