"""The `network` collector: the runbook's Network/Connectivity checks.

    docker exec <container> ping <target-container>     # Test internal connectivity
    curl -I https://api.external-broker.com/            # Check external connectivity

From the responder: a TCP connect to every external dependency the policy lists
(`diagnostics.external_dependencies`), and an HTTP HEAD to those given as a URL. From inside a
service's container (the Docker SDK's exec): `ping` each catalog service it depends on, and
`curl -I` (or `nc -z`) each external dependency. The commands are fixed argument lists built
from the policy alone: no alert label ever reaches one, and there is no shell. Every probe is
bounded by the policy's timeout and leaves a row saying why it failed (refused, timed out,
HTTP status, exit code), never nothing.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import requests
from docker.errors import APIError, DockerException, NotFound

from collectors.contract import CollectorContext, Evidence, Status, Target
from triage.diagnostics import Dependency, exec_outcome, probe_outcome
from triage.policy import Service

NAME = "network"
API_VERSION = "1.43"
PARALLEL = 8  # probes at once: every one is bounded, so the run takes about one timeout
MAX_CONTAINERS = 3  # containers probed from: the alert's services, else the policy's

Connect = Callable[[tuple[str, int], float], Any]


@dataclass(frozen=True)
class Probe:
    """One fixed command to run inside a container, and what it checks."""

    container_service: str  # the catalog service whose container runs it
    compose_service: str  # that container's compose service name
    target: str  # what it reaches, as shown: a dependency's or service's name
    address: str
    argv: tuple[str, ...]


def collect(target: Target, ctx: CollectorContext) -> Evidence:
    """Probe the external dependencies from here and from inside the services' containers."""
    network = ctx.diagnostics.network
    timeout = min(network.timeout_seconds, ctx.timeout_seconds)
    probes = container_probes(target, network.dependencies, network.from_containers, timeout)
    if not network.dependencies and not probes:
        why = "no external dependencies in the policy and no service to probe from"
        return Evidence(NAME, Status.SKIPPED, why)
    rows = bounded(
        [lambda d=d: probe_dependency(d, timeout) for d in network.dependencies],
        [_row("responder", d.name, d.address, "tcp connect") for d in network.dependencies],
        timeout * 2 + 1,  # the connect, then the HEAD
    )
    inside, why_not = run_in_containers(ctx, probes, timeout)
    rows += inside
    rows = [{**row, "why": ctx.redact(row["why"])} for row in rows]
    failed = [row for row in rows if not row["reached"]]
    return Evidence(
        collector=NAME,
        status=Status.FAILED if failed else Status.OK,
        summary=summarise(rows, why_not),
        tables={"probes": rows},
        files={"network/probes.json": json.dumps(rows, indent=2)},
    )


def bounded(
    calls: Sequence[Callable[[], dict[str, Any]]],
    placeholders: Sequence[dict[str, Any]],
    seconds: float,
) -> list[dict[str, Any]]:
    """Run the probes at once; one still running after `seconds` is a "timed out" row.

    A socket's timeout does not bound a name lookup: this does, so a hung resolver or
    dependency costs the evidence run `seconds` at most (the stray thread ends on its own).
    """
    if not calls:
        return []
    pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="network")
    futures: list[Future[dict[str, Any]]] = [pool.submit(call) for call in calls]
    wait(futures, timeout=seconds)
    pool.shutdown(wait=False, cancel_futures=True)
    rows = []
    for future, placeholder in zip(futures, placeholders, strict=True):
        if future.done() and not future.cancelled():
            failure = future.exception()
            why = f"probe error: {type(failure).__name__}" if failure else ""
            rows.append({**placeholder, "why": why} if failure else future.result())
        else:
            rows.append({**placeholder, "why": f"timed out (no answer within {seconds:g} s)"})
    return rows


def _row(origin: str, target: str, address: str, check: str) -> dict[str, Any]:
    return {"from": origin, "target": target, "address": address, "check": check,
            "reached": False, "why": ""}  # fmt: skip


