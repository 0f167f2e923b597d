"""Thousands of generated and mutated payloads: only 2xx or 4xx, never a 5xx or a crash."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.settings import Secret, Settings
from tests.integration.test_pagerduty_webhook import EVENT, HISTORY, SECRET, sign
from tests.support import TOKEN, sample_payload
from webhooks import create_app

FUZZ_QUEUE = "responder-fuzz"  # no worker listens: nothing generated here is ever run

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON document, for mutation."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, original: dict[str, Any]) -> Any:
    """The original document with a few parts replaced, deleted or retyped."""
    document = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(paths(document)))
        if not where:
            return draw(json_values)
        parent = document
        for step in where[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(where[-1], None)
        else:
            parent[where[-1]] = draw(json_values)
    return document


@pytest.fixture(scope="module")
def client(settings: Settings, redis_url: str) -> Iterator[FlaskClient]:
    # The example's recorded occurred_at: without HISTORY every mutant would stop at its age.
    secrets = (Secret(SECRET),)
    fuzz = replace(settings, queue=FUZZ_QUEUE, pagerduty_webhook_secrets=secrets, **HISTORY)
    yield create_app(fuzz).test_client()
    redis.Redis.from_url(redis_url).delete(FUZZ_QUEUE)


def assert_handled(response) -> None:
    assert 200 <= response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        body = response.get_json()
        assert body["error"]  # every rejection names the problem


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(mutated(sample_payload()), json_values))
def test_alertmanager_endpoint_never_fails(client: FlaskClient, payload: Any) -> None:
    response = client.post(
        "/webhooks/alertmanager",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    assert_handled(response)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(mutated(EVENT), json_values), webhook_id=st.text(max_size=40))
def test_pagerduty_endpoint_never_fails(client: FlaskClient, payload: Any, webhook_id: str) -> None:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sign(body)}
    if webhook_id.isprintable():
        headers["X-Webhook-Id"] = webhook_id
    assert_handled(client.post("/webhooks/pagerduty", data=body, headers=headers))


@settings(deadline=None)
@given(
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_raw_bytes_never_fail(client: FlaskClient, raw: bytes, content_type: str) -> None:
    for route in ("/webhooks/alertmanager", "/webhooks/pagerduty"):
        headers = {"Authorization": f"Bearer {TOKEN}", "X-PagerDuty-Signature": sign(raw)}
        if content_type:
            headers["Content-Type"] = content_type
        assert_handled(client.post(route, data=raw, headers=headers))
