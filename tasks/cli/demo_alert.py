"""`responder demo-alert`: post the sample alert to a running receiver, fresh every time."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import click
import requests

from tasks.cli.options import settings_or_usage_error
from tasks.cli.terminal import say

SAMPLE = "alertmanager.json"


def sample_alert() -> dict[str, Any]:
    """Return the bundled sample Alertmanager notification (a P1 signal-latency alert)."""
    text = resources.files("tasks.cli").joinpath("samples", SAMPLE).read_text(encoding="utf-8")
    return dict(json.loads(text))


def fresh_alert(started: datetime, resolved: datetime | None = None) -> dict[str, Any]:
    """Return the sample as a new alert group that fired at `started` (resolved at `resolved`).

    The group key and fingerprint come from the start time, so each demo alert is an incident
    of its own (never a duplicate of an earlier try), and its resolution matches it again.
    """
    payload = copy.deepcopy(sample_alert())
    demo_id = f"demo-{int(started.timestamp() * 1000)}"  # two tries in one second differ
    alert = payload["alerts"][0]
    alert["labels"]["demo"] = demo_id
    alert["startsAt"] = _rfc3339(started)
    alert["fingerprint"] = hashlib.sha256(demo_id.encode()).hexdigest()[:16]
    payload["groupKey"] = f'{{}}:{{alertname="SignalLatencyHigh", demo="{demo_id}"}}'
    payload["commonLabels"]["demo"] = demo_id
    if resolved is not None:
        payload["status"] = alert["status"] = "resolved"
        alert["endsAt"] = _rfc3339(resolved)
    return payload


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _started_of(demo_id: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(demo_id.removeprefix("demo-")) / 1000, UTC)
    except ValueError:
        raise click.BadParameter(
            f"expected the id a demo alert printed, such as demo-1764410400123, got {demo_id!r}",
            param_hint="--resolve",
        ) from None


@click.command("demo-alert")
@click.option(
    "--url",
    help="The receiver's base URL. [default: RESPONDER_PUBLIC_URL, http://127.0.0.1:8080]",
)
@click.option("--resolve", "demo_id", metavar="ID", help="Resolve the demo alert ID instead.")
@click.option("--print", "print_only", is_flag=True, help="Print the JSON body; post nothing.")
def demo_alert_command(url: str | None, demo_id: str | None, print_only: bool) -> None:
    """Post the sample P1 alert as a new incident (startsAt now), or resolve one."""
    now = datetime.now(UTC)
    payload = fresh_alert(_started_of(demo_id), now) if demo_id else fresh_alert(now)
    if print_only:
        say(json.dumps(payload, indent=2))
        return
    settings = settings_or_usage_error()
    target = (url or settings.public_url).rstrip("/") + "/webhooks/alertmanager"
    headers = {}
    if token := settings.alertmanager_token.reveal():
        headers["Authorization"] = f"Bearer {token}"
    try:
        answer = requests.post(target, json=payload, headers=headers, timeout=10)
    except requests.RequestException as exc:
        raise click.ClickException(
            f"cannot reach the receiver at {target}: {type(exc).__name__} "
            "(is `make run` running? --url names another address)"
        ) from None
    if answer.status_code >= 300:
        raise click.ClickException(f"{target} answered {answer.status_code}: {answer.text.strip()}")
    say(answer.text.strip())
    if not demo_id:
        started = payload["alerts"][0]["labels"]["demo"]
        say(f"resolve it with: responder demo-alert --resolve {started}", err=True)
