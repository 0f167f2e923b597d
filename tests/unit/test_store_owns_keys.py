"""The store owns every Redis key (docs/architecture.md, "Keys and texts"): outside
`tasks/store/` no product module spells the `responder:` key prefix or imports the store's
`PREFIX`, and the receiver and the CLI read through the store's accessors, never its key names.

Nothing is allowed outside the store, so there is no allow-list. The Celery queues are named
`responder` and `responder-urgent` (RESPONDER_QUEUE), not `responder:...`, and kombu's own keys
(`unacked`, `_kombu.binding.*`) are kombu's; neither matches the prefix. Tests and benches may
spell keys: they pin the wire format that this test keeps in one place.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent.parent
PRODUCT = ("tasks", "webhooks", "triage", "collectors", "demo")
STORE = PROJECT / "tasks" / "store"
# The key prefix as a key begins (`responder:run:`, `responder:*`, f"responder:{...}"), not as a
# sentence does ("responder: listening on ...").
KEY_PREFIX = re.compile(r"responder:(?:[\w*{\-]|$)")
# Readers that must go through accessors: they may not even import a key name from the store.
ACCESSORS_ONLY = ("webhooks", "tasks.cli")


def key_problems(source: str, module: str) -> list[str]:
    """Return what a module's source does with Redis keys that only the store may do."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if KEY_PREFIX.search(node.value):
                problems.append(f"line {node.lineno}: spells a key: {node.value[:60]!r}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tasks.store"):
            for alias in node.names:
                name = alias.name
                if name.endswith("PREFIX"):
                    problems.append(f"line {node.lineno}: builds keys from {name}")
                elif module.startswith(ACCESSORS_ONLY) and name.lower().endswith("_key"):
                    problems.append(f"line {node.lineno}: reads key {name} itself")
    return problems


def product_modules() -> list[tuple[str, Path]]:
    """Return (dotted name, path) of every product module outside the store."""
    found = []
    for top in PRODUCT:
        for path in sorted((PROJECT / top).rglob("*.py")):
            if STORE in path.parents:
                continue
            dotted = ".".join(path.relative_to(PROJECT).with_suffix("").parts)
            found.append((dotted.removesuffix(".__init__"), path))
    found.append(("celeryconfig", PROJECT / "celeryconfig.py"))
    return found


def test_the_product_tree_is_found() -> None:
    names = {name for name, _ in product_modules()}
    assert {"webhooks.incident_page", "tasks.pipeline", "demo.world"} <= names
    assert not any(name.startswith("tasks.store") for name in names)


@pytest.mark.parametrize(("module", "path"), product_modules(), ids=lambda v: str(v))
def test_no_module_outside_the_store_spells_a_redis_key(module: str, path: Path) -> None:
    assert key_problems(path.read_text("utf-8"), module) == []


@pytest.mark.parametrize(
    ("source", "module", "found"),
    [
        ('KEY = "responder:heartbeat"', "tasks.pipeline", "spells a key"),
        ('key = f"responder:run:{run_id}"', "webhooks.incident_page", "spells a key"),
        ('key = f"responder:{kind}:x"', "tasks.sla.actions", "spells a key"),
        ('pattern = "responder:*"', "demo.world", "spells a key"),
        ("from tasks.store.deliveries import PREFIX", "tasks.gateways.email", "builds keys"),
        ("from tasks.store.incidents import incident_key", "webhooks.incident_page", "reads key"),
        ("from tasks.store.deliveries import INDEX_KEY", "tasks.cli.status", "reads key"),
    ],
)
def test_the_check_finds_a_key_built_outside_the_store(
    source: str, module: str, found: str
) -> None:
    [problem] = key_problems(source, module)
    assert found in problem


@pytest.mark.parametrize(
    "source",
    [
        'tell("responder: listening on http://127.0.0.1:8080")',
        'QUEUE = "responder-urgent"',
        "from tasks.store.incidents import escalations_key",  # a worker module may, not the page
        "from tasks.store import runs",
    ],
)
def test_the_check_leaves_sentences_queues_and_accessors_alone(source: str) -> None:
    assert key_problems(source, "tasks.sla.actions") == []
