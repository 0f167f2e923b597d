"""`responder diagnose SERVICE` runs the plan in-process and writes a bundle."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tasks.cli import main


def test_diagnose_runs_the_plan_and_writes_a_bundle(
    responder_env: dict[str, str], monkeypatch, tmp_path: Path
) -> None:
    for name, value in responder_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RESPONDER_BUNDLE_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["diagnose", "risk-manager", "--priority", "P2", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    statuses = {c["name"]: c["status"] for c in manifest["collectors"]}
    assert statuses == {
        "http": "ok", "prometheus": "skipped", "docker": "skipped", "redis": "ok", "host": "ok",
        "performance": "skipped",
    }  # fmt: skip
    assert (
        (Path(manifest["path"]) / "summary.md")
        .read_text()
        .startswith("# [P2] diagnose risk-manager")
    )
    human = CliRunner().invoke(main, ["diagnose", "risk-manager", "--priority", "P3"])
    assert "[1/1] http ... ok" in human.output
    assert "bundle: " in human.output
    dry = CliRunner().invoke(main, ["diagnose", "risk-manager", "--dry-run"])
    assert dry.output == (
        "would run for risk-manager at P1: "
        "http, trading, prometheus, docker, postgres, redis, host, git, network, performance\n"
    )
    unknown = CliRunner().invoke(main, ["diagnose", "$(id)"])
    assert unknown.exit_code == 2 and "is not in the catalog" in unknown.output
