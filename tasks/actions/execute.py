"""Carry out one resolved action on its catalog target, and read its verification checks.

An HTTP action calls the target's base URL plus the catalog's path; a Docker action stops,
starts or restarts the target's compose container through the Docker SDK. Nothing else is
ever called: the URL and the container come from the policy only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import requests
from docker.errors import DockerException

from collectors.containers import API_VERSION
from tasks.settings import Settings
from triage.actions import Resolved, call_url, check_passed, check_url, describe_check
from triage.policy import ActionCheck, shown_url

POLL_SECONDS = 0.5  # between two reads of a check that has not passed yet
READ_TIMEOUT_SECONDS = 2.0  # one read of a check's URL


@dataclass(frozen=True)
class Answer:
    """What one action did: what was called, what it answered, how long it took."""

    ok: bool
    ran: str
    answer: str
    seconds: float


def describe_call(resolved: Resolved, settings: Settings) -> str:
    """Say what the action calls, e.g. `POST http://gui-gateway:8080/emergency/stop-trading`."""
    if resolved.action.validation is not None:
        return "validation: health, flow and contract checks (checks only)"
    if resolved.action.manual_command:
        return f"by a person: {resolved.action.manual_command}"
    if resolved.action.http_path:
        return f"{resolved.action.http_method} {shown_url(call_url(resolved))}"
    return f"docker {resolved.action.docker} {_compose_name(resolved, settings)}"


def perform(resolved: Resolved, settings: Settings) -> Answer:
    """Carry the action out once, within its timeout; never raise, say what happened."""
    started = time.monotonic()
    ran = describe_call(resolved, settings)
    timeout = resolved.action.timeout.total_seconds()
    try:
        if resolved.action.manual_command:  # never run here: a person runs it (act.py)
            ok, answer = False, "a manual command: the responder runs nothing"
        elif resolved.action.http_path:
            ok, answer = _http(resolved, timeout)
        else:
            ok, answer = _docker(resolved, settings, timeout)
    except requests.Timeout:
        ok, answer = False, f"no answer within its timeout of {timeout:g} s"
    except requests.RequestException as exc:
        ok, answer = False, f"cannot connect: {type(exc).__name__}"
    except DockerException as exc:
        ok, answer = False, f"Docker: {_first_line(str(exc))}"
    return Answer(ok, ran, answer, time.monotonic() - started)


def _http(resolved: Resolved, timeout: float) -> tuple[bool, str]:
    response = requests.request(
        resolved.action.http_method, call_url(resolved), timeout=timeout, allow_redirects=False
    )
    excerpt = _first_line(response.text)[:200]
    return response.ok, f"HTTP {response.status_code} {excerpt}".rstrip()


def _docker(resolved: Resolved, settings: Settings, timeout: float) -> tuple[bool, str]:
    if not settings.docker_url:
        return False, "no Docker engine configured (RESPONDER_DOCKER_URL)"
    client = docker.DockerClient(
        base_url=settings.docker_url, version=API_VERSION, timeout=max(int(timeout), 1)
    )
    try:
        service = resolved.service.compose_service or resolved.service.name
        labels = [
            f"com.docker.compose.project={settings.compose_project}",
            f"com.docker.compose.service={service}",
        ]
        found = client.containers.list(all=True, filters={"label": labels})
        if len(found) != 1:
            return False, f"expected one container of compose service {service}, found {len(found)}"
        [container] = found
        verb = resolved.action.docker
        # The engine's own grace before SIGKILL, inside the action's timeout.
        grace = max(int(timeout) // 2, 1)
        if verb == "start":
            container.start()
        else:
            getattr(container, verb)(timeout=grace)
        return True, f"{container.name} {verb}{'ped' if verb == 'stop' else 'ed'}"
    finally:
        client.close()


def verify(
    resolved: Resolved,
    read: Callable[[str], tuple[int | None, Any]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[dict[str, Any]]:
    """Read each check until it passes or its time is up; return what each found."""
    read = read or _read
    results = []
    for check in resolved.action.verify:
        url = check_url(resolved.service, check)
        started = clock()
        while True:
            status, body = read(url)
            passed = check_passed(check, status, body)
            waited = clock() - started
            if passed or waited >= check.within.total_seconds():
                break
            sleep(POLL_SECONDS)
        results.append(
            {
                "check": describe_check(check),
                "passed": passed,
                "seconds": round(waited, 3),
                "last": "no answer" if status is None else f"HTTP {status}",
            }
        )
    return results


def read_checks(
    resolved: Resolved, read: Callable[[str], tuple[int | None, Any]] | None = None
) -> list[tuple[ActionCheck, int | None, Any]]:
    """Read each of the action's checks once, without waiting: (check, status, body)."""
    read = read or _read
    return [(c, *read(check_url(resolved.service, c))) for c in resolved.action.verify]


def _read(url: str) -> tuple[int | None, Any]:
    """GET a check's URL once: (status, JSON body or None); (None, None) when nothing answers."""
    try:
        response = requests.get(url, timeout=READ_TIMEOUT_SECONDS)
    except requests.RequestException:
        return None, None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def _compose_name(resolved: Resolved, settings: Settings) -> str:
    service = resolved.service.compose_service or resolved.service.name
    return f"{settings.compose_project}/{service}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