def probe_dependency(
    dependency: Dependency,
    timeout: float,
    connect: Connect = socket.create_connection,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Connect to a dependency over TCP and, when it has a URL, send it a HEAD; return a row."""
    row = _row("responder", dependency.name, dependency.address, "tcp connect")
    try:
        connect((dependency.host, dependency.port), timeout).close()
        row["reached"], row["why"] = probe_outcome()
    except ConnectionRefusedError:
        row["why"] = probe_outcome(refused=True)[1]
    except TimeoutError:
        row["why"] = probe_outcome(timed_out=True)[1]
    except OSError as exc:  # no route, host not found: say which
        row["why"] = probe_outcome(error=_os_reason(exc))[1]
    if not dependency.url or not row["reached"]:
        return row
    row["check"] = "tcp connect, HTTP HEAD"
    row["address"] = _shown(dependency.url)
    http = session or requests.Session()
    try:
        # No redirect is followed: only the listed address is ever contacted.
        answer = http.head(dependency.url, timeout=(timeout, timeout), allow_redirects=False)
        row["reached"], row["why"] = probe_outcome(status=answer.status_code)
    except requests.Timeout:
        row["reached"], row["why"] = probe_outcome(timed_out=True)
    except requests.ConnectionError as exc:
        refused = "refused" in str(exc).lower()
        row["reached"], row["why"] = probe_outcome(
            refused=refused, error="" if refused else f"HEAD failed: {type(exc).__name__}"
        )
    except requests.RequestException as exc:
        row["reached"], row["why"] = probe_outcome(error=f"HEAD failed: {type(exc).__name__}")
    finally:
        if session is None:
            http.close()
    return row


def container_probes(
    target: Target,
    dependencies: Sequence[Dependency],
    from_containers: Sequence[str],
    timeout: float,
) -> list[Probe]:
    """Return the fixed commands to run: from each chosen service's container, `ping` each
    catalog service it depends on and reach each external dependency.

    The containers are the catalog services the alert names, else the policy's
    `from_containers`; every host and URL comes from the catalog or the policy.
    """
    catalog = {service.name: service for service in target.services}
    chosen = [name for name in target.affected if name in catalog] or [
        name for name in from_containers if name in catalog
    ]
    seconds = str(max(1, round(timeout)))
    probes = []
    for name in chosen[:MAX_CONTAINERS]:
        compose = catalog[name].compose_service or name
        for upstream in catalog[name].depends_on:
            if upstream not in catalog:
                continue
            host = _host_of(catalog[upstream])
            argv = ("ping", "-c", "1", "-W", seconds, host)
            probes.append(Probe(name, compose, upstream, host, argv))
        for dependency in dependencies:
            if dependency.url:
                argv = ("curl", "-sS", "-I", "-o", "/dev/stdout", "-m", seconds, dependency.url)
                probes.append(Probe(name, compose, dependency.name, _shown(dependency.url), argv))
            else:
                argv = ("nc", "-z", "-w", seconds, dependency.host, str(dependency.port))
                probes.append(Probe(name, compose, dependency.name, dependency.address, argv))
    return probes


def run_in_containers(
    ctx: CollectorContext, probes: Sequence[Probe], timeout: float
) -> tuple[list[dict[str, Any]], str]:
    """Run each probe in its service's compose container; return rows and why none ran ("")."""
    if not probes:
        return [], ""
    if not ctx.docker_url:
        return [], "no probes from containers: no Docker engine configured (RESPONDER_DOCKER_URL)"
    socket_path = ctx.docker_url.removeprefix("unix://")
    if ctx.docker_url.startswith("unix://") and not Path(socket_path).exists():
        return [], f"no probes from containers: no Docker socket at {socket_path}"
    try:
        # The engine's own answers are quick; the command inside is bounded by its own timeout.
        client = docker.DockerClient(
            base_url=ctx.docker_url, version=API_VERSION, timeout=max(2, int(timeout * 2 + 2))
        )
    except DockerException as exc:
        return [], ctx.redact(f"no probes from containers: Docker SDK cannot connect: {exc}")
    try:
        label = f"com.docker.compose.project={ctx.compose_project}"
        found = client.containers.list(all=True, filters={"label": label})
        by_service = {c.labels.get("com.docker.compose.service", ""): c for c in found}
        rows = bounded(
            [lambda p=p: exec_probe(client, by_service.get(p.compose_service), p) for p in probes],
            [_row(f"{p.container_service} container", p.target, p.address,
                  f"{p.argv[0]} (docker exec)") for p in probes],
            timeout * 3 + 2,  # create, start (the command's own timeout), inspect
        )  # fmt: skip
        return rows, ""
    except (DockerException, requests.RequestException) as exc:
        return [], ctx.redact(f"no probes from containers: Docker engine error: {exc}")
    finally:
        client.close()


def exec_probe(client: docker.DockerClient, container: Any, probe: Probe) -> dict[str, Any]:
    """Run one fixed command in a container through the Engine API's exec; return its row."""
    program = probe.argv[0]
    row = _row(f"{probe.container_service} container", probe.target, probe.address,
               f"{program} (docker exec)")  # fmt: skip
    if container is None:
        row["why"] = "no container of this service in the compose project"
        return row
    api = client.api
    try:
        created = api.exec_create(container.id, list(probe.argv), stdout=True, stderr=True)
        # Started without `Upgrade: tcp`, the engine answers 200 with the multiplexed output and
        # closes the connection, so requests reads it whole (no hijacked socket to go wrong).
        answer = api._post_json(
            api._url("/exec/{0}/start", created["Id"]),
            data={"Detach": False, "Tty": False},
            stream=True,
        )
        output = api._get_result_tty(False, answer, False)
        exit_code = api.exec_inspect(created["Id"]).get("ExitCode")
    except NotFound:
        row["why"] = "the container is gone"
        return row
    except APIError as exc:
        row["why"] = f"exec refused: {exc.explanation or exc}"  # 409: the container is not running
        return row
    except requests.Timeout:
        row["why"] = "timed out"
        return row
    except requests.ConnectionError:
        row["why"] = "the Docker engine closed the connection"
        return row
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
    row["reached"], row["why"] = exec_outcome(exit_code, text, program)
    return row


def summarise(rows: Sequence[dict[str, Any]], why_not: str = "") -> str:
    """Say how many probes reached their target, and which did not and why."""
    reached = sum(1 for row in rows if row["reached"])
    parts = [f"{reached}/{len(rows)} probes reached their target"]
    for row in rows:
        if not row["reached"]:
            parts.append(f"{row['target']} from {row['from']}: {row['why']}")
    if why_not:
        parts.append(why_not)
    return "; ".join(parts)


def _host_of(service: Service) -> str:
    return urlsplit(service.health_url).hostname or ""


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="").geturl()


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "host not found"
    return exc.strerror or type(exc).__name__
