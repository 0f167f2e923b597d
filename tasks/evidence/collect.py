"""Run a collector into an evidence bundle: its context from the settings, its files stored
redacted, its manifest entry returned. The pipeline, `responder diagnose`, the actions' checks
and the resolution's validation all collect this way."""

from __future__ import annotations

from typing import Any

from collectors.contract import CollectorContext, Evidence, Target
from collectors.registry import run_collector
from tasks.evidence import bundle
from tasks.evidence.shared_bundle import publish_bundle, stranded
from tasks.evidence.shared_checks import run_shared
from tasks.gateways.bundle_store import bundle_path
from tasks.notes.lines import bundle_line
from tasks.runtime import Runtime


def collect_into_bundle(
    rt: Runtime,
    bundle_id: str,
    name: str,
    target: Target,
    timeouts: tuple[type[BaseException], ...] = (),
    *,
    shared: bool = False,
) -> dict[str, Any]:
    """Run collector `name` on `target`, store its files redacted, return its manifest entry.

    `shared`: reuse a recent check of the same target by another incident (see shared_checks).
    """
    ctx = collector_context(rt)

    def run() -> Evidence:
        return run_collector(name, target, ctx, timeouts=timeouts)

    others_take = rt.settings.collector_timeout_seconds * 2 + 1  # how long to wait for a sharer
    evidence = (
        run_shared(rt.redis, name, target, run, others_take, redact=rt.redact) if shared else run()
    )
    folder = bundle_path(rt.settings.bundle_dir, bundle_id)
    stored = bundle.store_files(folder, evidence.files, rt.redact)
    entry = bundle.manifest_entry(evidence, stored, rt.redact)
    if rt.bundles.shared:
        # Published now: the run may be finished on another host, which fetches them.
        names = [*stored, *(["omitted.txt"] if (folder / "omitted.txt").is_file() else [])]
        if why := publish_bundle(rt, folder, bundle_id, names):
            place = stranded(folder, why)
            entry["summary"] += bundle_line(
                "files_not_shared", why=why, host=place["host"], path=place["path"]
            )
    return entry


def collector_context(rt: Runtime) -> CollectorContext:
    """Return what collectors may use, from the settings."""
    return CollectorContext(
        redis_url=rt.settings.eafix_redis_url,
        timeout_seconds=rt.settings.collector_timeout_seconds,
        redact=rt.redact,
        prometheus_url=rt.settings.prometheus_url,
        postgres_dsn=rt.settings.postgres_dsn.reveal(),
        git_repo=rt.settings.deploy_repo,
        docker_url=rt.settings.docker_url,
        compose_project=rt.settings.compose_project,
        diagnostics=rt.policy.diagnostics,
    )
