"""A catalog URL with credentials is called with them, and shown, logged or noted without."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tasks.actions.execute import describe_call
from tasks.settings import Settings
from triage.actions import call_url, resolve
from triage.policy import builtin, shown_url

POLICY = builtin()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://ops:s3cret@gui-gateway:8080/x", "http://gui-gateway:8080/x"),
        ("http://ops@gui-gateway:8080/x", "http://gui-gateway:8080/x"),
        ("https://gui-gateway/x?y=1", "https://gui-gateway/x?y=1"),
    ],
)
def test_a_url_is_shown_without_its_user_and_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_an_action_calls_with_the_catalogs_credentials_and_describes_the_call_without() -> None:
    gateway = POLICY.catalog["gui-gateway"]
    secret = replace(gateway, health_url="http://ops:s3cret@gui-gateway:8080/healthz")
    policy = replace(POLICY, catalog={**POLICY.catalog, "gui-gateway": secret})
    resolved = resolve(policy, "stop-trading", None)
    assert call_url(resolved) == "http://ops:s3cret@gui-gateway:8080/emergency/stop-trading"
    described = describe_call(resolved, Settings())
    assert described == "POST http://gui-gateway:8080/emergency/stop-trading"
