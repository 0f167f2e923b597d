"""The import rules of the layout (docs/architecture.md), checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent.parent
OURS = ("triage", "collectors", "webhooks", "tasks")

# Package -> the prefixes of ours it may import (besides itself).
ALLOWED: dict[str, tuple[str, ...]] = {
    "triage": (),
    "collectors": ("triage",),
    "tasks.store": ("triage", "tasks.enqueue"),
    "tasks.pagerduty": ("tasks.store", "tasks.settings", "tasks.retries", "tasks.lanes"),
    "tasks.evidence": ("collectors.contract", "triage", "tasks.store"),
    "tasks.notes": ("collectors.contract", "triage"),
}
# Package -> the prefixes of ours it must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "tasks.run": ("tasks.sla", "tasks.cli", "tasks.pipeline", "webhooks"),
    "tasks.sla": ("tasks.cli", "tasks.pipeline", "webhooks"),
    # Slack and e-mail are sent by the SLA clock's actions and the pipeline: never the reverse.
    "tasks.notify": ("tasks.sla", "tasks.cli", "tasks.pipeline", "webhooks"),
    "tasks.actions": ("tasks.cli", "tasks.pipeline", "tasks.sla", "webhooks"),
    # The receiver and the CLI approve through it: it sends tasks by name, loads no worker part.
    "tasks.actions.approval": ("tasks.run", "tasks.notes", "tasks.actions.act",
                               "tasks.actions.execute", "collectors"),
    "tasks.cli": ("webhooks", "tasks.pipeline"),
    # Queues Slack work from the receiver, the pipeline and the approval path: by name only.
    "tasks.notify.slack_queue": ("tasks.notify.slack", "tasks.notify.slack_send", "tasks.run",
                                 "tasks.notes", "collectors"),
    # The receiver enqueues by task name: never the worker's modules.
    "webhooks": ("tasks.pipeline", "tasks.run", "tasks.sla.actions", "tasks.cli",
                 "tasks.evidence.bundle", "collectors.registry", "tasks.actions.act",
                 "tasks.actions.execute", "tasks.notify.slack", "tasks.notify.slack_send"),
}  # fmt: skip


def imports_of(path: Path) -> set[str]:
    """Return the modules of ours a file imports (absolute imports; we use no relative ones)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.split(".")[0] in OURS}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PROJECT).with_suffix("").parts).removesuffix(".__init__")


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(modules: dict[str, set[str]]) -> list[str]:
    """Return each import that breaks a rule, as `module imports name`."""
    found = []
    for module, names in modules.items():
        for package, allowed in ALLOWED.items():
            if within(module, package):
                found += [
                    f"{module} imports {name}"
                    for name in names
                    if not within(name, package)
                    and not any(within(name, a) for a in allowed)
                    and name != "tasks"  # `from tasks import x` names x as well
                ]
        for package, forbidden in FORBIDDEN.items():
            if within(module, package):
                found += [
                    f"{module} imports {name}"
                    for name in names
                    if any(within(name, f) for f in forbidden)
                ]
    return sorted(found)


def our_modules() -> dict[str, set[str]]:
    return {
        module_name(path): imports_of(path)
        for package in OURS
        for path in (PROJECT / package).rglob("*.py")
    }


def test_every_package_imports_only_what_its_rule_allows() -> None:
    assert violations(our_modules()) == []


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("triage.classify", "tasks.settings"),
        ("collectors.host", "tasks.run.response"),
        ("tasks.store.deliveries", "tasks.pagerduty.client"),
        ("tasks.notes", "tasks.store.deliveries"),
        ("webhooks.alertmanager", "tasks.pipeline"),
        ("tasks.run.response", "tasks.sla.actions"),
        ("tasks.actions.approval", "tasks.actions.execute"),
        ("webhooks.actions", "tasks.actions.act"),
    ],
)
def test_a_forbidden_import_is_caught(module: str, name: str) -> None:
    modules = our_modules()
    modules[module] = modules[module] | {name}
    assert violations(modules) == [f"{module} imports {name}"]
