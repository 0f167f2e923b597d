"""Every third-party module the runtime packages import is declared in pyproject.toml.

The tests install the dev extras, which pull in more than the service needs; a module that
only arrives that way works in CI and fails on a fresh `make run`.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
RUNTIME = ("triage", "tasks", "webhooks", "collectors")
OURS = {*RUNTIME, "celeryconfig", "demo", "bench", "tests"}
# Import name -> distribution name, where they differ.
DISTRIBUTION = {"yaml": "pyyaml", "prometheus_api_client": "prometheus-api-client"}
# Installed with a declared dependency that exists to provide them.
PROVIDED = {"werkzeug": "flask", "botocore": "boto3"}


def imported_modules() -> set[str]:
    found = set()
    for package in RUNTIME:
        for path in (PROJECT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - OURS - {"__future__"}


def declared() -> set[str]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        name = requirement.split(";")[0].split("[")[0]
        for stop in "<>=!~ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower())
    return names


def test_every_runtime_import_is_a_declared_dependency() -> None:
    deps = declared()
    missing = {
        module
        for module in imported_modules()
        if DISTRIBUTION.get(module, module).replace("_", "-") not in deps
        and PROVIDED.get(module) not in deps
    }
    assert missing == set(), f"imported at run time but not in [project] dependencies: {missing}"
