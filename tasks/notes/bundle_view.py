"""What a bundle's HTML view shows, from its manifest: labels for the manifest's keys, moments
instead of ISO strings, checks failures first, plots with their captions, logs to fold.

The page itself is the template `templates/bundle_index.html.j2`, rendered by `Voice`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tasks.notes.vocabulary import COLLECTOR_LABELS, STATUS_WORDS, status_rank
from triage.policy import format_duration

ARCHIVE = "bundle.tar.gz"  # tasks.evidence.bundle.ARCHIVE, which packs it
FOLDED_LOG_CHARS = 20_000

# What the HTML view calls the manifest's keys and values: no reader should meet `triggered_at`.
LABELS: dict[str, str] = {
    # deadlines (triage.sla.Deadlines.to_dict)
    "priority": "Priority",
    "triggered_at": "Alert started",
    "active_from": "Responder acts from",
    "acknowledge": "Acknowledge by",
    "respond": "Respond by",
    "resolve": "Resolve by",
    "next_update": "Next status update",
    "notify_management": "Tell management by",
    "management": "Management hears by",
    "lower_urgency": "Urgency lowered",
    "restore_urgency": "Urgency back to high",
    # collectors and how their checks ended: the one vocabulary
    **COLLECTOR_LABELS,
    **STATUS_WORDS,
    # management's ways (Deadlines.management)
    "notify": "a note or responder request",
    "summary": "the summary at the next opening",
}


def label(key: str) -> str:
    """Return the human label of a manifest key or value; an unknown one is made readable."""
    if key in LABELS:
        return LABELS[key]
    words = key.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else key


def moment(text: Any) -> datetime | None:
    """Return an ISO 8601 manifest value as an aware moment, None when it is not one."""
    if not isinstance(text, str) or len(text) < 16 or text[4:5] != "-":
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def index_view(manifest: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """Return the facts the bundle's HTML view shows, in the order a reader needs them.

    Times are moments (the template says them in UTC and market time), keys are labels,
    collectors come failures first, each with its plots (and their captions) and folded logs.
    """
    classification = manifest.get("classification", {})
    written = moment(manifest.get("created_at")) or datetime.now(UTC)
    diagnosis = manifest.get("diagnosis")
    incident = manifest.get("incident", {})
    deadlines = []
    for key, value in manifest.get("deadlines", {}).items():
        if key == "priority":
            continue  # the heading says it
        at = moment(value)
        deadlines.append(
            {
                "label": label(key),
                "at": at,
                "text": "" if at else label(str(value)),
                "relative": _relative(at, written) if at else "",
            }
        )
    collectors = []
    for entry in sorted(manifest.get("collectors", []), key=lambda c: status_rank(c["status"])):
        plots = {p["file"]: p for p in entry.get("plots", [])}
        files = list(entry.get("files", []))
        collectors.append(
            {
                "name": entry["name"],
                "label": label(entry["name"]),
                "status": entry["status"],
                "status_label": label(entry["status"]),
                "seconds": float(entry.get("duration_seconds", 0.0)),
                "summary": entry.get("summary", ""),
                "files": files,
                "plots": [
                    _plot_view(name, plots.get(name)) for name in files if name.endswith(".png")
                ],
                "logs": [
                    {"name": name, "text": _read_log(folder / name)}
                    for name in files
                    if name.endswith(".log")
                ],
                "findings": findings(entry["name"], entry.get("tables", {})),
            }
        )
    return {
        "priority": str(classification.get("priority", "?")),
        "title": str(manifest.get("title", "")),
        "rule": str(classification.get("rule", "")),
        "reason": str(classification.get("reason", "")),
        "written": written,
        "diagnosis": dict(diagnosis) if isinstance(diagnosis, Mapping) else None,
        "incident": str(incident.get("label", "")) if isinstance(incident, Mapping) else "",
        "delivery_id": str(manifest.get("delivery_id", "")),
        "run": manifest.get("run"),
        "deadlines": deadlines,
        "collectors": collectors,
        **check_counts(c["status"] for c in collectors),
        "archive": ARCHIVE,
    }


def findings(collector: str, tables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the tables the page shows for the network and queues-and-latency checks.

    Each: a title, its column heads and rows of cells, a row marked bad when it is a finding
    (a probe that did not reach its target, a deep queue, a slow edge).
    """
    shown: list[dict[str, Any]] = []
    if collector == "network" and tables.get("probes"):
        shown.append({
            "title": "Network probes",
            "head": ["From", "To", "Address", "Check", "Result"],
            "rows": [{"bad": not row.get("reached"),
                      "cells": [row.get("from", ""), row.get("target", ""), row.get("address", ""),
                                row.get("check", ""),
                                ("reached: " if row.get("reached") else "FAILED: ")
                                + str(row.get("why", ""))]}
                     for row in tables["probes"]],
        })  # fmt: skip
    if collector == "performance":
        for key, title, unit in (
            ("queues", "Queue depths", ""),
            ("edges", "Edge latency (p99)", " s"),
        ):
            if tables.get(key):
                shown.append({
                    "title": title,
                    "head": ["Queue" if key == "queues" else "Edge", "Now", "Finding when over"],
                    "rows": [{"bad": row.get("state") == "over",
                              "cells": [row.get("name", ""), row.get("shown", ""),
                                        f"{_number(row.get('threshold'))}{unit}"]}
                             for row in tables[key]],
                })  # fmt: skip
    return shown


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value or "")


def check_counts(statuses: Iterable[str]) -> dict[str, int]:
    """Count checks as the evidence note and the bundle page both say them.

    `ran`: the checks that ran (not skipped); `problems`: those of them that did not pass;
    `skipped`: the rest. One count for both, so the note and the page never disagree.
    """
    listed = [str(status) for status in statuses]
    ran = [status for status in listed if status != "skipped"]
    return {
        "ran": len(ran),
        "problems": sum(status != "ok" for status in ran),
        "skipped": len(listed) - len(ran),
    }


def _plot_view(name: str, plot: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a plot's image and caption facts (a PNG without a description gets its name)."""
    if plot is None:
        return {"file": name, "title": name, "start": None, "end": None, "threshold": None,
                "note": "", "width": None, "height": None}  # fmt: skip
    return {
        "file": name,
        "title": str(plot.get("title", name)),
        "start": moment(plot.get("window_start")),
        "end": moment(plot.get("window_end")),
        "threshold": plot.get("threshold"),
        "note": str(plot.get("note", "")),
        "width": plot.get("width"),
        "height": plot.get("height"),
    }


def _read_log(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:FOLDED_LOG_CHARS]
    except OSError:
        return "(not stored)"


def _relative(at: datetime, written: datetime) -> str:
    """Say a moment against when the bundle was written: `in 4m`, `12m ago`, `now`."""
    seconds = int((at - written).total_seconds())
    if abs(seconds) < 60:
        return "now"
    span = format_duration(timedelta(seconds=abs(seconds) // 60 * 60))
    return f"in {span}" if seconds > 0 else f"{span} ago"
