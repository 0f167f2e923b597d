"""compose.yaml runs the processes DESIGN.md names, each with a healthcheck; `make run` takes
the address to listen on."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]


def test_compose_has_redis_web_worker_and_beat_with_healthchecks() -> None:
    compose = yaml.safe_load((PROJECT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "web", "worker", "beat"} <= set(services)
    for name in ("redis", "web", "worker", "beat"):
        assert services[name]["healthcheck"]["test"], name
    assert "webhooks:create_app()" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "tasks", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "tasks", "beat"]
    assert "noeviction" in services["redis"]["command"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (PROJECT / ".ci" / "run").read_text()
    assert "make test" in (PROJECT / "README.md").read_text()


def make_dry_run(target: str, *args: str, **environment: str) -> str:
    """Return what `make TARGET ARGS` would execute (make -n runs nothing)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-n", "-C", str(PROJECT), target, *args],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def make_run_command(*args: str, **environment: str) -> str:
    """Return the `responder run` line `make run ARGS` would execute."""
    printed = make_dry_run("run", *args, **environment)
    return next(line.strip() for line in printed.splitlines() if "responder run" in line)


@pytest.mark.parametrize(
    ("args", "environment", "expected"),
    [
        ((), {}, '--host "127.0.0.1" --port "8080"'),
        (("PORT=9001", "HOST=0.0.0.0"), {}, '--host "0.0.0.0" --port "9001"'),
        # zsh and some desktops set HOST to the machine's name: not an address to bind.
        ((), {"HOST": "laptop.local"}, '--host "127.0.0.1" --port "8080"'),
    ],
)
def test_make_run_listens_where_it_is_told(
    args: tuple[str, ...], environment: dict[str, str], expected: str
) -> None:
    assert make_run_command(*args, **environment).endswith(f"responder run {expected}")


def test_make_test_hands_pytest_the_services_it_ensured() -> None:
    dsn = "postgresql://tester@127.0.0.1:5999/admin"
    printed = make_dry_run(
        "test",
        "RESPONDER_TEST_REDIS_URL=redis://127.0.0.1:6399/4",
        f"RESPONDER_TEST_POSTGRES_DSN={dsn}",
    )
    assert 'scripts/ensure-redis "redis://127.0.0.1:6399/4"' in printed
    assert f'scripts/ensure-postgres "{dsn}"' in printed
    assert 'RESPONDER_TEST_REDIS_URL="$url" RESPONDER_TEST_POSTGRES_DSN="$dsn"' in printed
