"""Write an evidence bundle: raw files per collector, `manifest.json` (versioned schema),
`summary.md`, `index.html` and `bundle.tar.gz`, within size caps."""

from __future__ import annotations

import html
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


_ORDER = {"failed": 0, "timeout": 1, "skipped": 2, "ok": 3}


def render_index(manifest: Mapping[str, Any], folder: Path) -> str:
    """Render the bundle's HTML view: why, deadlines, collectors (failures first), plots, logs.

    Every local link is written `./path`, so the receiver can add the link's signature.
    """
    e = html.escape
    classification = manifest.get("classification", {})
    priority = e(classification.get("priority", "?"))
    title = e(str(manifest.get("title", "")))
    rows, sections = [], []
    for entry in sorted(manifest.get("collectors", []), key=lambda c: _ORDER.get(c["status"], 9)):
        links = " ".join(_link(f) for f in entry["files"])
        cells = [
            entry["name"],
            entry["status"],
            f"{entry['duration_seconds']:.2f} s",
            entry["summary"],
        ]
        row = "".join(f"<td>{e(str(c))}</td>" for c in cells) + f"<td>{links}</td>"
        rows.append(f'<tr class="{e(entry["status"])}">{row}</tr>')
        for name in entry["files"]:
            if name.endswith(".png"):
                sections.append(f'<figure><img src="./{e(name)}" alt="{e(name)}"></figure>')
            elif name.endswith(".log"):
                text = (folder / name).read_text(encoding="utf-8", errors="replace")
                body = e(text[:FOLDED_LOG_CHARS])
                sections.append(f"<details><summary>{e(name)}</summary><pre>{body}</pre></details>")
    deadlines = manifest.get("deadlines", {}).items()
    due = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in deadlines)
    why = f"{e(classification.get('rule', ''))} - {e(classification.get('reason', ''))}"
    incident = e(str(manifest.get("incident", {}).get("label", "?")))
    written = e(str(manifest.get("created_at", "")))
    origin = f"delivery {e(str(manifest.get('delivery_id', '?')))} &middot; {written}"
    heading = (
        "<tr><th>collector</th><th>status</th><th>took</th><th>summary</th><th>files</th></tr>"
    )
    parts = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>[{priority}] {title}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>[{priority}] {title}</h1>",
        f"<p><b>Why {priority}:</b> {why}</p>",
        f"<p>Incident {incident} &middot; {origin}</p>",
        f"<h2>Deadlines</h2><table>{due}</table>",
        f"<h2>Collectors</h2><table>{heading}{''.join(rows)}</table>",
        f"<h2>Plots and logs</h2>{''.join(sections) or '<p>none</p>'}",
        f"<p>{_link('manifest.json')} &middot; {_link('summary.md')} &middot; {_link(ARCHIVE)}</p>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 72em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: .3em .5em; text-align: left; vertical-align: top; }
tr.failed td, tr.timeout td { background: #fde8e8; }
tr.skipped td { color: #777; }
img { max-width: 100%; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .5em; }
"""


def _link(name: str) -> str:
    return f'<a href="./{html.escape(name)}">{html.escape(name)}</a>'


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
