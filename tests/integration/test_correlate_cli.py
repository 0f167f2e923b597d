"""`responder correlate` over a real delivery log: recorded deliveries replayed by the rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from click.testing import CliRunner

from tasks.cli import main
from tasks.settings import Settings
from tests.support import TOKEN, sample_payload
from webhooks import create_app

QUEUE = "responder-correlate-test"  # no worker listens: the receiver's tasks stay queued


@pytest.fixture
def env(settings: Settings, redis_client, monkeypatch) -> Iterator[redis.Redis]:
    monkeypatch.setenv("RESPONDER_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RESPONDER_QUEUE", QUEUE)
    yield redis_client
    for key in redis_client.scan_iter(QUEUE + "*"):
        redis_client.delete(key)


def alert(name: str, status: str = "firing", **labels: str) -> dict:
    return {
        "status": status,
        "labels": {"alertname": name, "category": "outage", "scope": "single", **labels},
        "annotations": {"summary": f"{name} in the test"},
        "startsAt": "2027-03-03T14:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"{abs(hash((name, tuple(labels.items())))):016x}",
    }


def post(settings: Settings, group: str, *alerts: dict) -> str:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    payload = sample_payload(groupKey=f'{{}}:{{group="{group}"}}', status=status, alerts=alerts)
    app = create_app(replace(settings, queue=QUEUE))
    answer = app.test_client().post(
        "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["delivery_id"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def record_an_outage_and_an_unrelated_disk(settings: Settings) -> None:
    post(settings, "ee", alert("ExecutionEngineDown", service="execution-engine"))
    post(settings, "rm", alert("RiskManagerDown", service="risk-manager"))
    post(settings, "disk", alert("DiskFilling", instance="batch-host-7"))
    post(settings, "gui", alert("Gui\x1b[2JDown", service="gui-gateway"))
    post(settings, "ee", alert("ExecutionEngineDown", "resolved", service="execution-engine"))


def test_correlate_prints_the_incidents_the_recorded_deliveries_would_make(
    env, settings: Settings
) -> None:
    record_an_outage_and_an_unrelated_disk(settings)
    result = run("correlate", "--since", "1h")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "(correlation mode on; replayed by its rules whatever the mode)" in out
    assert "5 Alertmanager deliveries in the last 1h: 2 incidents" in out
    assert "incident #1: 3 members" in out and "incident #2: 1 member," in out
    assert (
        "probable origin: risk-manager; downstream symptoms: execution-engine, gui-gateway" in out
    )
    assert "probable origin: unknown (no member names a catalog service)" in out
    assert "started the incident" in out
    assert "edge risk-manager -> execution-engine (1 hop), window 10m" in out
    lines = out.splitlines()
    executed = next(line for line in lines if "ExecutionEngineDown" in line)
    assert " resolved " in executed  # the later resolved delivery updated its member
    # Alert text never drives the terminal: the escape is shown, not sent.
    assert "\x1b" not in out and "Gui\\u001b[2JDown" in out


def test_correlate_json_lists_members_and_ties_for_scripts(env, settings: Settings) -> None:
    record_an_outage_and_an_unrelated_disk(settings)
    result = run("correlate", "--json")  # the default window, 24h, holds them all
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["mode"] == "on" and answer["deliveries"] == 5
    assert answer["unreadable"] == []
    flow, disk = answer["incidents"]
    assert flow["origin"] == "risk-manager"
    assert flow["symptoms"] == ["execution-engine", "gui-gateway"]
    assert [(m["alert"], m["firing"]) for m in flow["members"]] == [
        ("ExecutionEngineDown", False),
        ("RiskManagerDown", True),
        ("Gui\x1b[2JDown", True),
    ]
    assert "\x1b" not in result.stdout  # JSON escapes it: the script gets it, the terminal not
    assert flow["members"][0]["tie"] is None
    assert flow["members"][1]["tie"] == {
        "rule": "flow-outage",
        "service": "risk-manager",
        "tied_to": "execution-engine",
        "hops": 1,
        "shared": {},
        "window": "10m",
    }
    # gui-gateway depends on both, one hop each: the tie names the first by name.
    assert (flow["members"][2]["tie"]["tied_to"], flow["members"][2]["tie"]["hops"]) == (
        "execution-engine",
        1,
    )
    assert disk["origin"] is None and disk["members"][0]["service"] is None


def test_correlate_with_nothing_recorded_says_so(env) -> None:
    result = run("correlate", "--since", "1h")
    assert result.exit_code == 0, result.output
    assert "0 Alertmanager deliveries in the last 1h: 0 incidents" in result.output


def test_correlate_refuses_a_window_it_cannot_read(env) -> None:
    result = run("correlate", "--since", "soon")
    assert result.exit_code == 2
    assert "expected a duration like 30m, 1h or 2d, got 'soon'" in result.stderr
