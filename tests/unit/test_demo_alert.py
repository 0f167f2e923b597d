"""`responder demo-alert`: a new incident every time, and its resolution matches it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import responses
from click.testing import CliRunner

from tasks.cli import main
from tasks.cli.demo_alert import fresh_alert
from triage.models import parse_alertmanager

T0 = datetime(2026, 11, 29, 10, 0, 0, 123000, tzinfo=UTC)


def test_each_demo_alert_is_a_new_group_that_fired_now() -> None:
    first, second = fresh_alert(T0), fresh_alert(T0 + timedelta(milliseconds=1))
    group = parse_alertmanager(first)
    assert group.alerts[0].starts_at == T0 and group.status == "firing"
    assert group.incident_key != parse_alertmanager(second).incident_key
    assert group.alerts[0].dedup_key != parse_alertmanager(second).alerts[0].dedup_key


def test_a_resolution_matches_its_alert() -> None:
    resolved = parse_alertmanager(fresh_alert(T0, T0 + timedelta(minutes=7)))
    fired = parse_alertmanager(fresh_alert(T0))
    assert resolved.incident_key == fired.incident_key
    assert resolved.alerts[0].fingerprint == fired.alerts[0].fingerprint
    assert resolved.alerts[0].status == "resolved"
    assert resolved.alerts[0].ends_at == T0 + timedelta(minutes=7)


@responses.activate
def test_demo_alert_posts_with_the_token_and_says_how_to_resolve(monkeypatch) -> None:
    monkeypatch.setenv("RESPONDER_ALERTMANAGER_TOKEN", "s3cret-token")
    monkeypatch.setenv("RESPONDER_PUBLIC_URL", "http://127.0.0.1:9090")
    posted = responses.post(
        "http://127.0.0.1:9090/webhooks/alertmanager",
        json={"delivery_id": "d1", "priority": "P1", "duplicate": False},
        status=202,
    )
    result = CliRunner().invoke(main, ["demo-alert"])
    assert result.exit_code == 0, result.output
    assert '"delivery_id": "d1"' in result.stdout
    assert "resolve it with: responder demo-alert --resolve demo-" in result.stderr
    request = posted.calls[0].request
    assert request.headers["Authorization"] == "Bearer s3cret-token"
    body = json.loads(request.body)
    assert body["alerts"][0]["labels"]["demo"] in result.stderr


@responses.activate
def test_a_receiver_that_is_not_running_is_a_sentence_not_a_traceback(monkeypatch) -> None:
    monkeypatch.delenv("RESPONDER_PUBLIC_URL", raising=False)
    result = CliRunner().invoke(main, ["demo-alert", "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "cannot reach the receiver at http://127.0.0.1:1/webhooks/alertmanager" in result.output


def test_a_resolve_id_that_no_demo_printed_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["demo-alert", "--resolve", "yesterday", "--print"])
    assert result.exit_code == 2
    assert "expected the id a demo alert printed" in result.output
