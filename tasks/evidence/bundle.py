"""Write an evidence bundle: raw files per collector, `manifest.json` (versioned schema),
`summary.md`, `index.html` and `bundle.tar.gz`, within size caps."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from collectors.contract import Evidence
from triage.policy import format_duration

if TYPE_CHECKING:
    from tasks.notes.voice import Voice

MANIFEST_SCHEMA = "eafix-responder/bundle-manifest"
MANIFEST_VERSION = 1
FILE_CAP_BYTES = 1_000_000  # a text file past this is cut at a line; a binary one is left out
BUNDLE_CAP_BYTES = 20_000_000
FOLDED_LOG_CHARS = 20_000
ARCHIVE = "bundle.tar.gz"


def store_files(
    folder: Path, files: Mapping[str, str | bytes], redact: Callable[[str], str]
) -> list[str]:
    """Write a collector's files, redacted and capped, inside `folder`; return their paths.

    A text file over FILE_CAP_BYTES is cut at a line boundary and says so; a binary one, or
    anything that would take the bundle past BUNDLE_CAP_BYTES, is left out and listed in
    `omitted.txt` with the reason.
    """
    stored, omitted = [], []
    used = folder_size(folder)
    for name, content in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"collector file name escapes the bundle: {name!r}")
        data = content if isinstance(content, bytes) else cap_text(redact(content)).encode()
        if len(data) > FILE_CAP_BYTES or used + len(data) > BUNDLE_CAP_BYTES:
            omitted.append(f"{relative}: {len(data)} bytes, over the size cap")
            continue
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        used += len(data)
        stored.append(str(relative))
    if omitted:
        with (folder / "omitted.txt").open("a", encoding="utf-8") as listing:
            listing.write("".join(f"{line}\n" for line in omitted))
    return stored


def cap_text(text: str, limit: int = FILE_CAP_BYTES) -> str:
    """Cut text to `limit` bytes at a line boundary, saying how much was cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    head = encoded[: limit - 200].decode("utf-8", "ignore")
    head = head[: head.rfind("\n") + 1] or head
    return f"{head}[... cut: {len(encoded) - len(head.encode())} more bytes]\n"


def folder_size(folder: Path) -> int:
    """Return the bytes already stored in a bundle folder."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def manifest_entry(
    evidence: Evidence, stored_files: Sequence[str], redact: Callable[[str], str]
) -> dict[str, Any]:
    """Return one collector's manifest entry; summary and tables are redacted."""
    tables = json.loads(redact(json.dumps(evidence.tables)))
    # A collector describes its PNGs in a `plots` table; the manifest keeps those stored.
    described = tables.pop("plots", [])
    plots = [p for p in described if isinstance(p, dict) and p.get("file") in stored_files]
    entry = {
        "name": evidence.collector,
        "status": evidence.status.value,
        "summary": redact(evidence.summary),
        "duration_seconds": evidence.duration_seconds,
        "files": list(stored_files),
        "tables": tables,
    }
    if plots:
        entry["plots"] = plots
    return entry


def write_manifest(
    folder: Path,
    header: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    now: datetime,
    voice: Voice,
) -> dict[str, Any]:
    """Write `manifest.json`, `summary.md` and `index.html` into `folder`; return the manifest.

    `voice` renders the HTML view (its `bundle_index.html.j2` template, autoescaped).
    """
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "version": MANIFEST_VERSION,
        "created_at": now.isoformat(),
        **header,
        "collectors": list(entries),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (folder / "summary.md").write_text(render_summary(manifest), encoding="utf-8")
    page = voice.bundle_index(index_view(manifest, folder))
    (folder / "index.html").write_text(page, encoding="utf-8")
    return manifest


def prune(root: Path, cutoff: float) -> int:
    """Delete bundle folders under `root` last written before `cutoff` (Unix time)."""
    removed = 0
    for folder in root.iterdir() if root.is_dir() else ():
        if folder.is_dir() and (folder / "manifest.json").exists():
            if (folder / "manifest.json").stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    return removed


def archive(folder: Path) -> Path:
    """Pack the whole bundle into `bundle.tar.gz` inside it (the archive itself excluded)."""
    target = folder / ARCHIVE
    partial = folder / f".{ARCHIVE}.part"
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name not in (ARCHIVE, partial.name):
                tar.add(path, arcname=f"{folder.name}/{path.relative_to(folder)}")
    partial.rename(target)
    return target


_ORDER = {"failed": 0, "timeout": 1, "skipped": 2, "ok": 3}

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
    # collectors (collectors.registry)
    "http": "Service health",
    "trading": "Trading impact",
    "prometheus": "Prometheus metrics",
    "redis": "Redis",
    "postgres": "PostgreSQL",
    "host": "This host",
    "git": "Recent deployments",
    "docker": "Containers",
    "flow": "Trading flow test",
    # statuses
    "ok": "OK",
    "failed": "Failed",
    "timeout": "Timed out",
    "skipped": "Skipped",
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
    for entry in sorted(manifest.get("collectors", []), key=lambda c: _ORDER.get(c["status"], 9)):
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
        "problems": sum(c["status"] in ("failed", "timeout") for c in collectors),
        "archive": ARCHIVE,
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


def render_summary(manifest: Mapping[str, Any]) -> str:
    """Render the bundle's human summary as Markdown."""
    classification = manifest.get("classification", {})
    lines = [
        f"# [{classification.get('priority', '?')}] {manifest.get('title', 'incident')}",
        "",
        f"- Why: {classification.get('rule', '?')} - {classification.get('reason', '')}",
        f"- Incident: {manifest.get('incident', {}).get('label', '?')}",
        f"- Delivery: {manifest.get('delivery_id', '?')} (run {manifest.get('run', '?')})",
        "",
        "| collector | status | duration | summary |",
        "| --- | --- | --- | --- |",
    ]
    for entry in manifest.get("collectors", []):
        summary = str(entry["summary"]).replace("|", "\\|").replace("\n", " ")
        took = f"{entry['duration_seconds']:.2f}s"
        lines.append(f"| {entry['name']} | {entry['status']} | {took} | {summary} |")
    return "\n".join(lines) + "\n"
