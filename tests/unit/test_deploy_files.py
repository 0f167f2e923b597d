"""compose.yaml runs the processes DESIGN.md names, each with a healthcheck."""

from pathlib import Path

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
