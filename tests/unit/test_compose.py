"""compose.yaml: valid Compose, every setting given, secrets from files, the processes that
`responder run` and the storm bench start, and a production shape (TLS, Sentinel, pins)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bench.storm import Parts
from tasks.cli import process_commands
from tasks.settings import _ENV, secret_variables, settings_from_env

PROJECT = Path(__file__).resolve().parents[2]
# The Compose specification's schema, vendored: tests/testdata/compose-spec.SOURCE says whence.
SCHEMA = json.loads((PROJECT / "tests" / "testdata" / "compose-spec.json").read_text())
COMPOSE_TEXT = (PROJECT / "compose.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
RESPONDER_SERVICES = ("web", "worker", "worker-urgent", "beat")
# compose service -> the part of `responder run` it is.
RUN_PART = {"web": "receiver", "worker": "worker", "worker-urgent": "urgent worker", "beat": "beat"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(text: str, environ: dict[str, str]) -> str:
    """Return `text` with ${VAR}, ${VAR:-default} and ${VAR:?error} replaced as compose does."""

    def value(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if environ.get(name):
            return environ[name]
        if kind == "?":
            raise KeyError(f"{name}: {rest}")
        return rest or ""

    return _VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


def filled_in(environ: dict[str, str]) -> dict[str, Any]:
    """Return compose.yaml as compose reads it: parsed first, then each string interpolated."""

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        return interpolate(node, environ) if isinstance(node, str) else node

    return fill(yaml.safe_load(COMPOSE_TEXT))


def program(command: list[str]) -> list[str]:
    """Return a command without the interpreter that `responder run` and the bench put first."""
    return command[2:] if command[:2] == [sys.executable, "-m"] else command


def options(command: list[str], *names: str) -> dict[str, str]:
    """Return the given options' values in a command (name -> value)."""
    return {name: command[command.index(name) + 1] for name in names if name in command}


def test_compose_yaml_is_valid_against_the_compose_specification() -> None:
    validator = jsonschema.Draft7Validator(SCHEMA)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []


def test_compose_yaml_is_still_valid_once_its_variables_are_filled_in() -> None:
    filled = filled_in({"RESPONDER_DOMAIN": "responder.test"})
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(filled)) == []


def test_the_schema_refuses_what_compose_would_refuse() -> None:
    # The check can fail: a service with a misspelt key is not valid Compose.
    broken = {"services": {"web": {"image": "x", "helthcheck": {}}}}
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(broken))


@pytest.mark.parametrize("service", RESPONDER_SERVICES)
def test_every_setting_is_given_to_every_responder_service(service: str) -> None:
    environment = SERVICES[service]["environment"]
    for variable in _ENV:
        if variable in secret_variables():
            assert variable not in environment, f"{variable}: a secret, from a file only"
            assert f"{variable}_FILE" in environment, variable
        else:
            assert variable in environment, variable


@pytest.mark.parametrize("service", RESPONDER_SERVICES)
def test_each_secret_file_is_a_docker_secret_the_service_mounts(service: str) -> None:
    environment = SERVICES[service]["environment"]
    for variable in secret_variables():
        path = environment[f"{variable}_FILE"]
        name = path.removeprefix("/run/secrets/")
        assert path == f"/run/secrets/{name}"
        assert name in COMPOSE["secrets"] and name in SERVICES[service]["secrets"], variable


def test_the_defaults_compose_gives_are_settings_the_responder_takes(tmp_path: Path) -> None:
    filled = filled_in({"RESPONDER_DOMAIN": "responder.test"})
    environment = {k: str(v) for k, v in filled["services"]["worker"]["environment"].items()}
    for variable in secret_variables():  # the secrets as empty files, as the comment says
        secret = tmp_path / environment[f"{variable}_FILE"].removeprefix("/run/secrets/")
        secret.write_text("")
        environment[f"{variable}_FILE"] = str(secret)
    settings = settings_from_env(environment)
    assert settings.redis_url.startswith("sentinel://") and settings.redis_sentinel_master
    assert settings.redis_wait_replicas == 1  # the replica service
    assert settings.public_url == "https://responder.test"
    assert settings.log_format == "json"
    assert settings.docker_url == "unix:///var/run/docker.sock"


