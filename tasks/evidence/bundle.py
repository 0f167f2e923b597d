"""Write an evidence bundle: raw files per collector, `manifest.json` (versioned schema),
`summary.md`, `index.html` and `bundle.tar.gz`, within size caps."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from collectors.contract import Evidence

MANIFEST_SCHEMA = "eafix-responder/bundle-manifest"
MANIFEST_VERSION = 1
FILE_CAP_BYTES = 1_000_000  # a text file past this is cut at a line; a binary one is left out
BUNDLE_CAP_BYTES = 20_000_000
MANIFEST_FILES = ("manifest.json", "summary.md", "index.html")  # what write_manifest writes
ARCHIVE = "bundle.tar.gz"  # tasks.notes.bundle_view links to it by this name


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
    render_index: Callable[[Mapping[str, Any], Path], str],
) -> dict[str, Any]:
    """Write `manifest.json`, `summary.md` and `index.html` into `folder`; return the manifest.

    `render_index(manifest, folder)` writes the HTML view: `Voice.bundle_index`, whose
    template (`bundle_index.html.j2`) is the page.
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
    (folder / "index.html").write_text(render_index(manifest, folder), encoding="utf-8")
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


def render_summary(manifest: Mapping[str, Any]) -> str:
    """Render the bundle's human summary as Markdown."""
    classification = manifest.get("classification", {})
    lines = [
        f"# [{classification.get('priority', '?')}] {manifest.get('title', 'incident')}",
        "",
        f"- Why: {classification.get('rule', '?')} - {classification.get('reason', '')}",
        *_origin_lines(manifest),
        "",
        "| collector | status | duration | summary |",
        "| --- | --- | --- | --- |",
    ]
    for entry in manifest.get("collectors", []):
        summary = str(entry["summary"]).replace("|", "\\|").replace("\n", " ")
        took = f"{entry['duration_seconds']:.2f}s"
        lines.append(f"| {entry['name']} | {entry['status']} | {took} | {summary} |")
    return "\n".join(lines) + "\n"


def _origin_lines(manifest: Mapping[str, Any]) -> list[str]:
    """Say what the bundle answers: a diagnosis someone ran, or an incident's alert delivery."""
    if diagnosis := manifest.get("diagnosis"):
        return [
            f"- Diagnosis of {diagnosis['service']} run by {diagnosis['by']} "
            f"through {diagnosis['via']} at {manifest['created_at'][:16].replace('T', ' ')} UTC"
        ]
    return [
        f"- Incident: {manifest.get('incident', {}).get('label') or 'none yet'}",
        f"- Delivery: {manifest.get('delivery_id', '?')} (run {manifest.get('run', '?')})",
    ]
