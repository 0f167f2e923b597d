"""Write an evidence bundle: raw files per collector, `manifest.json` and `summary.md`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from collectors.contract import Evidence

MANIFEST_SCHEMA = "eafix-responder/bundle-manifest"
MANIFEST_VERSION = 1


def bundle_path(root: Path, bundle_id: str) -> Path:
    """Return the folder of bundle `bundle_id` under `root`."""
    if not bundle_id or "/" in bundle_id or bundle_id.startswith("."):
        raise ValueError(f"invalid bundle id {bundle_id!r}")
    return root / bundle_id


def store_files(
    folder: Path, files: Mapping[str, str | bytes], redact: Callable[[str], str]
) -> list[str]:
    """Write a collector's files, redacted, inside `folder`; return their relative paths."""
    stored = []
    for name, content in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"collector file name escapes the bundle: {name!r}")
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(redact(content), encoding="utf-8")
        stored.append(str(relative))
    return stored


def manifest_entry(
    evidence: Evidence, stored_files: Sequence[str], redact: Callable[[str], str]
) -> dict[str, Any]:
    """Return one collector's manifest entry; summary and tables are redacted."""
    tables = json.loads(redact(json.dumps(evidence.tables)))
    return {
        "name": evidence.collector,
        "status": evidence.status.value,
        "summary": redact(evidence.summary),
        "duration_seconds": evidence.duration_seconds,
        "files": list(stored_files),
        "tables": tables,
    }


def write_manifest(
    folder: Path, header: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """Write `manifest.json` and `summary.md` into `folder` and return the manifest."""
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
    return manifest


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
