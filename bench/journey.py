"""The journey of one Alertmanager delivery to its first and its evidence note, hop by hop.

Runs the real path in this process, in outbox mode: the receiver's view (Flask's test client),
then the `respond` and `gather` tasks (`Task.apply`: their bodies, as a worker runs them; what
they queue goes to a queue no worker reads). The delivery is run twice, Redis emptied between:
the first warms the process up (settings, policy, templates load once), the profiler watches
the second. Counts, the same way on any version of the code:

- functions: the distinct named functions of ours (`tasks/`, `webhooks/`, `triage/`) entered
  in the main thread (comprehensions, lambdas and generator expressions left out; collectors
  run in threads of their own and are not counted);
- modules: the distinct modules of ours those functions live in;
- hops: the distinct calls that cross from one module of ours into another (caller module,
  callee module and function), in the order first made;
- edges: the distinct (caller module, callee module) pairs among the hops.

    RESPONDER_REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/journey.py [--hops]

It deletes the `responder:*` keys of that Redis database first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import redis

PROJECT = Path(__file__).resolve().parent.parent
OURS = ("tasks", "webhooks", "triage")
LEFT_OUT = ("<lambda>", "<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>", "<module>")
TOKEN = "journey-token"


class Journey:
    """The functions and module crossings of ours seen by the profiler."""

    def __init__(self) -> None:
        self.functions: dict[tuple[str, str], None] = {}
        self.hops: dict[tuple[str, str, str], None] = {}

    def module_of(self, frame: FrameType) -> str | None:
        """Return the dotted module of a frame's code when it is ours, else None."""
        name = str(frame.f_globals.get("__name__", ""))
        return name if name.split(".")[0] in OURS else None

    def profile(self, frame: FrameType, event: str, _arg: Any) -> None:
        """Record a call of one of our functions, and the hop it makes."""
        if event != "call":
            return
        module = self.module_of(frame)
        function = frame.f_code.co_qualname
        if module is None or function.rpartition(".")[2] in LEFT_OUT:
            return
        self.functions[(module, function)] = None
        caller = frame.f_back
        while caller is not None and self.module_of(caller) is None:
            caller = caller.f_back  # through library frames (Flask, Celery) to ours
        if caller is not None and (source := self.module_of(caller)) != module:
            self.hops[(str(source), module, function)] = None


def main() -> None:
    """Run one delivery to its evidence note and print the journey's counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", action="store_true", help="list every hop")
    args = parser.parse_args()
    redis_url = os.environ.get("RESPONDER_REDIS_URL", "redis://127.0.0.1:6379/5")
    client = redis.Redis.from_url(redis_url)
    work = Path(tempfile.mkdtemp(prefix="journey-"))
    os.environ.update(
        RESPONDER_REDIS_URL=redis_url,
        RESPONDER_ALERTMANAGER_TOKEN=TOKEN,
        RESPONDER_OUTBOX_DIR=str(work / "outbox"),
        RESPONDER_BUNDLE_DIR=str(work / "bundles"),
        RESPONDER_QUEUE="responder-journey",  # no worker reads it
    )
    os.environ.pop("RESPONDER_PAGERDUTY_TOKEN", None)

    from tasks.celery_app import make_celery
    from tasks.pipeline import gather, respond
    from tasks.settings import settings_from_env
    from webhooks import create_app

    settings = settings_from_env(os.environ)
    # Every collector skipped (no target configured): the journey, not the checks, is measured.
    settings = replace(settings, prometheus_url="")
    app = make_celery(settings)
    app.set_current()
    payload = json.loads((PROJECT / "tasks" / "cli" / "samples" / "alertmanager.json").read_text())
    receiver = create_app(settings).test_client()

    def deliver() -> str:
        for key in client.scan_iter("responder:*"):
            client.delete(key)
        accepted = receiver.post(
            "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}
        ).get_json()
        run_id = str(respond.apply(args=[accepted["delivery_id"], 1]).get())
        gather.apply(args=[run_id]).get()
        return run_id

    deliver()  # warm-up, not watched
    before = len(list((work / "outbox").glob("*.json")))
    journey = Journey()
    sys.setprofile(journey.profile)
    try:
        run_id = deliver()
    finally:
        sys.setprofile(None)
    notes = sorted((work / "outbox").glob("*.json"))[before:]
    modules = dict.fromkeys(module for module, _ in journey.functions)
    print(f"notes posted: {len(notes)} (run {run_id})")
    edges = dict.fromkeys((source, module) for source, module, _ in journey.hops)
    counts = (len(journey.functions), len(modules), len(journey.hops), len(edges))
    print("functions: {}  modules: {}  hops: {}  edges: {}".format(*counts))
    for package in ("webhooks", "tasks", "triage"):
        mine = [f for f in journey.functions if f[0].split(".")[0] == package]
        inside = {m for m in modules if m.split(".")[0] == package}
        print(f"  {package}: {len(mine)} functions in {len(inside)} modules")
    if args.hops:
        for source, module, function in journey.hops:
            print(f"  {source} -> {module}.{function}")
        for source, module in edges:
            print(f"  edge {source} -> {module}")
        print("modules:", ", ".join(modules))


if __name__ == "__main__":
    main()
