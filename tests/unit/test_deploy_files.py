"""The files CI and the README rely on (compose.yaml: tests/unit/test_compose.py)."""

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (PROJECT / ".ci" / "run").read_text()
    assert "make test" in (PROJECT / "README.md").read_text()