@pytest.mark.parametrize("service", RESPONDER_SERVICES)
def test_compose_runs_the_processes_responder_run_starts(service: str) -> None:
    run = program(
        process_commands(queue="responder", bind="0.0.0.0:8080", concurrency=4, var=Path("/x"))[
            RUN_PART[service]
        ]
    )
    command = SERVICES[service]["command"]
    # The same program, options and order; only where beat keeps its schedule differs.
    if service == "beat":
        run[run.index("--schedule") + 1] = command[command.index("--schedule") + 1]
    assert command == run


@pytest.mark.parametrize("service", RESPONDER_SERVICES)
def test_compose_runs_the_entry_points_the_storm_bench_measures(service: str) -> None:
    bench = Parts(Path("/x"), {}, 8080, urgent_queues="responder-actions,responder-urgent")
    measured = program(bench.commands()[RUN_PART[service]])
    command = SERVICES[service]["command"]
    # gunicorn and its app factory; celery -A tasks worker|beat.
    entry = (lambda c: [c[0], c[-1]]) if service == "web" else (lambda c: c[:4])
    assert entry(command) == entry(measured)
    same = ("--config", "--queues", "--loglevel")
    assert options(command, *same) == options(measured, *same)


def test_every_service_has_a_healthcheck_and_json_file_logs() -> None:
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"], name
        assert service["logging"]["driver"] == "json-file", name


def test_every_image_is_pinned_to_an_exact_release_or_a_digest() -> None:
    exact = re.compile(r"^[\w./-]+(:\d+\.\d+\.\d+[\w.-]*|@sha256:[0-9a-f]{64})$")
    images = {s["image"] for s in SERVICES.values() if "build" not in s}
    assert images and all(exact.match(image) for image in images), images
    base = re.search(r"^FROM (\S+)", (PROJECT / "Dockerfile").read_text(), re.MULTILINE)
    assert base and exact.match(base.group(1)), base


def test_redis_runs_with_three_sentinels_a_primary_and_a_replica() -> None:
    sentinels = [name for name in SERVICES if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    url = settings_from_env(
        {
            "RESPONDER_REDIS_URL": interpolate(
                SERVICES["web"]["environment"]["RESPONDER_REDIS_URL"], {}
            ),
            "RESPONDER_REDIS_SENTINEL_MASTER": "responder",
        }
    ).redis_url
    assert sorted(re.findall(r"sentinel://([\w-]+):26379", url)) == sentinels
    assert "--replicaof" in SERVICES["redis-replica"]["command"]
    for name in ("redis-primary", "redis-replica"):
        assert "noeviction" in SERVICES[name]["command"], name
    for name in sentinels:
        assert "sentinel monitor responder redis-primary 6379 2" in SERVICES[name]["command"][-1]


def test_tls_ends_at_the_proxy_and_the_receiver_publishes_no_plain_http_port() -> None:
    assert "ports" not in SERVICES["web"]
    assert "443:443" in SERVICES["proxy"]["ports"]
    caddyfile = COMPOSE["configs"]["caddyfile"]["content"]
    assert "reverse_proxy web:8080" in caddyfile and "tls " in caddyfile


def test_only_the_workers_mount_the_docker_socket_and_join_the_eafix_network() -> None:
    socket = "/var/run/docker.sock:/var/run/docker.sock"
    mounting = {name for name, s in SERVICES.items() if socket in s.get("volumes", [])}
    assert mounting == {"worker", "worker-urgent"}
    assert COMPOSE["networks"]["eafix"]["external"] is True
    assert {"worker", "worker-urgent", "proxy"} <= {
        name for name, s in SERVICES.items() if "eafix" in s.get("networks", [])
    }
