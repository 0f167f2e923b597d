"""A run's evidence: its collectors run at once, the bundle written, the evidence note posted
once with the run's proposals, the trading desk's Slack post queued."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path
from typing import Any

from collectors.contract import Evidence, Status, Target
from tasks.actions import approval
from tasks.evidence import bundle
from tasks.evidence.collect import collect_into_bundle
from tasks.evidence.links import bundle_location
from tasks.evidence.shared_bundle import fetch_bundle, not_in_store, publish_bundle, stranded
from tasks.gateways.bundle_store import bundle_path
from tasks.pagerduty.notes import post_note_once
from tasks.run.proposals import propose_actions
from tasks.run.state import RunState, load_run, record_failure
from tasks.runtime import Runtime
from tasks.slack_queue import tell_slack
from tasks.store import runs


def gather_evidence(rt: Runtime, run_id: str) -> list[dict[str, Any]]:
    """Run the run's collectors at once, in threads; return their manifest entries.

    They wait on the network, not the CPU: in threads a run holds one worker slot however many
    collectors hang, and its evidence takes as long as the slowest one. Entries are kept, so a
    retry of the evidence note does not collect again.
    """
    if (kept := runs.entries(rt.redis, run_id)) is not None:
        return kept
    state = load_run(rt, run_id)
    names = state.collectors
    # Each collector keeps its own timeout; this bounds one that does not (a stuck library).
    limit = rt.settings.collector_timeout_seconds * 4 + 10
    pool = ThreadPoolExecutor(max_workers=max(len(names), 1), thread_name_prefix="collect")
    futures = {pool.submit(collect_evidence, rt, run_id, name, state): name for name in names}
    wait(futures, timeout=limit)
    pool.shutdown(wait=False, cancel_futures=True)  # a stuck thread is left behind, not awaited
    entries = [
        future.result() if future.done() else _unfinished(name, limit)
        for future, name in futures.items()
    ]
    order = {name: n for n, name in enumerate(state.collectors)}  # the plan's order
    entries.sort(key=lambda entry: order.get(entry["name"], len(order)))
    runs.keep_entries(rt.redis, run_id, entries)
    return entries


def _unfinished(name: str, limit: float) -> dict[str, Any]:
    evidence = Evidence(name, Status.TIMEOUT, f"did not finish within {limit:g} s")
    evidence.duration_seconds = limit
    return bundle.manifest_entry(evidence, [], lambda text: text)


def collect_evidence(
    rt: Runtime,
    run_id: str,
    name: str,
    state: RunState | None = None,
    timeouts: tuple[type[BaseException], ...] = (),
) -> dict[str, Any]:
    """Run one collector for the run, store its files in the bundle, return its manifest entry."""
    state = state or load_run(rt, run_id)
    target = Target(
        services=tuple(rt.policy.catalog[s] for s in state.services if s in rt.policy.catalog),
        alert_name=state.alert_name,  # the alertname: it picks the Prometheus rule, by exact name
        affected=tuple(state.affected),
        expression=state.expression,
        started_at=state.deadlines.triggered_at,
    )
    return collect_into_bundle(rt, run_id, name, target, timeouts, shared=True)


def finish_run(
    rt: Runtime,
    run_id: str,
    entries: list[dict[str, Any]],
    now: datetime,
    send: approval.Send | None = None,
) -> str:
    """Write the bundle manifest and summary, then post the evidence note once.

    `send` queues the tasks of actions an automatic rule approves (None: none is approved).
    """
    state = load_run(rt, run_id)
    folder = bundle_path(rt.settings.bundle_dir, run_id)
    in_store = fetch_bundle(rt, run_id, folder)  # and the files other hosts' collectors published
    header = {
        "bundle_id": run_id,
        "delivery_id": state.delivery_id,
        "run": state.run,
        "title": state.title,
        "incident": {
            "id": state.incident_id,
            "incident_key": state.incident_key,
            "label": state.incident.label,
        },
        "classification": state.classification.to_dict(),
        "deadlines": state.deadlines.to_dict(),
        "alerts": state.fingerprints,
    }
    bundle.write_manifest(folder, header, entries, now, rt.voice.bundle_index)
    # What the store lacks, before the note: the manifest just written and any file a collector
    # could not publish; not again what collectors published or what was just fetched.
    lacking = not_in_store(folder, in_store, always=bundle.MANIFEST_FILES)
    # A store that refuses the bundle never costs the note: the note says where it is instead.
    place = stranded(folder, why) if (why := publish_bundle(rt, folder, run_id, lacking)) else None
    where = f"{place['host']}:{place['path']}" if place else rt.bundles.location(run_id)
    rt.deliveries.update(state.delivery_id, bundle_id=run_id, bundle_path=where)
    if place:
        record_failure(rt, state, "bundle_store", why)
    evidence = [_evidence_of(entry) for entry in entries]
    content = rt.voice.evidence(
        state.classification,
        state.alert_name,
        evidence,
        bundle_location(rt.settings, run_id, now, state.incident_id),
        top_error_lines(folder),
        proposals=propose_actions(rt, state, entries, now, send),
        stranded=place,
    )
    incident = state.incident
    if incident.id is None and not rt.settings.outbox_mode:
        record_failure(rt, state, "evidence_note", "no PagerDuty incident to attach to")
    elif (note_id := post_note_once(rt, incident, run_id, "evidence_note", content)) is not None:
        rt.deliveries.update(state.delivery_id, evidence_note=note_id)
        priority = str(state.classification.priority)
        desk = rt.policy.slack.trading
        market_open = bool(rt.voice.market(now)["open"])
        if incident.id and desk is not None and desk.wants(priority, market_open):
            # The trading desk hears the trading impact once it is known.
            request = {"what": "trading", "incident_id": incident.id, "run_id": run_id}
            tell_slack(rt, request, priority)
    # Packed after the note: the on-call engineer should not wait for gzip.
    bundle.archive(folder)
    if place is None:
        publish_bundle(rt, folder, run_id, [bundle.ARCHIVE])
    rt.deliveries.update(state.delivery_id, pipeline="done")
    return run_id


def top_error_lines(folder: Path, count: int = 3) -> list[str]:
    """Return the latest error lines the collectors saved (already redacted) in a bundle."""
    lines = []
    for path in sorted(folder.glob("*/*.errors.log")):
        service = path.name.removesuffix(".errors.log")
        lines += [f"{service}: {line}" for line in path.read_text("utf-8").splitlines() if line]
    # Lines start with their timestamp (docker logs --timestamps): the latest sort last.
    return sorted(lines, key=lambda line: line.split(": ", 1)[1])[-count:]


def _evidence_of(entry: dict[str, Any]) -> Evidence:
    return Evidence(
        collector=entry["name"],
        status=Status(entry["status"]),
        summary=entry["summary"],
        duration_seconds=entry["duration_seconds"],
    )
