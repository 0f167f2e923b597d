"""Alert labels select among catalog services; they never reach a shell, SQL or an unlisted URL."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from collectors import deployments
from collectors.contract import CollectorContext, Target
from tasks.run.prepare import affected_services, named_services, services_named_in
from tests.unit.test_classify import alert
from triage.policy import builtin

PROJECT = Path(__file__).resolve().parents[2]
POLICY = builtin()
HOSTILE = [
    "; id",
    "$(id)",
    "`id`",
    "../../etc/passwd",
    "risk-manager\nexecution-engine",
    "--help",
    "-c 'DROP TABLE positions'",
    "x" * 10_240,
    "unknown-service",
    "risk-manager; touch /tmp/responder-canary",
    "eafix-$(touch /tmp/responder-canary)",
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_labels_select_nothing(value: str) -> None:
    hostile = alert(service=value, job=value)
    assert named_services([hostile], POLICY) == []
    # Every target is a catalog entry, in catalog order: the label added nothing.
    assert affected_services([hostile], POLICY) == list(POLICY.catalog)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_titles_only_match_whole_catalog_names(value: str) -> None:
    # The targets are exactly the catalog's services; a title can only reorder them.
    assert sorted(services_named_in(value, POLICY)) == sorted(POLICY.catalog)


def test_the_git_collector_runs_fixed_arguments_whatever_the_alert(monkeypatch, tmp_path) -> None:
    (tmp_path / ".git").mkdir()
    seen: list[list[str]] = []

    def record(command, **kwargs):
        seen.append(command)
        assert kwargs.get("shell", False) is False
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(deployments.subprocess, "run", record)
    for value in HOSTILE:
        target = Target(tuple(POLICY.catalog.values()), alert_name=value, expression=value)
        deployments.collect(target, CollectorContext(redis_url="", git_repo=str(tmp_path)))
    assert all(command == seen[0] for command in seen)
    assert not any(value in " ".join(seen[0]) for value in HOSTILE)
    assert not Path("/tmp/responder-canary").exists()


def test_no_product_code_uses_a_shell() -> None:
    product = [
        p
        for d in ("triage", "webhooks", "tasks", "collectors")
        for p in (PROJECT / d).rglob("*.py")
    ]
    assert product
    offenders = [
        str(p)
        for p in product
        if re.search(r"shell\s*=\s*True|os\.system|os\.popen", p.read_text())
    ]
    assert offenders == []
