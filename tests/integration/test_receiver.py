"""The Alertmanager endpoint against real Redis: auth, validation, recording, dedup, 202."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask.testing import FlaskClient

from tasks.settings import Secret, Settings
from tests.support import TOKEN, sample_payload
from webhooks import create_app

BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(intake_settings: Settings) -> Iterator[FlaskClient]:
    yield create_app(intake_settings).test_client()


def post(client: FlaskClient, payload: object, headers: dict[str, str] | None = None):
    return client.post(
        "/webhooks/alertmanager",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json", **(BEARER if headers is None else headers)},
    )


def test_an_alert_is_recorded_classified_and_queued(client: FlaskClient, redis_client) -> None:
    response = post(client, sample_payload())
    assert response.status_code == 202
    body = response.get_json()
    assert body["priority"] == "P1" and body["duplicate"] is False
    stored = client.get(f"/deliveries/{body['delivery_id']}", headers=BEARER).get_json()
    assert stored["source"] == "alertmanager"
    assert stored["classification"]["rule"] == "signal-latency-over-5s"
    assert stored["pipeline"] == "queued"
    assert stored["payload"] == sample_payload()  # the raw body, byte for byte
    assert "Authorization" not in json.dumps(stored["headers"])


def test_the_same_alert_again_is_a_duplicate_and_starts_nothing(client: FlaskClient) -> None:
    first = post(client, sample_payload()).get_json()
    second = post(client, sample_payload()).get_json()
    assert second["duplicate"] is True
    assert second["delivery_id"] != first["delivery_id"]  # still recorded, for the log
    stored = client.get(f"/deliveries/{second['delivery_id']}", headers=BEARER).get_json()
    assert stored["pipeline"] == "not started: duplicate"


def test_a_resolved_only_group_is_recorded_without_a_pipeline(client: FlaskClient) -> None:
    payload = sample_payload(status="resolved")
    payload["alerts"][0].update(status="resolved", endsAt="2026-11-27T15:00:00Z")
    body = post(client, payload).get_json()
    stored = client.get(f"/deliveries/{body['delivery_id']}", headers=BEARER).get_json()
    assert stored["pipeline"] == "not started: no new firing alert"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({}, "missing Authorization header"),
        ({"Authorization": "Bearer wrong"}, "invalid bearer token"),
        ({"Authorization": "Digest abc"}, "unsupported Authorization scheme 'digest'"),
        (
            {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()},
            "basic auth is not accepted",
        ),
    ],
)
def test_unauthenticated_posts_get_401_with_a_challenge(
    client: FlaskClient, headers: dict[str, str], problem: str
) -> None:
    response = post(client, sample_payload(), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"].startswith(problem)
    assert response.get_json()["field"] == "Authorization"


def test_basic_auth_is_accepted_when_configured(intake_settings: Settings) -> None:
    app = create_app(replace(intake_settings, alertmanager_basic_auth=Secret("am:pa55")))
    good = "Basic " + base64.b64encode(b"am:pa55").decode()
    bad = "Basic " + base64.b64encode(b"am:nope").decode()
    client = app.test_client()
    assert post(client, sample_payload(), {"Authorization": good}).status_code == 202
    assert post(client, sample_payload(), {"Authorization": bad}).status_code == 401


def test_unauthenticated_local_posts_need_the_explicit_setting(
    intake_settings: Settings,
) -> None:
    open_app = create_app(replace(intake_settings, allow_unauthenticated=True)).test_client()
    assert post(open_app, sample_payload(), headers={}).status_code == 202
    remote = open_app.post(
        "/webhooks/alertmanager",
        json=sample_payload(),
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert remote.status_code == 401  # the setting covers loopback only


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_a_loopback_post_a_proxy_forwarded_is_not_trusted_as_loopback_and_says_why(
    intake_settings: Settings, header: str
) -> None:
    open_app = create_app(replace(intake_settings, allow_unauthenticated=True)).test_client()
    forwarded = post(open_app, sample_payload(), headers={header: "203.0.113.7"})
    assert forwarded.status_code == 401
    assert f"the request carries {header}, so a proxy forwarded it" in forwarded.get_data(
        as_text=True
    )
    with_token = post(
        open_app,
        sample_payload(),
        headers={header: "203.0.113.7", "Authorization": f"Bearer {TOKEN}"},
    )
    assert with_token.status_code == 202


def test_no_credentials_configured_means_every_post_is_refused(settings: Settings) -> None:
    bare = replace(settings, alertmanager_token=Secret(""))
    response = post(create_app(bare).test_client(), sample_payload(), headers={})
    assert response.status_code == 401
    assert "no credentials are configured" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "field", "error"),
    [
        ("{not json", 400, "(body)", "body is not valid JSON"),
        (json.dumps({"version": "4", "alerts": []}), 400, "alerts", "expected a non-empty list"),
        (json.dumps(sample_payload(version="3")), 400, "version", 'expected "4"'),
    ],
)
def test_bad_bodies_get_400_naming_the_field(
    client: FlaskClient, body: str, status: int, field: str, error: str
) -> None:
    response = client.post(
        "/webhooks/alertmanager",
        data=body,
        headers={"Content-Type": "application/json", **BEARER},
    )
    assert response.status_code == status
    assert response.get_json()["field"] == field
    assert response.get_json()["error"].startswith(error)


def test_non_json_content_type_is_415(client: FlaskClient) -> None:
    response = client.post(
        "/webhooks/alertmanager", data="x", headers={"Content-Type": "text/plain", **BEARER}
    )
    assert response.status_code == 415
    assert response.get_json()["field"] == "Content-Type"


def test_bodies_over_256_kb_are_413_without_parsing(client: FlaskClient) -> None:
    response = client.post(
        "/webhooks/alertmanager",
        data=b"[" + b" " * (300 * 1024) + b"]",
        headers={"Content-Type": "application/json", **BEARER},
    )
    assert response.status_code == 413
    assert response.get_json() == {"error": "request body too large", "field": "(body)"}


def chunked(client: FlaskClient, path: str, body: bytes, headers: dict[str, str]):
    """Post `body` with Transfer-Encoding: chunked, as a server hands it over: no length."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked", **headers},
        # A server that decodes chunked bodies itself says so; the length is then unknown.
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_past_256_kb_is_413_not_cut_and_parsed(client: FlaskClient) -> None:
    # 400 KB of valid JSON: cut at 256 KB and parsed, it used to be "400 body is not valid JSON".
    body = json.dumps(sample_payload()).encode() + b" " * (400 * 1024)
    response = chunked(client, "/webhooks/alertmanager", body, BEARER)
    assert response.status_code == 413
    assert response.get_json() == {"error": "request body too large", "field": "(body)"}


