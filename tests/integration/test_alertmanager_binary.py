"""The real Alertmanager binary delivers to the receiver with bearer auth, from our config."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tasks.store.deliveries import DeliveryStore
from tests.fakes.pagerduty import FakePagerDuty
from tests.support import TOKEN, wait_for


def alertmanager_binary() -> str:
    """Return the Alertmanager executable; fail (never skip) when it is not installed."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        if found := shutil.which(name):
            return found
    pytest.fail(
        "Alertmanager is not installed (Debian package prometheus-alertmanager); "
        "`make test` installs it"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_alertmanager(
    tmp_path: Path, receiver: str, credentials: str, extra: dict[str, Any] | None = None
) -> Iterator[str]:
    """Run Alertmanager routing everything to the receiver, with `extra` top-level sections
    replacing ours; yield its API URL."""
    config = {
        "route": {
            "receiver": "responder",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "responder",
                "webhook_configs": [
                    {
                        "url": f"{receiver}/webhooks/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": credentials}},
                    }
                ],
            }
        ],
    }
    config |= extra or {}
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    binary = alertmanager_binary()  # before the log opens: a failure leaks no file
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # a single instance: no gossip port
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url) or process.poll() is not None, what="Alertmanager to start")
        assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def fire(alertmanager: str, labels: dict[str, str], summary: str) -> None:
    alert = {
        "labels": labels,
        "annotations": {"summary": summary},
        "startsAt": datetime.now(UTC).isoformat(),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    }
    answer = requests.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: str) -> Iterator[str]:
    yield from start_alertmanager(tmp_path, receiver, TOKEN)


def test_alertmanager_delivers_and_the_incident_gets_notes(
    alertmanager: str, worker: Path, receiver: str, pagerduty: FakePagerDuty, redis_client
) -> None:
    # Alertmanager's own PagerDuty receiver would create the incident with this dedup key.
    group_key = '{}:{alertname="RiskManagerDown"}'
    incident = pagerduty.add_incident(hashlib.sha256(group_key.encode()).hexdigest())
    labels = {
        "alertname": "RiskManagerDown",
        "severity": "critical",
        "category": "risk-management",
        "service": "risk-manager",
    }
    fire(alertmanager, labels, "Risk manager is down; orders are not risk-checked")

    notes = wait_for(
        lambda: len(pagerduty.notes_for(incident)) >= 2 and pagerduty.notes_for(incident),
        what="notes from the Alertmanager delivery",
    )
    assert notes[0]["content"].startswith(
        "[P0 (PagerDuty: P1)] RiskManagerDown: Risk manager is down"
    )
    store = DeliveryStore(redis_client)
    [stored] = [store.get(i) for i in store.list_ids()]
    assert stored["group_key"] == group_key
    assert stored["headers"]["User-Agent"].startswith("Alertmanager/")


def test_alertmanager_with_the_wrong_token_is_refused(
    tmp_path: Path, receiver: str, redis_client
) -> None:
    for url in start_alertmanager(tmp_path, receiver, "not-the-token"):
        fire(url, {"alertname": "ServiceDown", "severity": "warning"}, "GUI gateway is down")
        wait_for(
            lambda: b"401" in (tmp_path / "alertmanager.log").read_bytes(),
            what="Alertmanager to log the 401",
        )
    assert redis_client.zcard("responder:deliveries") == 0
