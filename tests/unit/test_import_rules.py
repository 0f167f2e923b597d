"""The import rules of the layout (docs/architecture.md): an ordered stack of layers, a few
narrower rules inside it, and no import cycle, checked on every import of every module (those
inside functions and under TYPE_CHECKING too)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent.parent
OURS = ("triage", "collectors", "webhooks", "tasks")

# The layers, bottom to top: a module may import from its own layer or one below it. A module
# belongs to the layer of its longest matching prefix, so a package may hold modules of two
# layers: `evidence` its files (services) and what takes the runtime (runtime services);
# `actions` its queue side (`approval`, which the receiver may use) and the rest. The runtime
# builds the gateways and takes nothing above it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("triage",)),
    ("collectors", ("collectors",)),
    ("message", ("tasks.enqueue",)),
    ("store", ("tasks.store",)),
    ("basics", ("tasks.settings", "tasks.lanes", "tasks.names", "tasks.retries",
                "tasks.broker_guard", "tasks.log_format")),
    ("gateways", ("tasks.gateways",)),
    ("services", ("tasks.evidence", "tasks.notes")),
    ("runtime", ("tasks.runtime",)),
    ("retry engine", ("tasks.dead_letter",)),
    ("queue side", ("tasks.slack_queue", "tasks.actions.approval")),
    ("runtime services", ("tasks.pagerduty", "tasks.evidence.collect",
                          "tasks.evidence.shared_bundle")),
    ("run", ("tasks.run",)),
    ("actions and senders", ("tasks.actions", "tasks.notify")),
    ("sla", ("tasks.sla",)),
    ("flows", ("tasks.respond_flow",)),
    ("worker", ("tasks.pipeline", "tasks.celery", "tasks.celery_app", "tasks.quiet_ticks",
                "tasks.beat", "tasks.backlog", "tasks.recovery", "tasks.patient_task",
                "tasks.topology", "tasks.worker_signals", "tasks.requeue")),
    ("entry points", ("tasks.cli", "webhooks", "tasks")),
)  # fmt: skip

# Narrower than the layers: package -> the prefixes of ours it may import (besides itself), for
# the package's modules in the package's own layer (not its runtime services above).
ONLY: dict[str, tuple[str, ...]] = {
    "tasks.store": ("triage", "tasks.enqueue"),
    "tasks.gateways": ("tasks.store", "tasks.settings", "tasks.retries", "tasks.lanes"),
    "tasks.evidence": (
        "collectors.contract",
        "triage",
        "tasks.store",
        "tasks.settings",
        "tasks.gateways",
    ),
    "tasks.notes": ("collectors.contract", "triage"),
}
# Sideways or below, yet never: package -> the prefixes of ours it must not import.
NEVER: dict[str, tuple[str, ...]] = {
    # The receiver and the CLI approve through it: it sends tasks by name, loads no worker part.
    # Of the notes only their one-line texts (tasks.notes.lines: Jinja2 and nothing else).
    "tasks.actions.approval": ("tasks.notes.voice", "tasks.notes.bundle_view",
                               "tasks.notes.markers", "tasks.notes.quoting", "collectors"),
    # Queues Slack work from the receiver, the pipeline and the approval path: by name only.
    "tasks.slack_queue": ("tasks.notify", "tasks.gateways.slack", "tasks.notes", "collectors"),
    # The CLI starts the receiver as its own process and sends tasks by name.
    "tasks.cli": ("webhooks", "tasks.pipeline"),
    # The receiver enqueues by task name: never the worker's modules.
    "webhooks": ("tasks.pipeline", "tasks.run", "tasks.sla.actions", "tasks.cli",
                 "tasks.evidence.bundle", "collectors.registry", "tasks.actions.act",
                 "tasks.actions.execute", "tasks.gateways.slack", "tasks.notify.slack_send"),
}  # fmt: skip


def module_name(path: Path) -> str:
    """Return the dotted name of one of our files."""
    return ".".join(path.relative_to(PROJECT).with_suffix("").parts).removesuffix(".__init__")


def our_files() -> dict[str, Path]:
    """Return every module of ours by its dotted name."""
    return {
        module_name(path): path for package in OURS for path in (PROJECT / package).rglob("*.py")
    }


def resolve(name: str, known: set[str]) -> str:
    """Return the module `name` lives in: itself, or its longest known prefix."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Return the modules of ours a file imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # we use no relative imports: say so rather than misread one
                found.add(f"<relative import of {node.module}>")
            elif node.module and node.module.split(".")[0] in OURS:
                found |= {resolve(f"{node.module}.{alias.name}", known) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {resolve(a.name, known) for a in node.names if a.name.split(".")[0] in OURS}
    return found - {module_name(path)}


@cache
def parsed_graph() -> tuple[tuple[str, frozenset[str]], ...]:
    """Return the import graph read once per session (the files do not change under a test)."""
    files = our_files()
    return tuple((name, frozenset(imports_of(path, set(files)))) for name, path in files.items())


def import_graph() -> dict[str, set[str]]:
    """Return each module of ours with the modules of ours it imports (a copy a test may edit)."""
    return {name: set(names) for name, names in parsed_graph()}


def within(name: str, prefix: str) -> bool:
    """Return whether `name` is `prefix` or inside it."""
    return name == prefix or name.startswith(prefix + ".")


@cache  # asked for every import of every module, by several tests
def layer_of(module: str) -> int:
    """Return the index of the module's layer: the one with its longest matching prefix."""
    matches = [
        (len(prefix), index)
        for index, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if within(module, prefix)
    ]
    if not matches:
        raise LookupError(f"{module} is in no layer: give it one in LAYERS")
    return max(matches)[1]


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Return each import that breaks a rule, as `a.b imports c.d (why)`."""
    found = []
    for module, names in graph.items():
        for name in names:
            if name.startswith("<"):
                found.append(f"{module} imports {name}")
                continue
            mine, theirs = layer_of(module), layer_of(name)
            if theirs > mine:
                found.append(
                    f"{module} imports {name} (layer {LAYERS[theirs][0]} above {LAYERS[mine][0]})"
                )
            for package, allowed in ONLY.items():
                if not within(module, package) or layer_of(module) != layer_of(package):
                    continue
                if not within(name, package):
                    if not any(within(name, a) for a in allowed):
                        found.append(f"{module} imports {name} ({package} may import only "
                                     f"{', '.join(allowed)})")  # fmt: skip
            for package, forbidden in NEVER.items():
                if within(module, package) and any(within(name, f) for f in forbidden):
                    found.append(f"{module} imports {name} ({package} never imports it)")
    return sorted(found)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected parts of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def package_of(module: str) -> str:
    """Return the package a module counts in: `tasks.x` (a folder or a module), else the top."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "tasks" and len(parts) > 1 else parts[0]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Return the import graph between packages."""
    packages: dict[str, set[str]] = {}
    for module, names in graph.items():
        mine = package_of(module)
        packages.setdefault(mine, set()).update(
            package_of(n) for n in names if package_of(n) != mine
        )
    return packages


def package_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return each knot of packages that import each other, directly or through others."""
    return cycles(package_graph(graph))


def test_every_import_goes_down_the_layers_and_keeps_its_package_rules() -> None:
    found = violations(import_graph())
    print("\n".join(found))
    assert found == []


def test_no_module_import_cycle() -> None:
    found = cycles(import_graph())
    print("\n".join(" -> ".join(c) for c in found))
    assert found == []


def test_no_package_import_cycle() -> None:
    found = package_cycles(import_graph())
    print("\n".join(" -> ".join(c) for c in found))
    assert found == []


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


@pytest.mark.parametrize(
    ("module", "name", "why"),
    [
        ("triage.classify", "tasks.settings", "layer basics above core"),
        ("collectors.host", "tasks.run.first_response", "layer run above collectors"),
        ("tasks.store.deliveries", "tasks.gateways.pagerduty", "layer gateways above store"),
        ("tasks.store.effects", "tasks.runtime", "layer runtime above store"),
        ("tasks.gateways.email", "tasks.runtime", "layer runtime above gateways"),
        ("tasks.gateways.pagerduty", "tasks.pagerduty.notes", "layer runtime services above "
         "gateways"),
        ("tasks.gateways.slack", "tasks.evidence.links", "layer services above gateways"),
        ("tasks.pagerduty.notes", "tasks.run.state", "layer run above runtime services"),
        ("tasks.evidence.collect", "tasks.run.evidence_note", "layer run above runtime services"),
        ("tasks.run.first_response", "tasks.notify.slack_send", "layer actions and senders above "
         "run"),
        ("tasks.run.evidence_note", "tasks.sla.actions", "layer sla above run"),
        ("tasks.actions.approval", "tasks.actions.execute", "layer actions and senders above "
         "queue side"),
        ("tasks.notes", "tasks.store.deliveries", "tasks.notes may import only "
         "collectors.contract, triage"),
        ("tasks.evidence.bundle", "tasks.runtime", "tasks.evidence may import only "
         "collectors.contract, triage, tasks.store, tasks.settings, tasks.gateways"),
        ("webhooks.alertmanager", "tasks.pipeline", "webhooks never imports it"),
        ("webhooks.actions", "tasks.actions.act", "webhooks never imports it"),
        ("tasks.slack_queue", "tasks.gateways.slack", "tasks.slack_queue never imports it"),
    ],
)  # fmt: skip
def test_an_import_against_the_rules_is_named_with_why(module: str, name: str, why: str) -> None:
    graph = import_graph()
    graph[module] = graph[module] | {name}
    found = violations(graph)
    assert f"{module} imports {name} ({why})" in found
    assert all(line.startswith(f"{module} imports {name} (") for line in found)


def test_an_import_cycle_is_caught() -> None:
    # Downward both ways within one layer, so only the cycle check can see it.
    graph = import_graph()
    graph["tasks.store.deliveries"] = graph["tasks.store.deliveries"] | {"tasks.store.slack"}
    assert cycles(graph) == [["tasks.store.deliveries", "tasks.store.slack"]]


def test_a_new_knot_of_packages_is_caught() -> None:
    # evidence and notes reading each other; the runtime, which reads notes and which
    # evidence's collection takes, is tied in with them.
    graph = import_graph()
    graph["tasks.evidence.links"] = graph["tasks.evidence.links"] | {"tasks.notes.voice"}
    graph["tasks.notes.voice"] = graph["tasks.notes.voice"] | {"tasks.evidence.bundle"}
    assert package_cycles(graph) == [["tasks.evidence", "tasks.notes", "tasks.runtime"]]


def test_the_imports_inside_functions_count() -> None:
    # runtime builds the e-mail gateway lazily, inside a method: the graph still sees it.
    assert "tasks.gateways.email" in import_graph()["tasks.runtime"]


def test_the_runtime_importing_evidence_again_is_caught_though_it_goes_down_the_layers() -> None:
    # evidence holds files (below the runtime) and collection (which takes the runtime): the
    # runtime reading one of its files again ties the two packages into one knot.
    graph = import_graph()
    graph["tasks.runtime"] |= {"tasks.evidence.links"}
    assert violations(graph) == []
    assert package_cycles(graph) == [["tasks.evidence", "tasks.runtime"]]