def test_a_chunked_body_of_exactly_256_kb_is_accepted(client: FlaskClient) -> None:
    payload = json.dumps(sample_payload(groupKey="exactly-the-cap")).encode()
    body = payload + b" " * (256 * 1024 - len(payload))
    response = chunked(client, "/webhooks/alertmanager", body, BEARER)
    assert response.status_code == 202, response.get_json()


def test_other_methods_and_paths_under_the_endpoint_are_refused_in_json(
    client: FlaskClient,
) -> None:
    wrong_method = client.get("/webhooks/alertmanager", headers=BEARER)
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "OPTIONS, POST"
    assert wrong_method.get_json()["field"] == "(method)"
    options = client.options("/webhooks/alertmanager")
    assert options.status_code == 204 and options.headers["Allow"] == "OPTIONS, POST"
    below = client.post("/webhooks/alertmanager/extra", json=sample_payload(), headers=BEARER)
    assert below.status_code == 404 and below.get_json()["error"] == "not found"
    text = client.get("/metrics").get_data(as_text=True)
    assert 'responder_request_seconds_count{method="GET",route="/webhooks/alertmanager"}' in text
    assert 'responder_request_seconds_count{method="POST",route="(unmatched)"} 1.0' in text


def test_a_doubled_slash_is_redirected_to_the_endpoint(client: FlaskClient) -> None:
    response = client.post("/webhooks//alertmanager", json=sample_payload(), headers=BEARER)
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/webhooks/alertmanager")
    followed = client.post(
        "/webhooks//alertmanager", json=sample_payload(), headers=BEARER, follow_redirects=True
    )
    assert followed.status_code == 202 and followed.get_json()["priority"] == "P1"


def test_the_listed_flask_view_answers_like_the_endpoint(intake_settings: Settings) -> None:
    app = create_app(intake_settings)
    payload = sample_payload(groupKey="via-flask")
    with app.test_request_context(
        "/webhooks/alertmanager", method="POST", json=payload, headers=BEARER
    ):
        answer = app.view_functions["alertmanager"]()
    assert answer.status_code == 202 and answer.get_json()["duplicate"] is False


def test_a_body_shorter_than_its_content_length_is_400_not_a_crash(
    intake_settings: Settings, redis_client
) -> None:
    # What gunicorn hands over when the sender goes away mid-body; werkzeug raises
    # ClientDisconnected when the stream ends early. Called as WSGI: the test client pads.
    app = create_app(intake_settings)
    body = json.dumps(sample_payload()).encode()
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/alertmanager", "SERVER_NAME": "t",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body[:100]), "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": BEARER["Authorization"], "REMOTE_ADDR": "10.0.0.5",
    }  # fmt: skip
    statuses: list[str] = []
    answer = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    assert statuses[0].startswith("400")
    assert json.loads(answer)["error"].startswith("cannot read the body")
    assert redis_client.zcard("responder:deliveries") == 0  # nothing half recorded


def test_json_nested_too_deeply_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/webhooks/alertmanager",
        data=b"[" * 100_000 + b"]" * 100_000,
        headers={"Content-Type": "application/json", **BEARER},
    )
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "body is not usable JSON: it nests deeper than 32 levels",
        "field": "(body)",
    }


def test_the_content_type_is_matched_whatever_its_case(client: FlaskClient) -> None:
    response = post(client, sample_payload(), {"Content-Type": "Application/JSON", **BEARER})
    assert response.status_code == 202


def test_health_and_readiness(client: FlaskClient, settings: Settings) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["redis"] == "ok"
    assert ready.get_json()["checks"]["policy"] == settings.policy_path


def test_readiness_is_503_when_redis_is_unreachable(settings: Settings) -> None:
    app = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"].startswith("unreachable")


def test_a_delivery_is_503_not_2xx_when_redis_is_unreachable(settings: Settings) -> None:
    app = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0"))
    response = post(app.test_client(), sample_payload())
    assert response.status_code == 503  # Alertmanager retries 5xx only


def test_unknown_delivery_is_404_naming_it(client: FlaskClient) -> None:
    response = client.get("/deliveries/nope", headers=BEARER)
    assert response.status_code == 404
    assert "nope" in response.get_json()["error"]
